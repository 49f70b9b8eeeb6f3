"""Fused code review: ask a pool of reviewers for findings, then merge what they agree on.

Reviewers are models and static analysers (``tool:ruff``, ``tool:bandit``:
:mod:`fusion_core.analysers`, which run locally on the code as it is). Parsing
and merging findings live in :mod:`fusion_core.findings`, re-exported here.
Every model gets the same prompt: the code with numbered lines, framed
as untrusted data, and a request for findings as JSON
(:data:`FINDINGS_SCHEMA`). Replies are parsed leniently. Findings about the
same lines and the same problem become one :class:`MergedFinding` that records
which models reported it; agreement ("3 of 3 models") drives severity and
order, and a finding only one model reports stays a hint unless it is severe.
No judge call is needed to merge; the judge only explains a finding on request
(:func:`explain`). Remote models see the code with secrets redacted
(:mod:`fusion_core.redaction`); local models see it as it is.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from fusion_core.analysers import ToolRun, check_tool_spec, is_tool_spec, run_analysers
from fusion_core.backends.base import Backend, ChatRequest, Completion, Message, ModelCatalog, complete
from fusion_core.cost import check_cost, estimate_cost
from fusion_core.errors import ConfigError, CostCapExceeded, FusionError
from fusion_core.events import Event, Notice
from fusion_core.findings import (
    CATEGORIES,
    SEVERITIES,
    Finding,
    Fix,
    MergedFinding,
    Severity,
    agreed_severity,
    merge_findings,
    parse_findings,
)
from fusion_core.framing import DATA_NOTICE, block, new_nonce
from fusion_core.models import Member, expand_pool, is_local_spec
from fusion_core.pool import DEFAULT_MAX_CONCURRENCY, Job, error_info, run_round
from fusion_core.redaction import Redaction, redact_code, wire_text
from fusion_core.result import Candidate, ErrorInfo
from fusion_core.review_diff import Changed, shown_lines
from fusion_core.usage import Usage

__all__ = [
    "CATEGORIES",
    "SEVERITIES",
    "Severity",
    "agreed_severity",
    "FINDINGS_SCHEMA",
    "CostCapExceeded",
    "Finding",
    "Fix",
    "MergedFinding",
    "ReviewOutcome",
    "ReviewPlan",
    "ReviewSettings",
    "ReviewTarget",
    "check_cost",
    "estimate_cost",
    "explain",
    "merge_findings",
    "parse_findings",
    "plan_review",
    "review",
    "review_messages",
    "run_plan",
]

DEFAULT_REVIEW_TIMEOUT_S = 90.0
DEFAULT_REVIEW_MAX_TOKENS = 2048
DEFAULT_REVIEW_TEMPERATURE = 0.2
MAX_REVIEW_CHARS = 200_000
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


@dataclass(frozen=True)
class ReviewSettings:
    """How to run one review. ``pool`` holds model specs."""

    pool: tuple[str, ...]
    timeout_s: float = DEFAULT_REVIEW_TIMEOUT_S
    max_tokens: int = DEFAULT_REVIEW_MAX_TOKENS
    temperature: float | None = DEFAULT_REVIEW_TEMPERATURE
    quorum: int | None = None
    cost_cap_usd: float | None = None
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY


@dataclass(frozen=True)
class ReviewOutcome:
    """A finished review: merged findings, each model's candidate, and what it cost."""

    findings: tuple[MergedFinding, ...]
    candidates: tuple[Candidate, ...]
    responders: tuple[str, ...]
    failures: dict[str, ErrorInfo] = field(default_factory=dict)
    redacted: int = 0
    usage: Usage = field(default_factory=Usage)


# -- prompt ---------------------------------------------------------------------------


def review_messages(target: ReviewTarget, code: str, nonce: str) -> tuple[Message, ...]:
    """The system and user messages asking one model to review ``code`` (target's text, maybe redacted)."""
    lines = _split_lines(code)
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


# -- running a review -------------------------------------------------------------------

Emit = Callable[[Event], None]


def _ignore(event: Event) -> None:
    return None


@dataclass(frozen=True)
class ReviewPlan:
    """A review ready to run: the model requests (for a cost estimate first) and the analysers."""

    target: ReviewTarget
    text: str
    members: tuple[Member, ...]
    jobs: tuple[Job, ...]
    tools: tuple[tuple[str, str], ...]
    redaction: Redaction


async def plan_review(
    fusion: Any, target: ReviewTarget, settings: ReviewSettings, *, emit: Emit = _ignore
) -> ReviewPlan:
    """Check the pool and build every model request for ``target``; nothing is sent yet.

    ``fusion`` is a :class:`fusion_core.engine.Fusion` (its resolver maps specs to
    backends). Raises FusionError when the review cannot start.
    """
    text = wire_text(target.text)
    if len(text) > MAX_REVIEW_CHARS:
        raise ConfigError(
            f"the file is too large to review ({len(text):,} characters)",
            hint=f"Review a selection instead (the limit is {MAX_REVIEW_CHARS:,} characters).",
        )
    members = expand_pool(settings.pool)
    tools = [m for m in members if is_tool_spec(m.spec)]
    models = [m for m in members if not is_tool_spec(m.spec)]
    for tool in tools:
        check_tool_spec(tool.spec)
    fusion.resolver.check_egress([m.spec for m in models])
    backends = {m.name: fusion.resolver.resolve(m.spec) for m in models}
    redaction = redact_code(text)
    remote = [m for m in models if not is_local_spec(m.spec)]
    if remote and redaction.count:
        emit(
            Notice(
                message=f"redacted {redaction.summary()} before sending code to "
                f"{len(remote)} remote model{'s' if len(remote) != 1 else ''}"
            )
        )
    nonce = new_nonce()
    prompts = {False: review_messages(target, text, nonce), True: review_messages(target, redaction.text, nonce)}
    jobs = []
    for member in models:
        backend, model = backends[member.name]
        messages = prompts[not is_local_spec(member.spec)]
        schema = {"name": "findings", "schema": FINDINGS_SCHEMA} if await _structured(backend, model) else None
        jobs.append(
            Job(
                member=member.name,
                label=member.name,
                backend=backend,
                request=ChatRequest(
                    model=model,
                    messages=messages,
                    temperature=_temperature(member, settings),
                    max_tokens=settings.max_tokens,
                    seed=member.seed,
                    json_schema=schema,
                ),
            )
        )
    return ReviewPlan(
        target=target,
        text=text,
        members=tuple(members),
        jobs=tuple(jobs),
        tools=tuple((m.name, m.spec) for m in tools),
        redaction=redaction,
    )


async def run_plan(plan: ReviewPlan, settings: ReviewSettings, *, emit: Emit = _ignore) -> ReviewOutcome:
    """Send the plan's requests and run its analysers (on the code as it is), then merge."""
    if settings.cost_cap_usd is not None and plan.jobs:
        await check_cost(plan.jobs, settings.cost_cap_usd)

    async def models() -> list[Candidate]:
        if not plan.jobs:
            return []
        return await run_round(
            plan.jobs,
            emit=emit,
            quorum=settings.quorum,
            timeout_s=settings.timeout_s,
            max_concurrency=settings.max_concurrency,
        )

    analysed = replace(plan.target, text=plan.text)
    candidates, runs = await asyncio.gather(
        models(), run_analysers(plan.tools, analysed, emit=emit, timeout_s=settings.timeout_s)
    )
    return _collect(candidates, runs, list(plan.members), plan.text, plan.target, plan.redaction)


async def review(fusion: Any, target: ReviewTarget, settings: ReviewSettings, *, emit: Emit = _ignore) -> ReviewOutcome:
    """Run the review pool (models and analysers) on ``target`` and merge the findings."""
    plan = await plan_review(fusion, target, settings, emit=emit)
    return await run_plan(plan, settings, emit=emit)


async def _structured(backend: Backend, model: str) -> bool:
    """Whether the endpoint's catalogue says ``model`` can be held to a JSON schema."""
    if not isinstance(backend, ModelCatalog):
        return False
    try:
        return any(info.id == model and info.supports_json_schema for info in await backend.list_models())
    except FusionError:
        return False


def _temperature(member: Member, settings: ReviewSettings) -> float | None:
    return member.temperature if member.temperature is not None else settings.temperature


def _collect(
    candidates: list[Candidate],
    runs: list[ToolRun],
    members: list[Member],
    text: str,
    target: ReviewTarget,
    redaction: Redaction,
) -> ReviewOutcome:
    lines = _split_lines(text)
    per_model: dict[str, list[Finding]] = {}
    failures: dict[str, ErrorInfo] = {}
    local = {m.name for m in members if is_local_spec(m.spec)}
    for cand in candidates:
        if not cand.ok:
            if cand.error is not None:
                failures[cand.model] = cand.error
            continue
        try:
            found = parse_findings(cand.text, cand.model, len(lines), target.lines)
        except FusionError as exc:
            failures[cand.model] = error_info(exc)
            continue
        if cand.model not in local:
            found = [_restored(f, redaction) for f in found]
        per_model[cand.model] = found
    for run in runs:
        if run.candidate is None:
            continue  # the analyser does not apply to this file
        candidates.append(run.candidate)
        if run.candidate.ok:
            per_model[run.member] = list(run.findings)
        elif run.candidate.error is not None:
            failures[run.member] = run.candidate.error
    merged = merge_findings(per_model, len(per_model), lines)
    usage = sum((c.usage for c in candidates), Usage())
    return ReviewOutcome(
        findings=tuple(merged),
        candidates=tuple(candidates),
        responders=tuple(per_model),
        failures=failures,
        redacted=redaction.count if any(not m.is_local and not is_tool_spec(m.spec) for m in members) else 0,
        usage=usage,
    )


def _restored(finding: Finding, redaction: Redaction) -> Finding:
    if finding.replacement is None or not redaction.count:
        return finding
    return replace(finding, replacement=redaction.restore(finding.replacement))


def _split_lines(text: str) -> list[str]:
    """Lines as LSP counts them: split at \\r\\n, \\n or \\r."""
    return re.split(r"\r\n|\r|\n", text)


# -- explaining a finding ---------------------------------------------------------------

EXPLAIN_INSTRUCTIONS = (
    "You are the judge of a panel of code reviewers. Several models reviewed the same code; "
    "you get their reports about one location. In at most six sentences: say whether the "
    "problem is real, why, and what the suggested fix changes. Plain text, no JSON."
)
EXPLAIN_MAX_TOKENS = 400


async def explain(
    backend: Backend,
    model: str,
    finding: MergedFinding,
    code: str,
    *,
    is_local: bool,
    cost_cap_usd: float | None = None,
) -> Completion:
    """The judge's rationale for ``finding`` (``finish_reason`` ``length``: cut at max_tokens).

    ``code`` is the file text, redacted here if the judge is remote.
    """
    lines = _split_lines(wire_text(code))
    reports = "\n".join(f"- {r.model} ({r.severity}, {r.category}): {r.message}" for r in finding.reports)
    fix = finding.fix.text if finding.fix else "(none)"
    if not is_local:
        # Redact the whole file before cutting the excerpt: what makes a line a secret (a
        # private key's BEGIN line) may lie outside the window. The reports and the fix go
        # through the same redaction, so they may quote the code. Line breaks are kept.
        report_lines, fix_lines = _split_lines(wire_text(reports)), _split_lines(wire_text(fix))
        redacted = _split_lines(redact_code("\n".join([*lines, *report_lines, *fix_lines])).text)
        code_end, reports_end = len(lines), len(lines) + len(report_lines)
        lines = redacted[:code_end]
        reports, fix = "\n".join(redacted[code_end:reports_end]), "\n".join(redacted[reports_end:])
    first, last = max(1, finding.start_line - 8), min(len(lines), finding.end_line + 8)
    excerpt = "\n".join(f"{n}| {lines[n - 1]}" for n in range(first, last + 1))
    nonce = new_nonce()
    body = (
        f"Code (lines {first}-{last}):\n{excerpt}\n\nReports ({finding.agreement}):\n{reports}\n\nSuggested fix:\n{fix}"
    )
    user = "\n\n".join([DATA_NOTICE.format(nonce=nonce), block("finding", "F", body, nonce)])
    request = ChatRequest(
        model=model,
        messages=(Message("system", EXPLAIN_INSTRUCTIONS), Message("user", user)),
        temperature=0.0,
        max_tokens=EXPLAIN_MAX_TOKENS,
    )
    if cost_cap_usd is not None:
        await check_cost([Job(member=model, label="judge", backend=backend, request=request)], cost_cap_usd)
    reply = await complete(backend, request)
    return replace(reply, text=reply.text.strip())
