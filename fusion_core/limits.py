"""How much Fusion reads from an endpoint before it gives up on that answer.

An endpoint is outside input: a broken or hostile server can send a line with
no newline, one enormous event, endless content, a gzip bomb or an endless
error page. Every byte an HTTP backend reads goes through the bounded reader in
:mod:`fusion_core.backends.sse`, which enforces these limits as the bytes
arrive, so memory stays bounded whatever the server sends. A candidate over a
limit fails alone with kind ``too_large``; the rest of the pool carries on.

The defaults are generous for real models and can be changed in ``fusion.toml``::

    [limits]
    event_bytes = 1048576        # one SSE line or event (1 MiB)
    answer_bytes = 4194304       # the text of one candidate's answer (4 MiB)
    response_bytes = 134217728   # one response body after decompression (128 MiB)
    error_body_bytes = 65536     # what is read of an HTTP error body (64 kB)
    catalog_bytes = 16777216     # the /models listing (16 MiB)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, NoReturn

KIB = 1024
MIB = 1024 * KIB

DEFAULT_EVENT_BYTES = 1 * MIB
DEFAULT_ANSWER_BYTES = 4 * MIB
# Counted after decompression and across the whole stream. Streamed token by token, each
# token costs about 250 bytes of SSE envelope: a 128k-token answer plus 64k reasoning tokens
# is about 48 MB. Reading this much takes a second or two, so a bomb is also bounded in time.
DEFAULT_RESPONSE_BYTES = 128 * MIB
DEFAULT_ERROR_BODY_BYTES = 64 * KIB
DEFAULT_CATALOG_BYTES = 16 * MIB
# Smallest accepted value of any limit: below it, ordinary replies would fail.
MIN_LIMIT_BYTES = 1 * KIB
# Largest accepted value: far past what any model sends, and still a bound.
MAX_LIMIT_BYTES = 64 * 1024 * MIB


@dataclass(frozen=True)
class Limits:
    """Byte limits on what is read from one endpoint (see the module docstring)."""

    event_bytes: int = DEFAULT_EVENT_BYTES
    answer_bytes: int = DEFAULT_ANSWER_BYTES
    response_bytes: int = DEFAULT_RESPONSE_BYTES
    error_body_bytes: int = DEFAULT_ERROR_BODY_BYTES
    catalog_bytes: int = DEFAULT_CATALOG_BYTES


LIMIT_KEYS = tuple(f.name for f in fields(Limits))

# Called with (key, message, fix) to report a mistake with the file and line; never returns.
Fail = Callable[[str, str, str], NoReturn]


def parse_limits(table: dict[str, Any], fail: Fail) -> Limits:
    """The ``[limits]`` table of fusion.toml; unset keys keep their defaults."""
    values: dict[str, int] = {}
    for key, value in table.items():
        if key not in LIMIT_KEYS:
            fail(key, f"unknown key {key!r} in [limits]", f"use one of {', '.join(LIMIT_KEYS)}")
        if isinstance(value, bool) or not isinstance(value, int):
            fail(key, f"limits.{key} must be a whole number of bytes", f"write e.g. {key} = {MIB}")
        if not MIN_LIMIT_BYTES <= value <= MAX_LIMIT_BYTES:
            fail(
                key,
                f"limits.{key} = {value} is outside {MIN_LIMIT_BYTES}..{MAX_LIMIT_BYTES}",
                f"pick a byte count in that range (the default is {getattr(Limits(), key)})",
            )
        values[key] = value
    return Limits(**values)


def format_bytes(count: int) -> str:
    """``1048576`` → ``1 MiB``: limits in messages read the way users write them."""
    for unit, size in (("GiB", 1024 * MIB), ("MiB", MIB), ("KiB", KIB)):
        if count >= size and count % size == 0:
            return f"{count // size} {unit}"
    return f"{count} bytes"
