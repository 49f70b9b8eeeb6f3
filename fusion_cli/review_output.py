"""``fusion review`` output: text grouped by file, JSON, SARIF 2.1.0 and GitHub workflow commands.

Every format renders the same :class:`FileReview` list, so they cannot disagree
about what was found. SARIF is what GitHub code scanning and most CI systems
ingest; workflow commands annotate a pull request straight from a job's log.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from fusion_core.result import ErrorInfo
from fusion_core.review import Finding, Fix, MergedFinding

__all__ = ["FORMATS", "FileReview", "render"]

FORMATS = ("text", "json", "sarif", "github")
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
_SARIF_LEVEL = {"error": "error", "warning": "warning", "info": "note", "hint": "note"}
_GITHUB_LEVEL = {"error": "error", "warning": "warning", "info": "notice", "hint": "notice"}


@dataclass(frozen=True)
class FileReview:
    """One file's review: merged findings (with whether each lies outside the change) and each reviewer's own."""

    path: str
    findings: tuple[tuple[MergedFinding, bool], ...] = ()
    reviewers: dict[str, list[Finding]] = field(default_factory=dict)
    failures: dict[str, ErrorInfo] = field(default_factory=dict)
    cached: bool = False
    note: str | None = None


def rule_id(finding: MergedFinding) -> str:
    """The analyser rule behind a finding, else ``fusion/<category>``."""
    rules = finding.rules
    return rules[0][0] if rules else f"fusion/{finding.category}"


def render(files: list[FileReview], fmt: str) -> str:
    """``files`` in format ``fmt`` (one of :data:`FORMATS`)."""
    return {"text": _text, "json": _json, "sarif": _sarif, "github": _github}[fmt](files)


def _who(finding: MergedFinding) -> str:
    return f"{finding.agreement}: {', '.join(finding.models)}"


def _text(files: list[FileReview]) -> str:
    out = []
    for review in files:
        if review.note:
            out.append(f"{review.path}: {review.note}")
        if not review.findings:
            continue
        out.append(review.path)
        for finding, outside in review.findings:
            span = f"{finding.start_line}" + (f"-{finding.end_line}" if finding.end_line > finding.start_line else "")
            where = " (outside the change)" if outside else ""
            rules = f" [{', '.join(r for r, _ in finding.rules)}]" if finding.rules else ""
            out.append(
                f"  {span}: {finding.severity} [{finding.category}] {finding.message}{rules} ({_who(finding)}){where}"
            )
            if finding.fix is not None:
                out.append("      fix: " + _fix_text(finding.fix))
    total = sum(len(r.findings) for r in files)
    out.append(f"{total} finding{'s' if total != 1 else ''} in {len(files)} file{'s' if len(files) != 1 else ''}")
    return "\n".join(out) + "\n"


def _fix_text(fix: Fix) -> str:
    """The fix as it reads in a terminal; an empty replacement (ruff's unused import) deletes lines."""
    if fix.text.strip():
        return fix.text.replace("\n", "\n           ")
    lines = f"line {fix.start_line}" if fix.end_line == fix.start_line else f"lines {fix.start_line}-{fix.end_line}"
    return f"delete {lines}"


def _json(files: list[FileReview]) -> str:
    data = {
        "files": [
            {
                "path": r.path,
                "cached": r.cached,
                "note": r.note,
                "findings": [{**f.to_dict(), "outside_change": outside} for f, outside in r.findings],
                "reviewers": {name: [asdict(x) for x in found] for name, found in r.reviewers.items()},
                "failures": {name: asdict(e) for name, e in r.failures.items()},
            }
            for r in files
        ],
        "summary": {"files": len(files), "findings": sum(len(r.findings) for r in files)},
    }
    return json.dumps(data, indent=2) + "\n"


def _sarif(files: list[FileReview]) -> str:
    rules: dict[str, dict[str, Any]] = {}
    results = []
    for review in files:
        for finding, outside in review.findings:
            rid = rule_id(finding)
            url = next((u for r, u in finding.rules if r == rid and u), None)
            rule: dict[str, Any] = {"id": rid, "shortDescription": {"text": rid}}
            if url:
                rule["helpUri"] = url
            rules.setdefault(rid, rule)
            region = {"startLine": finding.start_line, "endLine": finding.end_line}
            location = {"physicalLocation": {"artifactLocation": {"uri": review.path}, "region": region}}
            result: dict[str, Any] = {
                "ruleId": rid,
                "level": _SARIF_LEVEL[finding.severity],
                "message": {"text": finding.message},
                "locations": [location],
                "partialFingerprints": {"fusionFinding/v1": finding.id},
                "properties": {
                    "reviewers": list(finding.models),
                    "agreement": finding.agreement,
                    "category": finding.category,
                    "severity": finding.severity,
                    "outsideChange": outside,
                },
            }
            if finding.fix is not None:
                deleted = {"startLine": finding.fix.start_line, "endLine": finding.fix.end_line}
                change = {
                    "artifactLocation": {"uri": review.path},
                    "replacements": [{"deletedRegion": deleted, "insertedContent": {"text": finding.fix.text}}],
                }
                result["fixes"] = [{"description": {"text": "Suggested fix"}, "artifactChanges": [change]}]
            results.append(result)
    run = {
        "tool": {"driver": {"name": "fusion", "rules": list(rules.values())}},
        "results": results,
    }
    return json.dumps({"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}, indent=2) + "\n"


def escape_data(text: str) -> str:
    """A workflow command's message, escaped as GitHub's runner expects."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value: the message escapes plus ``:`` and ``,``."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _github(files: list[FileReview]) -> str:
    out = []
    for review in files:
        for finding, outside in review.findings:
            title = f"{rule_id(finding)} ({finding.agreement})" + (" outside the change" if outside else "")
            props = ",".join(
                f"{k}={escape_property(str(v))}"
                for k, v in (
                    ("file", review.path),
                    ("line", finding.start_line),
                    ("endLine", finding.end_line),
                    ("title", title),
                )
            )
            message = f"{finding.message} ({_who(finding)})"
            out.append(f"::{_GITHUB_LEVEL[finding.severity]} {props}::{escape_data(message)}")
    return "\n".join(out) + ("\n" if out else "")
