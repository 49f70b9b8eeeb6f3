"""Safe access to open documents, positions in the client's units, and line shifts on edits.

Lines are counted the way LSP counts them (``\\n``, ``\\r\\n`` or ``\\r`` end a
line). Every position that comes from the client is checked before use, so a
bad position yields an empty answer rather than an exception.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote

from lsprotocol import types

if TYPE_CHECKING:
    from pygls.workspace import TextDocument, Workspace
    from pygls.workspace.position_codec import PositionCodec

_EOL = re.compile(r"\r\n|\r|\n")
# Keep this many recent edits per document so a review that finishes late can be mapped.
CHANGE_LOG_SIZE = 2000


def split_lines(text: str) -> list[str]:
    """The document's lines, without their line breaks."""
    return _EOL.split(text)


def newline_count(text: str) -> int:
    """How many line breaks ``text`` holds."""
    return len(_EOL.findall(text))


def eol_of(text: str) -> str:
    """The document's line ending (what a fix should insert)."""
    match = _EOL.search(text)
    return match.group() if match else "\n"


def open_document(workspace: Workspace, uri: str) -> TextDocument | None:
    """The open document at ``uri``, or None (never read from disk)."""
    doc: TextDocument | None = workspace.text_documents.get(unquote(uri))
    return doc


def is_binary(text: str) -> bool:
    """Whether ``text`` looks like binary data rather than source code."""
    return "\x00" in text


def text_around(
    lines: list[str], position: types.Position, codec: PositionCodec, *, before: int, after: int
) -> tuple[str, str] | None:
    """Up to ``before`` characters before a client position and ``after`` after it (line breaks
    as ``\\n``), or None if the position is outside the document.

    A column past the end of its line means the end of that line, as LSP says.
    """
    if position.line < 0 or position.character < 0 or position.line >= len(lines):
        return None
    line = lines[position.line]
    column = column_index(line, position.character, codec)
    head, tail = [line[:column]], [line[column:]]
    size = len(head[0])
    for index in range(position.line - 1, -1, -1):
        if size >= before:
            break
        head.append(lines[index])
        size += len(lines[index]) + 1
    size = len(tail[0])
    for index in range(position.line + 1, len(lines)):
        if size >= after:
            break
        tail.append(lines[index])
        size += len(lines[index]) + 1
    return "\n".join(reversed(head))[-before:], "\n".join(tail)[:after]


def column_index(line: str, units: int, codec: PositionCodec) -> int:
    """The index in ``line`` of a column given in the client's units (clamped to the line)."""
    count = 0
    for index, char in enumerate(line):
        if count >= units:
            return index
        count += codec.impl.code_units_for_char(char)
    return len(line)


def line_units(line: str, codec: PositionCodec) -> int:
    """The length of ``line`` in the client's position units."""
    return int(codec.client_num_units(line))


def lines_range(lines: list[str], first: int, last: int, codec: PositionCodec) -> types.Range:
    """A diagnostic range for whole lines ``first..last`` (0-based): first non-blank to end of line."""
    first = min(max(first, 0), len(lines) - 1)
    last = min(max(last, first), len(lines) - 1)
    head = lines[first]
    indent = len(head) - len(head.lstrip())
    start = types.Position(line=first, character=line_units(head[:indent], codec))
    end = types.Position(line=last, character=line_units(lines[last], codec))
    if start == end and indent:
        start = types.Position(line=first, character=0)
    return types.Range(start=start, end=end)


def replace_lines_edit(
    lines: list[str], first: int, last: int, text: str, eol: str, codec: PositionCodec
) -> types.TextEdit:
    """A TextEdit replacing whole lines ``first..last`` (0-based) with ``text``."""
    body = eol.join(text.split("\n"))
    if last + 1 < len(lines):
        end = types.Position(line=last + 1, character=0)
        body += eol
    else:
        end = types.Position(line=last, character=line_units(lines[last], codec))
    return types.TextEdit(range=types.Range(start=types.Position(line=first, character=0), end=end), new_text=body)


@dataclass(frozen=True)
class LineChange:
    """One edit, reduced to what moves lines: the replaced span and how many lines it now holds."""

    version: int | None
    start: tuple[int, int]
    end: tuple[int, int]
    new_lines: int

    @property
    def delta(self) -> int:
        return self.new_lines - (self.end[0] - self.start[0])


def change_of(change: types.TextDocumentContentChangeEvent, version: int | None) -> LineChange | None:
    """The line-level effect of one content change; None for a whole-document replacement."""
    if not isinstance(change, types.TextDocumentContentChangePartial):
        return None
    rng = change.range
    return LineChange(
        version, (rng.start.line, rng.start.character), (rng.end.line, rng.end.character), newline_count(change.text)
    )


def shift_lines(first: int, last: int, change: LineChange) -> tuple[int, int] | None:
    """Where whole lines ``first..last`` are after ``change``; None if the change touched them."""
    if change.end <= (first, 0):
        return first + change.delta, last + change.delta
    if change.start >= (last + 1, 0):
        return first, last
    return None


class ChangeLog:
    """Recent line changes of one document, so results computed on an old version can be mapped."""

    def __init__(self, size: int = CHANGE_LOG_SIZE) -> None:
        self._changes: deque[LineChange | None] = deque(maxlen=size)
        self._versions: deque[int | None] = deque(maxlen=size)
        self._dropped_after: int | None = None

    def record(self, change: LineChange | None, version: int | None) -> None:
        if len(self._changes) == self._changes.maxlen:
            self._dropped_after = self._versions[0]
        self._changes.append(change)
        self._versions.append(version)

    def since(self, version: int | None) -> list[LineChange | None] | None:
        """Changes made after ``version``, in order; None if they are no longer all known."""
        if version is None:
            return None
        if self._dropped_after is not None and self._dropped_after >= version:
            return None
        return [c for c, v in zip(self._changes, self._versions, strict=True) if v is None or v > version]

    def __len__(self) -> int:
        return len(self._changes)
