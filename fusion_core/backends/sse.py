"""Bounded reading of HTTP bodies: decompression, SSE lines and events, JSON.

This is the boundary where an endpoint's bytes enter Fusion. httpx-sse (used
before) buffers a line without a newline, and an event without a blank line,
for ever; httpx inflates a whole network chunk at once, so a gzip bomb grows
by up to a thousand times per read. Here every step is bounded by
:class:`fusion_core.limits.Limits`:

- :class:`BodyDecoder` inflates gzip/deflate in steps of at most
  :data:`INFLATE_STEP` bytes and counts every decoded byte of the body;
- :class:`SSEParser` splits lines (``\\r\\n``, ``\\r`` or ``\\n``, as the SSE
  spec says) and assembles events, refusing any line or event over the limit.
  It scans each byte once, so a long line costs linear time.

Over a limit they raise :class:`fusion_core.errors.ResponseTooLarge`; bytes that
cannot be decoded raise :class:`fusion_core.errors.BadResponse`. Nothing else
escapes, which the fuzz tests check.
"""

from __future__ import annotations

import json
import sys
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from fusion_core.errors import BadResponse, ResponseTooLarge
from fusion_core.limits import Limits, format_bytes

# Largest piece inflated in one step, so one network read never becomes a large allocation.
INFLATE_STEP = 64 * 1024
# Content encodings we can inflate in bounded steps; we ask for nothing else.
ACCEPT_ENCODING = "gzip, deflate"
_GZIP = ("gzip", "x-gzip")
_DEFLATE = ("deflate",)
_IDENTITY = ("", "identity")
NEWLINE = ord("\n")
# Longer integers are read as floats: nothing in the wire format needs more digits.
MAX_INT_DIGITS = 64


@dataclass(frozen=True)
class ServerSentEvent:
    """One SSE event; ``data`` joins its ``data:`` lines with newlines."""

    data: str
    event: str = ""


class BodyDecoder:
    """Inflate a body as it arrives, never more than ``max_bytes`` in all.

    ``content_encoding`` is the response header; unknown encodings are refused,
    since we cannot bound what we cannot decode step by step.
    """

    def __init__(self, content_encoding: str, max_bytes: int, *, what: str = "the response") -> None:
        encoding = content_encoding.strip().lower()
        self._max = max_bytes
        self._what = what
        self._total = 0
        self._deflate = encoding in _DEFLATE
        self._inflater: Any = None
        if encoding in _GZIP:
            self._inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif self._deflate:
            self._inflater = zlib.decompressobj(zlib.MAX_WBITS)
        elif encoding not in _IDENTITY:
            raise BadResponse(
                f"{what} has content-encoding {content_encoding[:40]!r}, which Fusion did not ask for",
                hint="Fusion accepts only gzip and deflate; check the endpoint or the proxy in front of it.",
            )

    def decode(self, raw: bytes) -> Iterator[bytes]:
        """The decoded pieces of ``raw``; compressed input is inflated one bounded step per piece.

        A generator, so a consumer that stops early never makes zlib inflate the rest.
        """
        if self._inflater is None:
            if raw:
                yield self._count(raw)
            return
        pending = raw
        while True:
            try:
                out = self._inflater.decompress(pending, INFLATE_STEP)
            except zlib.error as exc:
                if not self._deflate or self._total:
                    raise BadResponse(f"{self._what} is not valid compressed data ({exc})") from None
                # Some servers send raw deflate without the zlib header; httpx accepts both.
                self._deflate = False
                self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
                continue
            if out:
                yield self._count(out)
            pending = self._inflater.unconsumed_tail
            # A full step may leave output inside zlib even when the input is used up.
            if not pending and len(out) < INFLATE_STEP:
                return

    def _count(self, data: bytes) -> bytes:
        self._total += len(data)
        if self._total > self._max:
            raise ResponseTooLarge(
                f"{self._what} exceeded {format_bytes(self._max)} after decompression",
                limit="response_bytes",
            )
        return data


class SSEParser:
    """Incremental server-sent-events parser with bounded lines and events.

    Feed it decoded bytes with :meth:`feed`. Comment lines (``:``) and fields
    other than ``data`` and ``event`` are skipped; an event is dispatched at a
    blank line, and, as the SSE spec says, an event the body ends in the middle
    of is discarded.
    """

    def __init__(self, max_event_bytes: int) -> None:
        self._max = max_event_bytes
        self._buffer = bytearray()
        self._scanned = 0  # bytes of _buffer already searched for a newline
        self._data: list[str] = []
        self._event = ""
        self._event_size = 0

    def feed(self, data: bytes) -> list[ServerSentEvent]:
        """Events completed by ``data``."""
        buffer = self._buffer
        buffer += data
        events: list[ServerSentEvent] = []
        start, pos, size = 0, self._scanned, len(buffer)
        while True:
            # bytearray.find is a memchr: much faster than a regex for "\r\n?|\n".
            newline = buffer.find(b"\n", pos)
            end = newline if newline >= 0 else size
            cr = buffer.find(b"\r", pos, end)
            if cr >= 0:
                if cr + 1 == size:
                    pos = cr  # a \r at the very end may be the first half of \r\n: wait for more
                    break
                line_end, pos = cr, cr + 2 if buffer[cr + 1] == NEWLINE else cr + 1
            elif newline >= 0:
                line_end, pos = newline, newline + 1
            else:
                pos = size
                break
            # Comment lines (keep-alives) are skipped without copying them.
            if line_end - start > self._max or buffer[start : start + 1] != b":":
                self._line(buffer[start:line_end], events)
            start = pos
        del buffer[:start]
        self._scanned = pos - start
        if len(buffer) > self._max:
            raise self._too_large("one line of the event stream")
        return events

    def _line(self, line: bytes | bytearray, events: list[ServerSentEvent]) -> None:
        if len(line) > self._max:
            raise self._too_large("one line of the event stream")
        if not line:
            if self._data or self._event:
                events.append(ServerSentEvent(data="\n".join(self._data), event=self._event))
            self._data, self._event, self._event_size = [], "", 0
            return
        if line.startswith(b":"):
            return
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            self._event_size += len(value) + 1
            if self._event_size > self._max:
                raise self._too_large("one event of the stream")
            self._data.append(value.decode("utf-8", errors="replace"))
        elif name == b"event":
            self._event = value.decode("utf-8", errors="replace")

    def _too_large(self, what: str) -> ResponseTooLarge:
        return ResponseTooLarge(f"{what} exceeded {format_bytes(self._max)}", limit="event_bytes")


async def aiter_events(response: httpx.Response, limits: Limits) -> AsyncIterator[ServerSentEvent]:
    """The events of a streaming response, every byte counted against ``limits``."""
    decoder = _decoder(response, limits.response_bytes, what="the response")
    parser = SSEParser(limits.event_bytes)
    async for raw in _raw_chunks(response):
        for piece in decoder.decode(raw):
            for event in parser.feed(piece):
                yield event


async def read_capped(response: httpx.Response, max_bytes: int, *, what: str) -> bytes:
    """At most ``max_bytes`` of a body (decompressed); the rest is never read or inflated.

    For bodies only worth a prefix, such as error pages: closing the response
    afterwards drops the connection with whatever the server still had to send.
    """
    # No total cap on the decoder: the loop stops reading at max_bytes, one step at a time.
    decoder = _decoder(response, sys.maxsize, what=what)
    body = bytearray()
    async for raw in _raw_chunks(response):
        for piece in decoder.decode(raw):
            body += piece
            if len(body) >= max_bytes:
                return bytes(body[:max_bytes])
    return bytes(body)


def _decoder(response: httpx.Response, max_bytes: int, *, what: str) -> BodyDecoder:
    # A response already read into memory has been decoded by httpx (see _raw_chunks).
    encoding = "" if response.is_stream_consumed else response.headers.get("content-encoding", "")
    return BodyDecoder(encoding, max_bytes, what=what)


async def _raw_chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    """The body as it arrives from the network, before httpx decodes it.

    A response built in memory (``httpx.Response(content=...)``, as
    ``httpx.MockTransport`` handlers do) has no raw stream left; its content is used.
    """
    if response.is_stream_consumed:
        yield response.content
        return
    async for raw in response.aiter_raw():
        yield raw


def loads_json(text: str | bytes) -> Any:
    """``json.loads`` that fails only with ValueError, whatever the input.

    CPython's parser raises RecursionError on deeply nested input (a 200k-deep
    array); that is bad input, not a bug, so it becomes a ValueError here. An
    integer too long for Python to convert (over 4300 digits) becomes a float
    (usually infinity) instead of failing the whole document, so one absurd
    field costs only that field.
    """
    try:
        return json.loads(text, parse_int=_parse_int)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _parse_int(digits: str) -> int | float:
    return int(digits) if len(digits) <= MAX_INT_DIGITS else float(digits)
