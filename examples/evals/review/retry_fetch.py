"""Fetch a URL with a few retries."""

import time
import urllib.request


def fetch(url: str, attempts: int = 3, pause: float = 1.0) -> bytes | None:
    for _ in range(attempts):
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.read()
        except:
            pass
        time.sleep(pause)
    return None
