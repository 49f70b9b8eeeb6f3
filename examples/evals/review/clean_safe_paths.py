"""Serve user uploads without leaving the upload folder."""

from pathlib import Path

UPLOAD_DIR = Path("/srv/app/uploads").resolve()


def upload_path(name: str) -> Path:
    candidate = (UPLOAD_DIR / name).resolve()
    if not candidate.is_relative_to(UPLOAD_DIR):
        raise PermissionError(f"{name!r} is outside the upload folder")
    return candidate


def read_upload(name: str) -> bytes:
    return upload_path(name).read_bytes()
