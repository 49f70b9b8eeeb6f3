"""Fused findings attached to open documents, kept in step with edits, shown as diagnostics.

A finding covers whole lines. When the document changes, findings on edited
lines are dropped and the ones below move with the text, so a diagnostic
never points at the wrong line. Fixes become ``WorkspaceEdit`` s that replace
the finding's lines, versioned when the client supports it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from lsprotocol import types
from pygls.workspace import TextDocument

from fusion_core.review import MergedFinding
from fusion_lsp.documents import LineChange, eol_of, lines_range, replace_lines_edit, shift_lines, split_lines

SOURCE = "fusion"
MAX_FINDINGS_PER_DOCUMENT = 200
_SEVERITY = {
    "error": types.DiagnosticSeverity.Error,
    "warning": types.DiagnosticSeverity.Warning,
    "info": types.DiagnosticSeverity.Information,
    "hint": types.DiagnosticSeverity.Hint,
}


@dataclass(frozen=True)
class LiveFinding:
    """A merged finding and where it is now: 0-based lines ``first..last`` (fix likewise)."""

    finding: MergedFinding
    first: int
    last: int
    fix: tuple[int, int, str] | None = None

    @classmethod
    def from_merged(cls, finding: MergedFinding) -> LiveFinding:
        fix = finding.fix
        return cls(
            finding,
            finding.start_line - 1,
            finding.end_line - 1,
            None if fix is None else (fix.start_line - 1, fix.end_line - 1, fix.text),
        )

    @property
    def id(self) -> str:
        return self.finding.id

    def shifted(self, change: LineChange | None) -> LiveFinding | None:
        """This finding after ``change``, or None if the change touched its lines."""
        if change is None:
            return None
        lines = shift_lines(self.first, self.last, change)
        if lines is None:
            return None
        fix = None
        if self.fix is not None:
            fix_lines = shift_lines(self.fix[0], self.fix[1], change)
            fix = None if fix_lines is None else (*fix_lines, self.fix[2])
        return replace(self, first=lines[0], last=lines[1], fix=fix)


def follow_changes(findings: Iterable[LiveFinding], changes: Iterable[LineChange | None]) -> list[LiveFinding]:
    """The findings that survive ``changes``, moved to their new lines."""
    current = list(findings)
    for change in changes:
        current = [moved for f in current if (moved := f.shifted(change)) is not None]
    return current


class FindingStore:
    """Findings per document URI, in display order."""

    def __init__(self) -> None:
        self._by_uri: dict[str, dict[str, LiveFinding]] = {}

    def replace(self, uri: str, findings: list[LiveFinding], lines: tuple[int, int] | None = None) -> None:
        """Set a document's findings; with ``lines`` (0-based) only those within that span are replaced."""
        kept = []
        if lines is not None:
            kept = [f for f in self.get_all(uri) if f.last < lines[0] or f.first > lines[1]]
        merged = {f.id: f for f in [*findings, *kept][:MAX_FINDINGS_PER_DOCUMENT]}
        if merged:
            self._by_uri[uri] = merged
        else:
            self._by_uri.pop(uri, None)

    def get(self, uri: str, finding_id: str) -> LiveFinding | None:
        return self._by_uri.get(uri, {}).get(finding_id)

    def get_all(self, uri: str) -> list[LiveFinding]:
        return list(self._by_uri.get(uri, {}).values())

    def apply_change(self, uri: str, change: LineChange | None) -> bool:
        """Move or drop a document's findings after one edit; True if anything changed."""
        current = self._by_uri.get(uri)
        if not current:
            return False
        moved = follow_changes(current.values(), [change])
        changed = len(moved) != len(current) or any(
            (m.first, m.last) != (current[m.id].first, current[m.id].last) for m in moved
        )
        if changed:
            self.replace(uri, moved)
        return changed

    def forget(self, uri: str) -> bool:
        return self._by_uri.pop(uri, None) is not None

    def count(self) -> int:
        return sum(len(v) for v in self._by_uri.values())

    def __len__(self) -> int:
        return len(self._by_uri)


def diagnostic(live: LiveFinding, lines: list[str], doc: TextDocument) -> types.Diagnostic:
    """The diagnostic showing ``live``: agreement in the message, reporting models in ``data``."""
    finding = live.finding
    data: dict[str, Any] = {
        "id": finding.id,
        "models": list(finding.models),
        "agreement": [len(finding.models), finding.responders],
        "category": finding.category,
        "fixable": live.fix is not None,
    }
    return types.Diagnostic(
        range=lines_range(lines, live.first, live.last, doc.position_codec),
        message=f"{finding.message} ({finding.agreement})",
        severity=_SEVERITY[finding.severity],
        code=finding.category,
        source=SOURCE,
        data=data,
    )


def diagnostics_for(findings: list[LiveFinding], doc: TextDocument) -> list[types.Diagnostic]:
    """Diagnostics for every finding that still fits the document."""
    lines = split_lines(doc.source)
    return [diagnostic(f, lines, doc) for f in findings if f.last < len(lines)]


def fix_edit(live: LiveFinding, doc: TextDocument, document_changes: bool) -> types.WorkspaceEdit | None:
    """The WorkspaceEdit applying ``live``'s fix to the document as it is now."""
    if live.fix is None:
        return None
    text = doc.source
    lines = split_lines(text)
    first, last, replacement = live.fix
    if last >= len(lines):
        return None
    edit = replace_lines_edit(lines, first, last, replacement, eol_of(text), doc.position_codec)
    if document_changes:
        ident = types.OptionalVersionedTextDocumentIdentifier(uri=doc.uri, version=doc.version)
        return types.WorkspaceEdit(document_changes=[types.TextDocumentEdit(text_document=ident, edits=[edit])])
    return types.WorkspaceEdit(changes={doc.uri: [edit]})
