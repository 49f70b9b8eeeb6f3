"""Findings: what one reviewer reports, how replies are parsed, and how reports merge by agreement.

A reviewer (a model, or a static analyser from :mod:`fusion_core.analysers`)
reports :class:`Finding` objects. Findings about the same lines and the same
problem become one :class:`MergedFinding` recording who reported it; agreement
("3 of 4 reviewers") drives severity and order. Split from
:mod:`fusion_core.review`, which re-exports every public name here.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from fusion_core.analysers import is_tool_spec
from fusion_core.errors import BadResponse
from fusion_core.framing import first_json_value

__all__ = [
    "CATEGORIES",
    "SEVERITIES",
    "Finding",
    "Fix",
    "MergedFinding",
    "Severity",
    "agreed_severity",
    "merge_findings",
    "parse_findings",
]

Severity = Literal["error", "warning", "info", "hint"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info", "hint")
_RANK = {"error": 3, "warning": 2, "info": 1, "hint": 0}
CATEGORIES = ("bug", "security", "performance", "error-handling", "concurrency", "style", "other")

MAX_FINDINGS_PER_MODEL = 50
MAX_MESSAGE_CHARS = 500
MAX_REPLACEMENT_CHARS = 20_000
# Models are often one line off; reports this close (and about the same problem) merge.
LINE_TOLERANCE = 1
# sim(messages) + CATEGORY_BONUS (same category) must reach this to count as "the same problem".
SAME_PROBLEM_SCORE = 0.35
CATEGORY_BONUS = 0.3


@dataclass(frozen=True)
class Fix:
    """Replace lines ``start_line..end_line`` (1-based, inclusive) with ``text``."""

    start_line: int
    end_line: int
    text: str
    models: tuple[str, ...] = ()


@dataclass(frozen=True)
class Finding:
    """One model's report about lines ``start_line..end_line`` (1-based, inclusive)."""

    model: str
    start_line: int
    end_line: int
    severity: Severity
    category: str
    message: str
    replacement: str | None = None
    # Analyser findings: the rule id ("ruff/S608") and its documentation.
    rule: str | None = None
    url: str | None = None
    # The lines ``replacement`` replaces when they differ from the finding's (a ruff fix).
    fix_lines: tuple[int, int] | None = None


@dataclass(frozen=True)
class MergedFinding:
    """Findings several models made about the same lines and the same problem."""

    id: str
    start_line: int
    end_line: int
    severity: Severity
    category: str
    message: str
    models: tuple[str, ...]
    responders: int
    fix: Fix | None = None
    reports: tuple[Finding, ...] = ()
    # "reviewers" once analysers take part: a reviewer is a reviewer.
    noun: str = "model"

    @property
    def agreement(self) -> str:
        """E.g. ``2 of 3 models``, or ``3 of 4 reviewers`` with analysers in the pool."""
        return f"{len(self.models)} of {self.responders} {self.noun}{'s' if self.responders != 1 else ''}"

    @property
    def rules(self) -> tuple[tuple[str, str | None], ...]:
        """The analyser rules behind this finding, as (rule id, documentation URL)."""
        return tuple((r.rule, r.url) for r in self.reports if r.rule)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "start_line": self.start_line,
            "end_line": self.end_line,
            "severity": self.severity,
            "category": self.category,
            "message": self.message,
            "models": list(self.models),
            "agreement": [len(self.models), self.responders],
            "rules": [{"id": rule, "url": url} for rule, url in self.rules],
            "fix": None
            if self.fix is None
            else {"start_line": self.fix.start_line, "end_line": self.fix.end_line, "text": self.fix.text},
        }


# -- parsing --------------------------------------------------------------------------

_SEVERITY_WORDS = {
    "error": "error",
    "critical": "error",
    "blocker": "error",
    "high": "error",
    "severe": "error",
    "major": "error",
    "fatal": "error",
    "warning": "warning",
    "warn": "warning",
    "medium": "warning",
    "moderate": "warning",
    "info": "info",
    "information": "info",
    "low": "info",
    "minor": "info",
    "note": "info",
    "hint": "hint",
    "nit": "hint",
    "suggestion": "hint",
    "style": "hint",
}
_FENCE = re.compile(r"^\s*```[\w+-]*\n(.*?)\n?```\s*$", re.DOTALL)


def parse_findings(reply: str, model: str, line_count: int, lines: tuple[int, int] | None = None) -> list[Finding]:
    """The findings in one model's reply; raises BadResponse when there is no findings JSON."""
    items = _findings_list(reply)
    if items is None:
        raise BadResponse(
            f"{model} did not reply with findings JSON",
            model=model,
            hint="A larger or instruction-tuned model follows the findings format better.",
        )
    lo, hi = lines if lines is not None else (1, max(line_count, 1))
    found = []
    for item in items[:MAX_FINDINGS_PER_MODEL]:
        finding = _finding(item, model, max(line_count, 1))
        if finding is not None and finding.end_line >= lo and finding.start_line <= hi:
            found.append(finding)
    return found


def _findings_list(reply: str) -> list[Any] | None:
    """The list of findings in a reply: ``{"findings": [...]}`` (bare, fenced or in prose) or a bare list."""
    data = first_json_value(reply, "{", lambda v: isinstance(v, dict | list))
    if isinstance(data, dict):
        data = data.get("findings", data.get("issues"))
    if isinstance(data, list):
        return data
    value = first_json_value(reply, "[", lambda v: isinstance(v, list) and all(isinstance(i, dict) for i in v))
    return value if isinstance(value, list) else None


def _finding(item: Any, model: str, line_count: int) -> Finding | None:
    if not isinstance(item, dict):
        return None
    start = _int(item.get("start_line", item.get("line")))
    end = _int(item.get("end_line", start))
    message = item.get("message") or item.get("description")
    if start is None or not isinstance(message, str) or not message.strip():
        return None
    end = start if end is None else end
    start, end = sorted((min(max(start, 1), line_count), min(max(end, 1), line_count)))
    severity = _SEVERITY_WORDS.get(str(item.get("severity", "")).strip().lower(), "warning")
    category = str(item.get("category") or "other").strip().lower().replace("_", "-")
    replacement = item.get("replacement")
    if isinstance(replacement, str):
        fenced = _FENCE.match(replacement)
        replacement = fenced.group(1) if fenced else replacement
        replacement = replacement[:MAX_REPLACEMENT_CHARS]
    else:
        replacement = None
    return Finding(
        model=model,
        start_line=start,
        end_line=end,
        severity=severity,  # type: ignore[arg-type]
        category=category if category in CATEGORIES else "other",
        message=" ".join(message.split())[:MAX_MESSAGE_CHARS],
        replacement=replacement,
    )


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        # A reply may say 1e400 or NaN (Python's json reads both): no line number.
        return int(value) if math.isfinite(value) else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


# -- merging --------------------------------------------------------------------------

_WORD = re.compile(r"[a-z0-9_]{3,}")
_STOP = frozenset(
    "the this that with from into when will does not can could should would may "
    "might line lines code function value variable here there which".split()
)


def merge_findings(
    per_model: dict[str, list[Finding]], responders: int | None = None, original_lines: Sequence[str] = ()
) -> list[MergedFinding]:
    """Merge every model's findings; most agreed first. ``responders`` defaults to the models given."""
    total = responders if responders is not None else len(per_model)
    clusters: list[list[Finding]] = []
    everything = sorted((f for fs in per_model.values() for f in fs), key=lambda f: (f.start_line, f.model))
    for finding in everything:
        best, best_score = None, SAME_PROBLEM_SCORE
        for cluster in clusters:
            if any(f.model == finding.model for f in cluster):
                continue
            score = max(_same_problem(finding, other) for other in cluster)
            if score >= best_score:
                best, best_score = cluster, score
        if best is None:
            clusters.append([finding])
        else:
            best.append(finding)
    noun = "reviewer" if any(is_tool_spec(name) for name in per_model) else "model"
    merged = [replace(_merge(cluster, max(total, 1), original_lines), noun=noun) for cluster in clusters]
    merged.sort(key=lambda m: (-len(m.models), -_RANK[m.severity], m.start_line, m.id))
    return merged


def _same_problem(a: Finding, b: Finding) -> float:
    if a.start_line > b.end_line + LINE_TOLERANCE or b.start_line > a.end_line + LINE_TOLERANCE:
        return 0.0
    words_a, words_b = _words(a.message), _words(b.message)
    union = words_a | words_b
    sim = len(words_a & words_b) / len(union) if union else 0.0
    return sim + (CATEGORY_BONUS if a.category == b.category else 0.0)


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


def _merge(cluster: list[Finding], responders: int, original_lines: Sequence[str]) -> MergedFinding:
    # The medoid (most like the others) speaks for the cluster.
    medoid = max(cluster, key=lambda f: (sum(_same_problem(f, o) for o in cluster if o is not f), -len(f.message)))
    span = Counter((f.start_line, f.end_line) for f in cluster).most_common(1)[0][0]
    if Counter((f.start_line, f.end_line) for f in cluster)[span] == 1:
        span = (medoid.start_line, medoid.end_line)
    models = tuple(sorted(f.model for f in cluster))
    severity = agreed_severity([f.severity for f in cluster], len(cluster), responders)
    digest = hashlib.sha1(f"{span}|{medoid.category}|{medoid.message}".encode()).hexdigest()[:12]
    return MergedFinding(
        id=digest,
        start_line=span[0],
        end_line=span[1],
        severity=severity,
        category=medoid.category,
        message=medoid.message,
        models=models,
        responders=responders,
        fix=_best_fix(cluster, medoid, original_lines),
        reports=tuple(sorted(cluster, key=lambda f: f.model)),
    )


def agreed_severity(reported: Sequence[str], agree: int, responders: int) -> Severity:
    """Severity from what the models said and how many agree.

    A majority keeps the strongest reported severity; a minority of two or more
    drops one level; a finding one model makes is a hint, or a warning when that
    model calls it an error. A pool of one keeps what it said.
    """
    strongest = max(_RANK[s] for s in reported)
    if responders == 1:
        rank = strongest
    elif agree * 3 >= responders * 2 or agree == responders:
        rank = strongest
    elif agree >= 2:
        rank = max(strongest - 1, _RANK["info"])
    else:
        rank = _RANK["warning"] if strongest == _RANK["error"] else _RANK["hint"]
    return SEVERITIES[3 - rank]


def _best_fix(cluster: list[Finding], medoid: Finding, original_lines: Sequence[str]) -> Fix | None:
    proposals: dict[tuple[int, int, str], list[str]] = {}
    for f in cluster:
        if f.replacement is None:
            continue
        text = f.replacement.rstrip()
        first, last = f.fix_lines or (f.start_line, f.end_line)
        current = "\n".join(original_lines[first - 1 : last]).rstrip() if original_lines else None
        if text == current:
            continue  # "replace it with itself" is no fix
        proposals.setdefault((first, last, text), []).append(f.model)
    if not proposals:
        return None
    (start, end, text), models = max(
        proposals.items(), key=lambda kv: (len(kv[1]), medoid.model in kv[1], -len(kv[0][2]))
    )
    return Fix(start_line=start, end_line=end, text=text, models=tuple(sorted(models)))
