"""The fusion engine: one prompt, a pool of models, a judge, one event stream.

``Fusion.stream(prompt, settings)`` is the one way to run; ``arun`` collects
the stream into a :class:`FusionResult`, and ``run``/``iter_events`` are the
synchronous twins (see :mod:`fusion_core.sync`).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from fusion_core.backends.base import Backend, ChatRequest, InstructAware, Message, ModelCatalog, ModelInfo, Scorer
from fusion_core.backends.openai_http import DEFAULT_TIMEOUT_S, HttpClients
from fusion_core.catalog import CATALOG_TIMEOUT_S, Catalog, check_listed, read_catalog
from fusion_core.config import Config
from fusion_core.cost import Caller, caller_for, enforce_cap, estimate, fusion_calls
from fusion_core.errors import BackendError, ConfigError
from fusion_core.events import Event, JudgeFailed, JudgeFinished, Notice, RoundFinished, RunFinished, RunStarted
from fusion_core.framing import labels_for, new_nonce
from fusion_core.judge import DEFAULT_JUDGE_MAX_TOKENS, JudgeCall, judge_by_likelihood, judge_with_llm
from fusion_core.judges.exec_judge import TieBreak, judge_by_execution
from fusion_core.judges.execution import execute_candidates
from fusion_core.models import BackendResolver, JudgeSpec, Member, expand_pool, parse_judge_spec
from fusion_core.modes import MODES, Verdict
from fusion_core.modes.debate import DEFAULT_ROUNDS
from fusion_core.option_specs import DEFAULT_MODE, MAX_ROUNDS, check_option
from fusion_core.pool import DEFAULT_MAX_CONCURRENCY, Job, run_round
from fusion_core.result import Candidate, ErrorInfo, FusionResult, JudgeOutcome, RunStatus
from fusion_core.usage import Pricing, Usage

__all__ = ["CATALOG_TIMEOUT_S", "DEFAULT_MODE", "MAX_ROUNDS", "Fusion", "RunSettings"]


@dataclass(frozen=True)
class RunSettings:
    """How to run one fusion. ``pool`` holds model specs (see :mod:`fusion_core.models`).

    An empty ``judge`` is allowed for a pool of one model: it runs alone and its
    answer is the result. ``max_cost_usd`` refuses a run whose worst case costs
    more, before any request; ``provider_options`` go into every pool request.
    """

    pool: tuple[str, ...]
    judge: str
    mode: str = DEFAULT_MODE
    rounds: int = DEFAULT_ROUNDS
    quorum: int | None = None
    swap: bool = False
    timeout_s: float = DEFAULT_TIMEOUT_S
    temperature: float | None = None
    max_tokens: int | None = None
    system: str | None = None
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    max_cost_usd: float | None = None
    provider_options: Mapping[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise ConfigError for settings that cannot run (by the rules flags and fusion.toml follow)."""
        if not self.pool:
            raise ConfigError("the pool is empty", hint="Pass --pool model1,model2,... or -m MODEL.")
        checked = {
            "mode": self.mode,
            "rounds": self.rounds,
            "quorum": self.quorum,
            "timeout": self.timeout_s,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "max_concurrency": self.max_concurrency,
            "max_cost": self.max_cost_usd,
        }
        for name, value in checked.items():
            if value is not None:
                check_option(name, value)
        if not self.judge and len(expand_pool(self.pool)) > 1:
            raise ConfigError("no judge model", hint="Pass --judge MODEL, or run a single model alone.")


class Fusion:
    """A fusion session: shares HTTP connections and loaded models across runs.

    ``transport`` lets tests route HTTP through ``httpx.MockTransport``;
    ``rng`` makes label shuffling reproducible; ``clock`` times candidates.
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        local_only: bool = False,
        env: dict[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.config = config or Config()
        self._clients = HttpClients(transport)
        self.resolver = BackendResolver(self.config, self._clients, local_only=local_only, env=env)
        self._rng = rng or random.SystemRandom()
        self._clock = clock

    async def aclose(self) -> None:
        """Close pooled HTTP connections."""
        await self._clients.aclose()

    def close(self) -> None:
        """Close the session used from synchronous code (its loop thread and connections)."""
        from fusion_core.sync import close_portal

        close_portal(self)

    def iter_events(self, prompt: str, settings: RunSettings) -> Iterator[Event]:
        """The event stream, consumed from synchronous code; closing it cancels the run."""
        from fusion_core.sync import iter_events

        return iter_events(self, prompt, settings)

    # The synchronous twins live in fusion_core.sync to keep this module about the engine.
    def run(self, prompt: str, settings: RunSettings) -> FusionResult:
        """Run to the end from synchronous code, even inside a running event loop."""
        from fusion_core.sync import run_sync

        return run_sync(self, prompt, settings)

    async def arun(self, prompt: str, settings: RunSettings) -> FusionResult:
        """Run to the end and return the result."""
        result: FusionResult | None = None
        async for event in self.stream(prompt, settings):
            if isinstance(event, RunFinished):
                result = event.result
        assert result is not None  # stream() always ends with RunFinished
        return result

    async def stream(self, prompt: str, settings: RunSettings) -> AsyncIterator[Event]:
        """Run a fusion, yielding events; the last event is always RunFinished.

        Raises FusionError before the first event when the run cannot start
        (bad settings, missing key, local-only refusal, a model id the endpoint's
        catalogue does not list, a worst case over the cost cap). The catalogues are
        read first, bounded by the timeout, so all of that is known before any
        request that costs money.
        """
        plan = self._plan(prompt, settings)
        wanted = [(m.spec, *plan.backends[m.name]) for m in plan.members]
        if plan.judge_backend is not None:
            wanted.append((plan.judge_spec, plan.judge_backend, plan.judge_model))
        catalog = await read_catalog([(backend, model) for _, backend, model in wanted], settings.timeout_s)
        plan = replace(plan, notices=plan.notices + catalog.notices)
        check_listed(wanted, catalog)
        _check_cost(plan, catalog)
        queue: asyncio.Queue[Event | None] = asyncio.Queue()

        async def produce() -> None:
            try:
                result = await self._execute(plan, catalog, queue.put_nowait)
                queue.put_nowait(RunFinished(result=result))
            finally:
                queue.put_nowait(None)

        task = asyncio.create_task(produce())
        try:
            while (event := await queue.get()) is not None:
                yield event
            await task  # re-raise anything unexpected from the producer
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    def preflight(self, settings: RunSettings) -> None:
        """Raise now what ``stream`` would raise before its first event (nothing is loaded or sent)."""
        settings.validate()
        specs = [m.spec for m in expand_pool(settings.pool)]
        judge_model = parse_judge_spec(settings.judge).model if settings.judge else ""
        if judge_model:
            specs.append(judge_model)
        self.resolver.check_egress(specs)

    # -- planning: everything that can fail before a request is sent -----------

    def _plan(self, prompt: str, settings: RunSettings) -> _Plan:
        self.preflight(settings)
        members = expand_pool(settings.pool)
        # No judge at all (one model runs alone) is an empty spec; ``exec`` alone has no judge model.
        judge = parse_judge_spec(settings.judge) if settings.judge else JudgeSpec("")
        judge_spec, likelihood = judge.model, judge.likelihood
        if settings.quorum is not None and not 1 <= settings.quorum <= len(members):
            raise ConfigError(
                f"--quorum must be 1..{len(members)} for this pool", hint="Quorum counts successful candidates."
            )
        backends = {m.name: self.resolver.resolve(m.spec) for m in members}
        # ``exec`` alone has no judge model: the greedy sample breaks ties.
        judge_backend, judge_model = self.resolver.resolve(judge_spec) if judge_spec else (None, "")
        notices = []
        if settings.provider_options and any(m.is_local for m in members):
            notices.append("provider options (-o) go to HTTP models only; local models ignore them")
        if judge_spec in {m.spec for m in members} and not likelihood:
            notices.append(
                f"the judge {judge_spec} is also in the pool: judges tend to prefer "
                "their own answers (self-preference bias); consider another judge"
            )
        mode_name = settings.mode
        if (likelihood or not judge_spec) and mode_name != "best-of":
            notices.append(f"the {settings.judge} judge can only pick, so mode {mode_name} runs as best-of")
            mode_name = "best-of"
        labels = labels_for(len(members))
        self._rng.shuffle(labels)
        return _Plan(
            prompt=prompt,
            settings=replace(settings, mode=mode_name),
            members=members,
            labels=dict(zip([m.name for m in members], labels, strict=True)),
            backends=backends,
            judge_name=settings.judge,
            judge_spec=judge_spec,
            judge_backend=judge_backend,
            judge_model=judge_model,
            likelihood=likelihood,
            judge=judge,
            greedy=tuple(m.name for m in members if _first(settings.temperature, m.temperature) == 0),
            notices=tuple(notices),
            nonce=new_nonce(),
        )

    # -- execution ------------------------------------------------------------

    async def _execute(self, plan: _Plan, catalog: Catalog, emit: Callable[[Event], None]) -> FusionResult:
        started = self._clock()
        settings, mode = plan.settings, MODES[plan.settings.mode]
        emit(
            RunStarted(
                mode=settings.mode,
                models=tuple(m.name for m in plan.members),
                judge=plan.judge_name,
                rounds=mode.rounds(settings.rounds),
            )
        )
        for notice in plan.notices:
            emit(Notice(message=notice))
        rounds = await self._rounds(plan, emit)
        final = [_priced(c, catalog.info(*plan.backends[c.model])) for c in _latest_answers(rounds)]
        rounds = [[_priced(c, catalog.info(*plan.backends[c.model])) for c in rnd] for rnd in rounds]
        survivors = [c for c in final if c.ok]
        answer = ""
        judge: JudgeOutcome | None = None
        status: RunStatus = "all_failed"
        if survivors and not plan.judge_name:
            # One model and no judge: nothing to fuse, its answer is the result.
            answer, status = survivors[0].text, "ok"
        elif survivors:
            verdict, judge = await self._judge(plan, survivors, catalog, emit)
            emit(_judge_ended(judge, decided=verdict is not None))
            status = "ok" if verdict is not None else "judge_failed"
            answer = verdict.answer if verdict else ""
        usage = sum((c.usage for rnd in rounds for c in rnd), Usage())
        if judge is not None:
            usage = usage + judge.usage
        return FusionResult(
            mode=settings.mode,
            status=status,
            answer=answer,
            candidates=tuple(final),
            judge=judge,
            usage=usage,
            wall_s=self._clock() - started,
            rounds=tuple(tuple(r) for r in rounds) if mode.revises else (),
            warnings=plan.notices,
        )

    async def _rounds(self, plan: _Plan, emit: Callable[[Event], None]) -> list[list[Candidate]]:
        """Round 1's independent answers, then whatever revision rounds the mode asks for."""
        settings, mode = plan.settings, MODES[plan.settings.mode]
        members = {m.name: m for m in plan.members}
        first = [self._job(plan, m, _initial_messages(plan)) for m in plan.members]
        rounds = [await self._round(plan, first, emit, 1)]
        for number in range(2, mode.rounds(settings.rounds) + 1):
            previous = {c.model: c.text for c in _latest_answers(rounds) if c.ok}
            prompts = mode.revise(question=plan.prompt, answers=previous, round_number=number, system=settings.system)
            if not prompts:
                break
            jobs = [self._job(plan, members[model], messages) for model, messages in prompts.items()]
            rounds.append(await self._round(plan, jobs, emit, number))
            settled = mode.settled(previous, {c.model: c.text for c in rounds[-1] if c.ok})
            emit(RoundFinished(round=number, converged=settled))
            if settled:
                break
        return rounds

    async def _round(self, plan: _Plan, jobs: list[Job], emit: Callable[[Event], None], number: int) -> list[Candidate]:
        settings = plan.settings
        # The quorum applies to the independent answers; revisions wait for every debater.
        quorum = settings.quorum if number == 1 else None
        return await run_round(
            jobs,
            emit=emit,
            round_number=number,
            quorum=quorum,
            timeout_s=settings.timeout_s,
            max_concurrency=settings.max_concurrency,
            clock=self._clock,
        )

    def _job(self, plan: _Plan, member: Member, messages: Sequence[Message]) -> Job:
        backend, model = plan.backends[member.name]
        request = member_request(plan.settings, member, model, messages)
        return Job(member=member.name, label=plan.labels[member.name], backend=backend, request=request)

    async def _judge(
        self, plan: _Plan, survivors: list[Candidate], catalog: Catalog, emit: Callable[[Event], None]
    ) -> tuple[Verdict | None, JudgeOutcome]:
        backend, spec = plan.judge_backend, plan.judge
        use_likelihood = backend is not None and (plan.likelihood or await _is_base_model(backend))
        if use_likelihood and not isinstance(backend, Scorer):
            raise ConfigError(
                f"{plan.judge_name} cannot score candidates", hint="Use a local model for the likelihood judge."
            )
        scorer = backend if use_likelihood and isinstance(backend, Scorer) else None
        call = None if backend is None or scorer is not None else self._judge_call(plan, backend, catalog)
        if spec.execute and plan.settings.mode == "best-of":
            tie_break = TieBreak(
                preferred=plan.greedy, scorer=scorer, scorer_name=spec.model, reviewer=spec.reviewer, llm=call
            )
            return await judge_by_execution(plan.judge_name, plan.prompt, survivors, emit=emit, tie_break=tie_break)
        if scorer is not None:
            if plan.settings.mode != "best-of":
                emit(
                    Notice(
                        message=f"{plan.judge_name} is a base model, so it judges by likelihood "
                        "(best-of) instead of writing a merged answer"
                    )
                )
            return await judge_by_likelihood(
                plan.judge_name, scorer, plan.prompt, survivors, emit=emit, reviewer=spec.reviewer
            )
        assert call is not None  # only ``exec`` alone has no backend, and it runs as best-of
        if spec.execute:
            # merge/debate with exec+MODEL: the judge fuses knowing which candidates actually work.
            report = await execute_candidates(plan.prompt, survivors)
            call = replace(call, facts=tuple(report.facts().items()))
        return await judge_with_llm(call, survivors, swap=plan.settings.swap, emit=emit)

    def _judge_call(self, plan: _Plan, backend: Backend, catalog: Catalog) -> JudgeCall:
        info = catalog.info(backend, plan.judge_model)
        return JudgeCall(
            name=plan.judge_name,
            backend=backend,
            model=plan.judge_model,
            mode=MODES[plan.settings.mode],
            question=plan.prompt,
            nonce=plan.nonce,
            use_json_schema=bool(info and info.supports_json_schema),
            system=plan.settings.system,
            pricing=info.pricing if info else None,
            timeout_s=plan.settings.timeout_s,
        )


def _check_cost(plan: _Plan, catalog: Catalog) -> None:
    """Refuse a run whose worst case could cost more than ``max_cost_usd`` (nothing sent yet)."""
    settings = plan.settings
    if settings.max_cost_usd is None:
        return

    def caller(name: str, backend: Backend, model: str) -> Caller:
        return caller_for(name, catalog.info(backend, model), free=not isinstance(backend, ModelCatalog))

    members = [caller(m.name, *plan.backends[m.name]) for m in plan.members]
    judge = None
    if plan.judge_backend is not None and not plan.likelihood:
        judge = caller(f"judge {plan.judge_spec}", plan.judge_backend, plan.judge_model)
    calls = fusion_calls(
        prompt=(settings.system or "") + plan.prompt,
        members=members,
        max_tokens=settings.max_tokens,
        debate_rounds=MODES[settings.mode].rounds(settings.rounds),
        judge=judge,
        judgings=2 if settings.swap and len(members) > 1 else 1,
        judge_max_tokens=DEFAULT_JUDGE_MAX_TOKENS,
    )
    tokens = (
        "lower --max-tokens"
        if settings.max_tokens is not None
        else "set --max-tokens (without it an answer may fill the model's whole context)"
    )
    enforce_cap(
        estimate(calls),
        settings.max_cost_usd,
        what="this run",
        hint=f"Raise --max-cost (or cost_cap_usd in fusion.toml), {tokens}, or use fewer or cheaper models.",
    )


def member_request(settings: RunSettings, member: Member, model: str, messages: Sequence[Message]) -> ChatRequest:
    """The request one pool member gets; also what a member run alone sends (``fusion eval``)."""
    temperature = settings.temperature if settings.temperature is not None else member.temperature
    return ChatRequest(
        model=model,
        messages=tuple(messages),
        temperature=temperature,
        max_tokens=settings.max_tokens,
        seed=member.seed,
        provider_options=settings.provider_options,
    )


@dataclass(frozen=True)
class _Plan:
    prompt: str
    settings: RunSettings
    members: list[Member]
    labels: dict[str, str]
    backends: dict[str, tuple[Backend, str]]
    judge_name: str
    judge_spec: str
    # None when one model runs alone, or for ``exec`` alone.
    judge_backend: Backend | None
    judge_model: str
    likelihood: bool
    judge: JudgeSpec
    greedy: tuple[str, ...]
    notices: tuple[str, ...]
    nonce: str


def _initial_messages(plan: _Plan) -> tuple[Message, ...]:
    messages = []
    if plan.settings.system:
        messages.append(Message("system", plan.settings.system))
    messages.append(Message("user", plan.prompt))
    return tuple(messages)


def _first(*values: float | None) -> float | None:
    return next((v for v in values if v is not None), None)


def _latest_answers(rounds: list[list[Candidate]]) -> list[Candidate]:
    """Each member's latest successful answer (or its first-round failure)."""
    latest: dict[str, Candidate] = {c.model: c for c in rounds[0]}
    for rnd in rounds[1:]:
        for cand in rnd:
            if cand.ok or not latest[cand.model].ok:
                latest[cand.model] = cand
    return list(latest.values())


def _judge_ended(outcome: JudgeOutcome, *, decided: bool) -> JudgeFinished | JudgeFailed:
    """The event that closes the judge's part of a run (sent before RunFinished)."""
    if decided:
        return JudgeFinished(model=outcome.model, outcome=outcome)
    error = outcome.error or ErrorInfo(kind="judge", message=f"{outcome.model} gave no usable verdict")
    return JudgeFailed(model=outcome.model, error=error, outcome=outcome)


def _priced(candidate: Candidate, info: ModelInfo | None) -> Candidate:
    pricing: Pricing | None = info.pricing if info else None
    usage = candidate.usage.with_estimated_cost(pricing)
    return candidate if usage is candidate.usage else replace(candidate, usage=usage)


async def _is_base_model(backend: Backend) -> bool:
    if not isinstance(backend, InstructAware):
        return False
    try:
        return not await backend.is_instruct()
    except BackendError:
        return False
