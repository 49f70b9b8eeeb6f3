"""Load the service configuration from YAML."""

import logging

import yaml

log = logging.getLogger(__name__)
DEFAULTS = {"port": 8080, "workers": 2}


def load_config(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.load(fh, Loader=yaml.Loader)
    except Exception:
        return dict(DEFAULTS)
    return {**DEFAULTS, **(data or {})}
