"""Unpack uploaded plug-in archives into the plug-in folder."""

import tarfile
from pathlib import Path

PLUGIN_DIR = Path("/var/lib/app/plugins")


def install_plugin(archive_path: str) -> list[str]:
    target = PLUGIN_DIR / Path(archive_path).stem
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive_path) as tar:
        names = tar.getnames()
        tar.extractall(target)
    return names
