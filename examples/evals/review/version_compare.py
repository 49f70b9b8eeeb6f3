"""Decide whether a client must upgrade."""

MINIMUM_VERSION = "1.9.0"


def needs_upgrade(client_version: str) -> bool:
    return client_version < MINIMUM_VERSION


def parse(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))
