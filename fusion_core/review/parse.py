"""Reading the reviewers' replies: each model's text and each analyser's run become findings.

Replies are parsed leniently (:func:`fusion_core.findings.parse_findings`); a
reply that cannot be read is that reviewer's failure, kept beside the others'
findings. Replacements written by remote models saw redacted code, so the
secrets they quote are put back (:class:`fusion_core.redaction.Redaction`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from fusion_core.analysers import ToolRun
from fusion_core.errors import FusionError
from fusion_core.findings import Finding, parse_findings
from fusion_core.pool import error_info
from fusion_core.redaction import Redaction
from fusion_core.result import Candidate, ErrorInfo

__all__ = ["Reports", "read_reports"]


@dataclass
class Reports:
    """What every reviewer reported (by member name), and who failed and why."""

    findings: dict[str, list[Finding]] = field(default_factory=dict)
    failures: dict[str, ErrorInfo] = field(default_factory=dict)
    candidates: list[Candidate] = field(default_factory=list)


def read_reports(
    candidates: Sequence[Candidate],
    runs: Sequence[ToolRun],
    *,
    line_count: int,
    lines: tuple[int, int] | None,
    local: set[str],
    redaction: Redaction,
) -> Reports:
    """Parse the models' replies (``local`` names saw the code unredacted) and add the analysers' findings."""
    reports = Reports(candidates=list(candidates))
    for cand in candidates:
        if not cand.ok:
            if cand.error is not None:
                reports.failures[cand.model] = cand.error
            continue
        try:
            found = parse_findings(cand.text, cand.model, line_count, lines)
        except FusionError as exc:
            reports.failures[cand.model] = error_info(exc)
            continue
        if cand.model not in local:
            found = [_restored(f, redaction) for f in found]
        reports.findings[cand.model] = found
    for run in runs:
        if run.candidate is None:
            continue  # the analyser does not apply to this file
        reports.candidates.append(run.candidate)
        if run.candidate.ok:
            reports.findings[run.member] = list(run.findings)
        elif run.candidate.error is not None:
            reports.failures[run.member] = run.candidate.error
    return reports


def _restored(finding: Finding, redaction: Redaction) -> Finding:
    if finding.replacement is None or not redaction.count:
        return finding
    return replace(finding, replacement=redaction.restore(finding.replacement))
