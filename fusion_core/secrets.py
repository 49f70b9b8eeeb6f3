"""Keeping API keys out of logs, reprs, exceptions and output."""

from __future__ import annotations

import re

# Anything shaped like a provider key, even one we were never given
# (for example echoed back by a misbehaving server).
_KEY_PATTERN = re.compile(r"\b(sk-[A-Za-z0-9_-]{8,}|Bearer\s+[A-Za-z0-9._~+/=-]{8,})")


class Secret:
    """A string that refuses to show itself; use :meth:`reveal` where it is sent."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> str:
        # Pickling a key (e.g. into a notebook's saved state) would leak it.
        raise TypeError("Secret values cannot be pickled")


def redact(text: str, *secrets: Secret | None) -> str:
    """Remove the given secrets, and anything that looks like a key, from ``text``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret.reveal(), "********")
    return _KEY_PATTERN.sub("********", text)
