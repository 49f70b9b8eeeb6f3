"""Reviewing a change instead of a file: which lines a model sees, and which findings count.

``fusion review --diff`` and ``--staged`` send each model only the changed
hunks with some context and the file's outline (imports and signatures), each
line numbered with its real line number, so findings need no remapping.
Findings outside the changed lines are dropped, unless they are errors at
least two reviewers agree on: those are kept and marked "outside the change".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fusion_core.review import MergedFinding

__all__ = ["DIFF_CONTEXT_LINES", "Changed", "in_change", "scope_to_changes", "shown_lines"]

DIFF_CONTEXT_LINES = 10
# An error this many reviewers agree on survives outside the change.
OUTSIDE_CHANGE_AGREEMENT = 2
# Lines that give a model the shape of the file: imports and definitions (several languages).
_OUTLINE = re.compile(
    r"^\s*(?:import\s|from\s+\S+\s+import\s|(?:async\s+)?def\s|class\s|@|function\s|func\s|fn\s|pub\s+fn\s|#include\b)"
)

Changed = tuple[tuple[int, int], ...]


def shown_lines(lines: Sequence[str], changed: Changed) -> list[int]:
    """The 1-based line numbers a model sees: the outline plus each hunk with context."""
    keep: set[int] = {n for n, line in enumerate(lines, 1) if _OUTLINE.match(line)}
    for lo, hi in changed:
        keep.update(range(max(1, lo - DIFF_CONTEXT_LINES), min(len(lines), hi + DIFF_CONTEXT_LINES) + 1))
    return sorted(keep)


def in_change(start: int, end: int, changed: Changed) -> bool:
    """Whether lines ``start..end`` overlap a changed range."""
    return any(start <= hi and end >= lo for lo, hi in changed)


def scope_to_changes(findings: Sequence[MergedFinding], changed: Changed) -> list[tuple[MergedFinding, bool]]:
    """The findings that count for a change, each with whether it lies outside the change."""
    kept = []
    for finding in findings:
        inside = in_change(finding.start_line, finding.end_line, changed)
        if inside:
            kept.append((finding, False))
        elif finding.severity == "error" and len(finding.models) >= OUTSIDE_CHANGE_AGREEMENT:
            kept.append((finding, True))
    return kept
