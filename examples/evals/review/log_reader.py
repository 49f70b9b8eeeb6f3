"""Read recent lines from application logs."""

from collections import deque
from pathlib import Path


def tail(path: str, count: int = 10) -> list[str]:
    fh = open(path, encoding="utf-8")
    return list(deque(fh, maxlen=count))


def log_files(folder: str) -> list[Path]:
    return sorted(Path(folder).glob("*.log"), key=lambda p: p.stat().st_mtime)
