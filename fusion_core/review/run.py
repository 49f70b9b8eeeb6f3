"""Running a review: check the pool, build every request (for a cost estimate first), then send.

Reviewers are models and static analysers (``tool:ruff``, ``tool:bandit``:
:mod:`fusion_core.analysers`, which run locally on the code as it is). Remote
models see the code with secrets redacted (:mod:`fusion_core.redaction`); local
models see it as it is. The replies are read by :mod:`fusion_core.review.parse`
and merged by :mod:`fusion_core.review.merge`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from fusion_core.analysers import ToolRun, check_tool_spec, is_tool_spec, run_analysers
from fusion_core.backends.base import Backend, ChatRequest, ModelCatalog
from fusion_core.cost import check_cost
from fusion_core.errors import ConfigError, FusionError
from fusion_core.events import Event, Notice
from fusion_core.framing import new_nonce
from fusion_core.pool import DEFAULT_MAX_CONCURRENCY, Job, run_round
from fusion_core.redaction import Redaction, redact_code, wire_text
from fusion_core.result import Candidate
from fusion_core.review.merge import ReviewOutcome, merge_reports
from fusion_core.review.parse import read_reports
from fusion_core.review.prompt import FINDINGS_SCHEMA, ReviewTarget, review_messages, split_lines
from fusion_core.specs import Member, expand_pool, is_local_spec

if TYPE_CHECKING:
    from fusion_core.engine import Fusion

__all__ = ["ReviewPlan", "ReviewSettings", "plan_review", "review", "run_plan"]

DEFAULT_REVIEW_TIMEOUT_S = 90.0
DEFAULT_REVIEW_MAX_TOKENS = 2048
DEFAULT_REVIEW_TEMPERATURE = 0.2
MAX_REVIEW_CHARS = 200_000


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
    fusion: Fusion, target: ReviewTarget, settings: ReviewSettings, *, emit: Emit = _ignore
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


async def review(
    fusion: Fusion, target: ReviewTarget, settings: ReviewSettings, *, emit: Emit = _ignore
) -> ReviewOutcome:
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
    lines = split_lines(text)
    reports = read_reports(
        candidates,
        runs,
        line_count=len(lines),
        lines=target.lines,
        local={m.name for m in members if is_local_spec(m.spec)},
        redaction=redaction,
    )
    remote = any(not m.is_local and not is_tool_spec(m.spec) for m in members)
    return merge_reports(reports, lines, redacted=redaction.count if remote else 0)
