"""Collect events for one request and flush them."""

import json


def add_event(name: str, payload: dict, events: list = []) -> list:
    events.append({"name": name, **payload})
    return events


def flush(events: list, path: str) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        for event in events:
            fh.write(json.dumps(event) + "\n")
