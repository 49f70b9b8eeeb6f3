"""Service settings from YAML and the environment."""

import os
from pathlib import Path

import yaml

DEFAULTS = {"port": 8080, "debug": False}


def load_settings(path: Path) -> dict:
    with path.open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    settings = {**DEFAULTS, **data}
    settings["api_token"] = os.environ.get("SERVICE_API_TOKEN", "")
    return settings
