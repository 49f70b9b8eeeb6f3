"""The review request: what one reviewer model is asked, and the JSON shape its reply must take.

Every model gets the same prompt: the code with numbered lines, framed as
untrusted data (:mod:`fusion_core.framing`), and a request for findings as JSON
(:data:`FINDINGS_SCHEMA`). Reviewing a selection shows context lines around it;
reviewing a change shows the changed lines and an outline (:mod:`fusion_core.review_diff`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from fusion_core.backends.base import Message
from fusion_core.findings import CATEGORIES, SEVERITIES
from fusion_core.framing import DATA_NOTICE, block
from fusion_core.review_diff import Changed, shown_lines

__all__ = ["FINDINGS_SCHEMA", "INSTRUCTIONS", "ReviewTarget", "review_messages", "split_lines"]

SELECTION_CONTEXT_LINES = 20

_FINDING_PROPERTIES: dict[str, Any] = {
    "start_line": {"type": "integer"},
    "end_line": {"type": "integer"},
    "severity": {"type": "string", "enum": list(SEVERITIES)},
    "category": {"type": "string", "enum": list(CATEGORIES)},
    "message": {"type": "string"},
    "replacement": {"type": ["string", "null"]},
}
FINDINGS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["findings"],
    "additionalProperties": False,
    "properties": {
        "findings": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": _FINDING_PROPERTIES,
                "required": list(_FINDING_PROPERTIES),
                "additionalProperties": False,
            },
        }
    },
}

INSTRUCTIONS = """You are a meticulous senior code reviewer. Find real problems in the code: bugs, \
crashes, wrong logic, security holes, resource leaks, race conditions, performance traps. \
Do not report style nits unless they hide a bug.
Reply with one JSON object and nothing else, following this JSON schema:
{schema}
- start_line and end_line are the numbers shown left of each code line (1-based, inclusive).
- severity: error (will break or is exploitable), warning (likely wrong), info, hint.
- message: one sentence naming the problem.
- replacement: the complete corrected text of lines start_line..end_line, without the line \
numbers, keeping the indentation; null when there is no local fix.
- Names like REDACTED_SECRET_1 stand for secrets removed before review; keep them unchanged.
- If the code has no problems, reply {{"findings": []}}."""


@dataclass(frozen=True)
class ReviewTarget:
    """What to review: a file's text, optionally only lines ``first..last`` (1-based)."""

    text: str
    path: str = ""
    language: str = ""
    lines: tuple[int, int] | None = None
    # Reviewing a change: the changed line ranges (1-based, inclusive); see fusion_core.review_diff.
    changed: Changed | None = None


def split_lines(text: str) -> list[str]:
    """Lines as LSP counts them: split at \\r\\n, \\n or \\r."""
    return re.split(r"\r\n|\r|\n", text)


def review_messages(target: ReviewTarget, code: str, nonce: str) -> tuple[Message, ...]:
    """The system and user messages asking one model to review ``code`` (target's text, maybe redacted)."""
    lines = split_lines(code)
    first, last = 1, len(lines)
    scope = "Review the whole file."
    if target.lines is not None:
        lo, hi = target.lines
        first, last = max(1, lo - SELECTION_CONTEXT_LINES), min(len(lines), hi + SELECTION_CONTEXT_LINES)
        scope = (
            f"Review only lines {lo}-{hi}; the lines around them are context. Report nothing outside lines {lo}-{hi}."
        )
    shown = list(range(first, last + 1))
    if target.changed is not None and target.lines is None:
        shown = shown_lines(lines, target.changed)
        spans = ", ".join(f"{lo}-{hi}" if hi > lo else str(lo) for lo, hi in target.changed)
        scope = (
            f"Review only the changed lines ({spans}). The other lines shown are context and the file's "
            "outline; lines not shown are marked with ... . Use the line numbers shown."
        )
    width = len(str(last))
    rows, previous = [], 0
    for n in shown:
        if previous and n > previous + 1:
            rows.append(f"{'...':>{width}}|")
        rows.append(f"{n:>{width}}| {lines[n - 1]}")
        previous = n
    numbered = "\n".join(rows)
    header = f"File: {target.path or 'untitled'}" + (f" ({target.language})" if target.language else "")
    user = "\n\n".join([DATA_NOTICE.format(nonce=nonce), header, scope, block("code", "FILE", numbered, nonce)])
    system = INSTRUCTIONS.format(schema=json.dumps(FINDINGS_SCHEMA, separators=(",", ":")))
    return (Message("system", system), Message("user", user))
