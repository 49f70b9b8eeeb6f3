"""Merging the reviewers' reports into one outcome: agreed findings, candidates, failures, cost.

Findings about the same lines and the same problem become one
:class:`~fusion_core.findings.MergedFinding` that records which reviewers
reported it (:func:`fusion_core.findings.merge_findings`); agreement drives
severity and order. No judge call is needed to merge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from fusion_core.findings import MergedFinding, merge_findings
from fusion_core.result import Candidate, ErrorInfo
from fusion_core.review.parse import Reports
from fusion_core.usage import Usage

__all__ = ["ReviewOutcome", "merge_reports"]


@dataclass(frozen=True)
class ReviewOutcome:
    """A finished review: merged findings, each model's candidate, and what it cost."""

    findings: tuple[MergedFinding, ...]
    candidates: tuple[Candidate, ...]
    responders: tuple[str, ...]
    failures: dict[str, ErrorInfo] = field(default_factory=dict)
    redacted: int = 0
    usage: Usage = field(default_factory=Usage)


def merge_reports(reports: Reports, lines: Sequence[str], *, redacted: int) -> ReviewOutcome:
    """One outcome from every reviewer's reports over the reviewed ``lines``."""
    merged = merge_findings(reports.findings, len(reports.findings), lines)
    return ReviewOutcome(
        findings=tuple(merged),
        candidates=tuple(reports.candidates),
        responders=tuple(reports.findings),
        failures=reports.failures,
        redacted=redacted,
        usage=sum((c.usage for c in reports.candidates), Usage()),
    )
