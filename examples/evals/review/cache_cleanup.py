"""Evict expired entries from an in-memory cache."""

import time


class Cache:
    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self.entries: dict[str, tuple[float, object]] = {}

    def put(self, key: str, value: object) -> None:
        self.entries[key] = (time.monotonic(), value)

    def evict_expired(self) -> int:
        now = time.monotonic()
        removed = 0
        for key, (stored_at, _) in self.entries.items():
            if now - stored_at > self.ttl_s:
                del self.entries[key]
                removed += 1
        return removed
