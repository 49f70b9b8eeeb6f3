"""What a run could cost, worked out before any request is sent, and the cap that refuses it.

One module for every front end: the engine checks a whole fusion run
(``fusion run --max-cost``, ``%%fuse --max-cost``, ``cost_cap_usd`` in
``fusion.toml``); review and completion in the language server check their
jobs. The rule is the same everywhere: each call costs at most its estimated
prompt tokens plus the most it may write (``max_tokens``, else the model's
context length), at the prices the endpoint's ``/models`` lists.

Local models and endpoints without a price list cost nothing. A model whose
endpoint lists prices but not for it, or whose catalogue could not be read,
cannot be checked: the cap then refuses the run and says so rather than
pretend the run fits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from fusion_core.backends.base import ModelCatalog, ModelInfo
from fusion_core.errors import CostCapExceeded, FusionError
from fusion_core.pool import Job
from fusion_core.usage import Pricing

# Rough prompt size in tokens: about 4 characters a token for English and code.
CHARS_PER_TOKEN = 4
# The judge's instructions, JSON schema and block framing around the candidates
# (about 600 tokens for merge; rounded up so the estimate stays a bound).
JUDGE_OVERHEAD_TOKENS = 1000
# A debate revision's framing around the other answers.
REVISION_OVERHEAD_TOKENS = 300
# An unusable verdict gets one repair request, so each judging can take two calls.
JUDGE_ATTEMPTS = 2


def estimate_tokens(text: str) -> int:
    """A rough token count for ``text`` (never zero)."""
    return len(text) // CHARS_PER_TOKEN + 1


@dataclass(frozen=True)
class Caller:
    """A model a run will call: its name, its list price and how much it can write.

    ``free`` models (local ones, endpoints without a price list) cost nothing;
    otherwise ``pricing`` None means the price is unknown.
    """

    name: str
    pricing: Pricing | None = None
    free: bool = False
    context_length: int | None = None

    def answer_bound(self, prompt_tokens: int, max_tokens: int | None) -> int | None:
        """The most this model may write: ``max_tokens``, else what its context leaves, else None."""
        if max_tokens is not None:
            return max_tokens
        if self.context_length is not None:
            return max(self.context_length - prompt_tokens, 0)
        return None


def caller_for(name: str, info: ModelInfo | None, *, free: bool) -> Caller:
    """A Caller from what the catalogue says about the model (``info`` None: not listed)."""
    if info is None:
        return Caller(name=name, free=free)
    return Caller(name=name, pricing=info.pricing, free=free, context_length=info.context_length)


@dataclass(frozen=True)
class CallCost:
    """One request in the worst case: ``completion_tokens`` None means nothing bounds it."""

    caller: Caller
    prompt_tokens: int
    completion_tokens: int | None


@dataclass(frozen=True)
class CostEstimate:
    """The worst case of a set of calls, and the models it could not price or bound."""

    total_usd: float
    calls: int
    unpriced: tuple[str, ...] = ()
    unbounded: tuple[str, ...] = ()


def estimate(calls: Sequence[CallCost]) -> CostEstimate:
    """Add up the worst case of ``calls``."""
    total = 0.0
    unpriced: list[str] = []
    unbounded: list[str] = []
    for call in calls:
        caller = call.caller
        if caller.free:
            continue
        if caller.pricing is None:
            _add_once(unpriced, caller.name)
        elif call.completion_tokens is None:
            _add_once(unbounded, caller.name)
        else:
            total += caller.pricing.cost(call.prompt_tokens, call.completion_tokens)
    return CostEstimate(total, len(calls), tuple(unpriced), tuple(unbounded))


def enforce_cap(cost: CostEstimate, cap_usd: float, *, what: str, hint: str) -> None:
    """Raise CostCapExceeded unless ``cost`` is known to fit under ``cap_usd``."""
    if cost.unpriced:
        raise CostCapExceeded(
            f"cannot check {', '.join(cost.unpriced)} against the cost cap of {usd(cap_usd)}: "
            "no price is listed for it",
            hint="Remove the cost cap (cost_cap_usd, --max-cost), or use models whose endpoint lists prices.",
        )
    if cost.unbounded:
        raise CostCapExceeded(
            f"cannot bound what {what} could cost: nothing limits the answer length of "
            f"{', '.join(cost.unbounded)} (no max_tokens, no context length listed)",
            hint="Pass --max-tokens N (or max_tokens in the pool) so the cost cap can be checked.",
        )
    if cost.total_usd > cap_usd:
        raise CostCapExceeded(
            f"{what} could cost up to {usd(cost.total_usd, up=True)} ({cost.calls} calls, worst case), "
            f"over the cap of {usd(cap_usd)}",
            hint=hint,
        )


def usd(amount: float, *, up: bool = False) -> str:
    """``$0.0123``, or six decimals under a cent; ``up`` rounds up, so a stated bound stays a bound."""
    places = 4 if amount >= 0.01 else 6
    if up:
        amount = math.ceil(amount * 10**places) / 10**places
    return f"${amount:.{places}f}"


def fusion_calls(
    *,
    prompt: str,
    members: Sequence[Caller],
    max_tokens: int | None,
    debate_rounds: int,
    judge: Caller | None,
    judgings: int,
    judge_max_tokens: int | None,
) -> list[CallCost]:
    """The worst case of one fusion run, call by call.

    Every member answers (and revises in each further debate round, reading every
    answer); then the judge reads the prompt and every answer ``judgings`` times
    (two with ``--swap``), each possibly followed by a repair request.
    """
    prompt_tokens = estimate_tokens(prompt)
    bounds = [m.answer_bound(prompt_tokens, max_tokens) for m in members]
    answers = None if None in bounds else sum(b for b in bounds if b is not None)
    calls = [CallCost(m, prompt_tokens, b) for m, b in zip(members, bounds, strict=True)]
    for _ in range(2, debate_rounds + 1):
        revision_in = prompt_tokens + REVISION_OVERHEAD_TOKENS + (answers or 0)
        calls += [
            CallCost(m, revision_in, b if answers is not None else None) for m, b in zip(members, bounds, strict=True)
        ]
    if judge is not None:
        judge_in = prompt_tokens + JUDGE_OVERHEAD_TOKENS + (answers or 0)
        judge_out = judge.answer_bound(judge_in, judge_max_tokens) if answers is not None else None
        for _ in range(judgings):
            repair_in = judge_in + (judge_out or 0)
            calls += [CallCost(judge, judge_in, judge_out), CallCost(judge, repair_in, judge_out)]
    return calls


# -- jobs (review and completion) ---------------------------------------------------


async def estimate_cost(jobs: Sequence[Job]) -> tuple[float, list[str]]:
    """Worst-case USD for ``jobs`` (prompt plus max_tokens of answer), and models that cannot be checked.

    Models of endpoints with no price list (local or self-hosted) cost nothing.
    """
    cost = estimate([await _job_cost(job) for job in jobs])
    return cost.total_usd, [*cost.unpriced, *cost.unbounded]


async def check_cost(jobs: Sequence[Job], cap_usd: float) -> float:
    """Raise CostCapExceeded unless the worst-case cost of ``jobs`` fits under ``cap_usd``."""
    cost = estimate([await _job_cost(job) for job in jobs])
    enforce_cap(
        cost,
        cap_usd,
        what="this request",
        hint="Raise cost_cap_usd, review a smaller selection, or use fewer or cheaper models.",
    )
    return cost.total_usd


async def _job_cost(job: Job) -> CallCost:
    prompt_tokens = sum(estimate_tokens(m.content) for m in job.request.messages)
    backend = job.backend
    if not isinstance(backend, ModelCatalog):
        caller = Caller(name=job.member, free=True)
    else:
        try:
            infos = {info.id: info for info in await backend.list_models()}
        except FusionError:
            infos = {}
        caller = caller_for(job.member, infos.get(job.request.model), free=False)
    return CallCost(caller, prompt_tokens, caller.answer_bound(prompt_tokens, job.request.max_tokens))


def _add_once(names: list[str], name: str) -> None:
    if name not in names:
        names.append(name)
