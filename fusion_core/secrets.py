"""Keeping API keys out of every output: one registry of key values, one scrubber.

A key is registered where it is read (:class:`Secret`, and
:func:`register_env_keys` for ``OPENROUTER_API_KEY`` and every configured
``[endpoints.X] api_key_env``), and scrubbed where data leaves: error messages
(:class:`fusion_core.errors.FusionError`), the plain data of a result
(:mod:`fusion_core.result`: error infos, judge rationale, candidate text,
answer), the run log, the LSP's ``window/logMessage`` and every Python
logging record. So a key an endpoint echoes back, verbatim or cut short,
is replaced by ``********`` whatever path it takes out.

Two strengths:

- :func:`scrub` for diagnostics (errors, rationales, log lines): the exact
  values of every registered key, a key cut off at either end (as a quote
  like ``event.data[:80]`` cuts it), and anything shaped like a key
  (``sk-...``, ``Bearer ...``) even if it was never registered;
- :func:`scrub_known` for content (answers, candidate text, prompts): only the
  registered values, so an answer that explains what an ``sk-`` key looks like
  is not mangled.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "MASK",
    "MIN_KEY_CHARS",
    "Secret",
    "redact",
    "register_env_keys",
    "register_key",
    "scrub",
    "scrub_data",
    "scrub_known",
]

MASK = "********"
# Shorter values are not scrubbed: a 3-letter "key" would garble every word containing it.
MIN_KEY_CHARS = 6
# A quote that cuts a key keeps at least this many of its characters before masking them;
# fewer could be the shared prefix of every key of a provider ("sk-or-v1-").
MIN_FRAGMENT_CHARS = 16

# Anything shaped like a provider key, even one we were never given
# (for example echoed back by a misbehaving server). Linear: no nested quantifiers.
_KEY_PATTERN = re.compile(r"\b(sk-[A-Za-z0-9_-]{8,}|Bearer\s+[A-Za-z0-9._~+/=-]{8,})")

_lock = threading.Lock()
# Longest first, so a key that contains another key is masked whole.
_known: tuple[str, ...] = ()
_log_scrubbing_installed = False


class Secret:
    """A string that refuses to show itself; use :meth:`reveal` where it is sent.

    Creating one registers its value with the scrubber.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register_key(value)

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


def register_key(value: str) -> None:
    """Scrub ``value`` from every output of this process from now on."""
    global _known
    value = value.strip()
    if len(value) < MIN_KEY_CHARS or value in _known:
        return
    with _lock:
        _known = tuple(sorted({*_known, value}, key=len, reverse=True))
    _install_log_scrubbing()


def register_env_keys(env: Mapping[str, str], names: Iterable[str | None]) -> None:
    """Register the values of the environment variables ``names`` (the configured key variables)."""
    for name in names:
        if name and env.get(name):
            register_key(env[name])


def scrub_known(text: str) -> str:
    """``text`` with every registered key value masked; nothing else is touched."""
    for key in _known:
        if key in text:
            text = text.replace(key, MASK)
    return text


def scrub(text: str) -> str:
    """``text`` with registered keys (whole or cut off) and anything key-shaped masked."""
    text = scrub_known(text)
    for key in _known:
        if len(key) > MIN_FRAGMENT_CHARS:
            text = _mask_fragments(text, key)
    return _KEY_PATTERN.sub(MASK, text)


def redact(text: str, *secrets: Secret | None) -> str:
    """Remove the given secrets, every registered key, and anything that looks like a key."""
    for secret in secrets:
        if secret:
            text = text.replace(secret.reveal(), MASK)
    return scrub(text)


def scrub_data(value: Any) -> Any:
    """A JSON-like value (dicts, lists, strings) with :func:`scrub_known` applied to every string."""
    if not _known:
        return value
    if isinstance(value, str):
        return scrub_known(value)
    if isinstance(value, dict):
        return {scrub_known(k) if isinstance(k, str) else k: scrub_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_data(v) for v in value]
    return value


def _mask_fragments(text: str, key: str) -> str:
    """Mask a run of at least MIN_FRAGMENT_CHARS that is the start or the end of ``key``.

    Each search is a plain substring find, so this stays linear in ``text``.
    """
    head, tail = key[:MIN_FRAGMENT_CHARS], key[-MIN_FRAGMENT_CHARS:]
    if head in text:
        parts, pos = [], 0
        while (start := text.find(head, pos)) != -1:
            end = start + MIN_FRAGMENT_CHARS
            # Extend the match along the key as far as the text follows it.
            while end < len(text) and end - start < len(key) and text[end] == key[end - start]:
                end += 1
            parts += [text[pos:start], MASK]
            pos = end
        text = "".join([*parts, text[pos:]])
    if tail in text:
        parts, pos = [], 0
        while (start := text.find(tail, pos)) != -1:
            first = start
            offset = len(key) - MIN_FRAGMENT_CHARS  # where ``tail`` starts inside the key
            while first > pos and offset > 0 and text[first - 1] == key[offset - 1]:
                first, offset = first - 1, offset - 1
            parts += [text[pos:first], MASK]
            pos = start + MIN_FRAGMENT_CHARS
        text = "".join([*parts, text[pos:]])
    return text


def _install_log_scrubbing() -> None:
    """Scrub every logging record this process creates, once a key is known.

    A record factory rather than a ``logging.Filter``: a filter sits on one logger
    or handler and misses records of child loggers and of handlers added later
    (pygls, basicConfig, pytest), while every record is made by the factory.
    """
    global _log_scrubbing_installed
    with _lock:
        if _log_scrubbing_installed:
            return
        _log_scrubbing_installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        scrub_record(record)
        return record

    logging.setLogRecordFactory(factory)


def scrub_record(record: logging.LogRecord) -> None:
    """Scrub a logging record in place: its message, exception text and stack."""
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a bad format string is the handler's problem, not ours
        message = str(record.msg)
    clean = scrub(message)
    if clean != message:
        record.msg, record.args = clean, ()
    if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
        # Formatted now so the traceback (which may quote the key) is scrubbed too.
        record.exc_text = scrub("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
    if record.stack_info:
        record.stack_info = scrub(record.stack_info)
