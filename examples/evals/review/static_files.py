"""Serve files from the public folder of a small web app."""

import mimetypes
import os

PUBLIC_DIR = "/srv/app/public"


def read_public_file(name: str) -> tuple[bytes, str]:
    """Return the file's bytes and its content type; name comes from the URL."""
    path = os.path.join(PUBLIC_DIR, name)
    with open(path, "rb") as fh:
        data = fh.read()
    kind, _ = mimetypes.guess_type(path)
    return data, kind or "application/octet-stream"
