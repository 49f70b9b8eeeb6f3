"""LSP base-protocol framing: bytes off the wire → message bodies, resynchronising after bad frames.

pygls' own reader (``pygls.io_.run_async``) trusts every ``Content-Length``: one
frame with a length that is too short, too long, non-numeric or negative leaves it
reading headers out of the middle of bodies, and the server never answers again.
:class:`FrameDecoder` is a sans-IO replacement that is fed whatever bytes arrive
and hands back complete bodies and framing errors. Its rules:

- A header line that holds ``Content-Length:`` after other bytes (the tail of a
  body whose length was too short) is cut there: the frame header starts at the
  marker. Other lines that are not ``Name: value`` are skipped as garbage.
- A frame whose length is missing, not a number, negative or over
  :data:`MAX_BODY_BYTES` is reported, and its body is skipped as garbage until the
  next ``Content-Length:`` line.
- A length that is too long shows as the next frame's ``Content-Length: N`` line
  inside the body. That line cannot occur in valid JSON (JSON strings hold no raw
  line breaks), so the body is cut there and the next frame is read from it.
- Every line, header block and body is bounded; the work per byte is constant, so
  decoding is linear in the input whatever it holds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Bounds for what a client may send (documented in the README's fusion-lsp section).
MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_HEADER_LINE_BYTES = 8 * 1024
MAX_HEADER_LINES = 32

_MARKER = b"content-length:"
_MARKER_ANYWHERE = re.compile(re.escape(_MARKER), re.IGNORECASE)
# A Content-Length header line anywhere: a frame that began inside a body that was announced too long.
_NEXT_FRAME = re.compile(rb"content-length:[ \t]*\d{1,19}[ \t]*\r?\n", re.IGNORECASE)
_NEXT_FRAME_MAX = 64  # bytes such a line can span (the regex bounds the digits)
# No backtracking here: the value is stripped afterwards (a lazy value then r"[ \t]*" is quadratic).
_HEADER = re.compile(rb"([A-Za-z][A-Za-z0-9-]*)[ \t]*:([^\r\n]*)")
_LENGTH = re.compile(rb"\d{1,19}")
_PARTIAL_VALUE = re.compile(rb"[ \t]*\d{0,19}[ \t]*\r?")


@dataclass(frozen=True)
class Frame:
    """One message body; ``note`` says what was wrong with its framing if anything was repaired."""

    body: bytes
    note: str | None = None


@dataclass(frozen=True)
class FramingError:
    """Bytes that could not be read as a frame; the decoder has already skipped ahead.

    ``lost_frame`` is true when a frame header was read but its message is lost (the
    client may be waiting for an answer); false for stray bytes between frames.
    """

    message: str
    lost_frame: bool = True


class FrameDecoder:
    """Turns a byte stream into :class:`Frame` and :class:`FramingError` events."""

    def __init__(self, *, max_body: int = MAX_BODY_BYTES, max_line: int = MAX_HEADER_LINE_BYTES) -> None:
        self.max_body, self.max_line = max_body, max_line
        self._buf = bytearray()
        self._scanned = 0  # bytes of _buf already searched (for a newline, or for the next frame)
        self._skip_scanned = 0  # bytes of _buf already searched for a marker while skipping garbage
        self._headers = 0
        self._length: int | None = None
        self._bad: str | None = None  # why the frame being read is unusable
        self._in_body = False
        self._in_garbage = False

    @property
    def buffered(self) -> int:
        """How many bytes are held waiting for the rest of a line or body."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame | FramingError]:
        """Take the next bytes of the stream; return the frames and errors they complete."""
        self._buf += data
        events: list[Frame | FramingError] = []
        while self._step(events):
            pass
        return events

    # -- the state machine: each step consumes input or reports that it needs more -------

    def _step(self, events: list[Frame | FramingError]) -> bool:
        return self._body_step(events) if self._in_body else self._header_step(events)

    def _header_step(self, events: list[Frame | FramingError]) -> bool:
        buf = self._buf
        if self._in_garbage and not self._headers:
            # Skipping: jump to the next Content-Length (C speed) instead of reading line by line.
            found = _MARKER_ANYWHERE.search(buf, max(0, self._skip_scanned - len(_MARKER) + 1))
            if found is None:
                if len(buf) > self.max_line:
                    del buf[: len(buf) - len(_MARKER)]  # keep what may be the start of a marker
                self._skip_scanned, self._scanned = len(buf), 0
                return False
            if found.start() > 0:
                del buf[: found.start()]
                self._scanned = 0
            self._skip_scanned = 0
        newline = buf.find(b"\n", self._scanned)
        if newline < 0:
            if len(buf) > self.max_line:
                self._drop_long_line(events)
                return True
            self._scanned = len(buf)
            return False
        line = bytes(buf[: newline + 1])
        text = line.rstrip(b"\r\n")
        marker = text.lower().rfind(_MARKER)
        if marker > 0:
            # The tail of a body that was announced too short, glued to the next frame's header.
            self._garbage(events, "bytes that were not part of any frame")
            del buf[:marker]
            self._scanned = 0
            self._restart()
            return True
        del buf[: newline + 1]
        self._scanned = 0
        if not text:
            self._end_of_headers(events)
            return True
        header = _HEADER.fullmatch(text) if len(text) <= self.max_line else None
        if header is None or self._headers >= MAX_HEADER_LINES:
            self._garbage(events, "a line that is not an LSP header")
            return True
        if self._in_garbage and header.group(1).lower() != b"content-length":
            return True  # a stray "x: y" line in skipped bytes does not start a frame
        self._in_garbage = False
        self._headers += 1
        if header.group(1).lower() == b"content-length":
            self._set_length(header.group(2).strip(b" \t"))
        return True

    def _set_length(self, value: bytes) -> None:
        if _LENGTH.fullmatch(value) is None:
            self._bad = f"bad Content-Length {value[:40].decode('ascii', 'replace')!r}"
        elif int(value) > self.max_body:
            self._bad = f"Content-Length {int(value)} is over the {self.max_body}-byte limit"
        else:
            self._length = int(value)

    def _end_of_headers(self, events: list[Frame | FramingError]) -> None:
        if self._headers == 0:
            return  # a stray blank line between frames
        if self._bad is None and self._length is None:
            self._bad = "a frame without a Content-Length header"
        if self._bad is not None:
            events.append(FramingError(f"{self._bad}; skipping to the next Content-Length header"))
            self._restart()
            self._in_garbage = True  # the body that follows is skipped without a second report
            return
        self._in_body = True

    def _body_step(self, events: list[Frame | FramingError]) -> bool:
        assert self._length is not None
        buf, length = self._buf, self._length
        # Look for the next frame's header inside the body: only in bytes not searched before.
        start = max(0, self._scanned - _NEXT_FRAME_MAX)
        found = _NEXT_FRAME.search(buf, start, min(len(buf), length + _NEXT_FRAME_MAX))
        if found is not None and found.start() < length:
            body = bytes(buf[: found.start()])
            del buf[: found.start()]
            note = f"Content-Length said {length} bytes, but the next frame began after {len(body)}"
            self._finish(events, Frame(body, note))
            return True
        if len(buf) < length or (len(buf) < length + _NEXT_FRAME_MAX and _frame_may_begin(buf, length)):
            self._scanned = len(buf)
            return False
        body = bytes(buf[:length])
        del buf[:length]
        self._finish(events, Frame(body))
        return True

    def _finish(self, events: list[Frame | FramingError], frame: Frame) -> None:
        events.append(frame)
        self._restart()

    def _restart(self) -> None:
        self._scanned = 0
        self._skip_scanned = 0
        self._headers = 0
        self._length = None
        self._bad = None
        self._in_body = False

    def _garbage(self, events: list[Frame | FramingError], what: str) -> None:
        if self._headers:
            events.append(FramingError("a broken frame header; skipping to the next Content-Length header"))
        elif not self._in_garbage:
            events.append(FramingError(f"skipped {what}", lost_frame=False))
        self._restart()
        self._in_garbage = True

    def _drop_long_line(self, events: list[Frame | FramingError]) -> None:
        """A "line" over the limit is garbage; keep only what may begin the next frame."""
        buf = self._buf
        marker = bytes(buf).lower().rfind(_MARKER)
        if 0 < marker and len(buf) - marker <= self.max_line:
            keep = marker
        else:
            keep = len(buf) - (len(_MARKER) - 1)
        self._garbage(events, "an over-long line that is not an LSP header")
        del buf[:keep]
        self._scanned = 0


def _frame_may_begin(buf: bytearray, length: int) -> bool:
    """Whether the start of a Content-Length line that has not fully arrived begins before ``length``.

    Then the body was announced too long by less than a header line: wait for the rest of
    that line (at most _NEXT_FRAME_MAX bytes) rather than cut a frame in two.
    """
    for start in range(max(0, len(buf) - _NEXT_FRAME_MAX), length):
        tail = bytes(buf[start:]).lower()
        head, rest = tail[: len(_MARKER)], tail[len(_MARKER) :]
        if _MARKER.startswith(head) and (not rest or _PARTIAL_VALUE.fullmatch(rest) is not None):
            return True
    return False
