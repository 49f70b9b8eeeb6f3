"""Running ``fusion eval``: every system on the same samples in one inspect run, then the report.

Systems: each requested mode with each judge runs as a fused model through the
``fusion`` inspect provider. Members alone, and the oracle ("any candidate
passed", an upper bound, not a system), are scored from the candidates of the
first fused system: the same samples, the same text, the same per-candidate
cost and latency, without paying for a second generation. Local samples are
seeded, so a member run alone produces the same text (tested).

Resume: every generation goes through inspect's response cache, scoped to the
system and its settings; a re-run of an interrupted evaluation takes finished
samples from the cache and pays only for the rest. ``--max-cost`` refuses
before the start when the worst case from ``/models`` prices exceeds it, and
stops spending when the run reaches it (the remaining samples are not run).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fusion_core.backends.base import ModelCatalog
from fusion_core.config import Config, load_config
from fusion_core.engine import Fusion, RunSettings
from fusion_core.errors import CostCapExceeded, FusionError
from fusion_core.eval.provider import METADATA_KEY, budget_for, pool_settings
from fusion_core.eval.report import ORACLE, EvalReport, SampleRecord, build_report
from fusion_core.judge import DEFAULT_JUDGE_MAX_TOKENS
from fusion_core.models import expand_pool, is_local_spec, split_judge_spec
from fusion_core.sandbox import isolation

__all__ = ["EvalOptions", "evaluate", "estimate_cost"]

DEFAULT_MODES = ("best-of",)
# Worst case per answer when no max_tokens is set, for the --max-cost estimate.
DEFAULT_ESTIMATE_TOKENS = 1024
CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class EvalOptions:
    """What to evaluate and how (the flags of ``fusion eval``)."""

    tasks: str
    pool: str
    modes: tuple[str, ...] = DEFAULT_MODES
    judges: tuple[str, ...] = ()
    limit: int | None = None
    epochs: int = 1
    max_cost: float | None = None
    scorer: str | None = None
    grader: str | None = None
    out_dir: Path | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    timeout_s: float | None = None
    local_only: bool = False
    display: str = "none"
    config_path: Path | None = None


@dataclass(frozen=True)
class _System:
    label: str
    settings: RunSettings


def evaluate(options: EvalOptions, *, config: Config | None = None) -> EvalReport:
    """Run every system of ``options`` on the same samples and return the report (also written to disk)."""
    inspect = _require_inspect()
    config = config or load_config(options.config_path)
    env = dict(os.environ)
    base = pool_settings(
        options.pool,
        config,
        env,
        max_tokens=options.max_tokens,
        temperature=options.temperature,
        timeout_s=options.timeout_s,
    )
    Fusion(config, local_only=options.local_only).preflight(base)
    systems = _systems(base, options)
    from fusion_core.eval.tasks import load_task

    task = load_task(options.tasks, scorer_name=options.scorer, grader=options.grader)
    count = len(task.dataset) if options.limit is None else min(options.limit, len(task.dataset))
    count *= max(options.epochs, 1)
    if options.max_cost is not None:
        inputs = [s.input if isinstance(s.input, str) else "" for s in task.dataset][: count or None]
        estimate = estimate_cost(config, [s.settings for s in systems], inputs, max(options.epochs, 1))
        if estimate > options.max_cost:
            raise CostCapExceeded(
                f"this evaluation could cost up to ${estimate:.4f} ({count} samples), over --max-cost "
                f"${options.max_cost:.4f}",
                hint="Raise --max-cost, use --limit, or a cheaper pool.",
            )
    out_dir = options.out_dir or Path("fusion-eval") / Path(options.tasks.partition("@")[0]).stem
    log_dir = out_dir / "logs"
    budget_key = uuid.uuid4().hex
    models = [_model(inspect, options, system, budget_key) for system in systems]
    logs = inspect.eval(
        task,
        model=models,
        log_dir=str(log_dir),
        display=options.display,
        limit=options.limit,
        epochs=options.epochs,
        fail_on_error=False,
        max_tasks=1 if all(is_local_spec(m.spec) for m in expand_pool(base.pool)) else len(models),
        score_display=False,
    )
    report = _report(logs, systems, base, options, str(log_dir))
    spent = budget_for(budget_key, options.max_cost)
    if options.max_cost is not None and spent.spent_usd >= options.max_cost:
        report.notes.append(
            f"stopped: spending reached --max-cost ${options.max_cost:.4f}; samples not run are left out"
        )
    report.write(out_dir)
    return report


def _require_inspect() -> Any:
    from fusion_core.eval import require_inspect

    require_inspect()
    import inspect_ai

    return inspect_ai


def _systems(base: RunSettings, options: EvalOptions) -> list[_System]:
    members = expand_pool(base.pool)
    if len(members) == 1:
        # A pool of one runs that model alone: no judge, no modes.
        return [_System(members[0].name, base)]
    judges = options.judges or (base.judge,)
    systems = []
    for mode in options.modes:
        for judge in judges:
            settings = replace(base, mode=mode, judge=judge)
            settings.validate()
            split_judge_spec(judge)
            label = f"fusion {mode}" + (f" [{judge}]" if len(judges) > 1 else "")
            systems.append(_System(label, settings))
    return systems


def _model(inspect: Any, options: EvalOptions, system: _System, budget_key: str) -> Any:
    from inspect_ai.model import CachePolicy, GenerateConfig, get_model

    settings = system.settings
    # The cache scope names everything that changes an answer, so a changed setting never reuses one.
    digest = hashlib.sha256(repr(settings).encode()).hexdigest()[:16]
    cache = CachePolicy(expiry=None, per_epoch=True, scopes={"fusion": digest})
    args: dict[str, Any] = {
        "mode": settings.mode,
        "judge": settings.judge,
        "budget": budget_key,
        "system_label": system.label,
        "local_only": options.local_only,
        "timeout": settings.timeout_s,
    }
    if options.max_cost is not None:
        args["max_cost"] = options.max_cost
    if options.config_path is not None:
        args["config"] = str(options.config_path)
    local = all(m.is_local for m in expand_pool(settings.pool))
    config = GenerateConfig(
        cache=cache,
        max_tokens=settings.max_tokens,
        temperature=settings.temperature,
        max_connections=1 if local else None,
    )
    return get_model("fusion/" + "+".join(settings.pool), config=config, **args)


def estimate_cost(config: Config, systems: Sequence[RunSettings], inputs: Sequence[str], epochs: int) -> float:
    """Worst-case USD from ``/models`` prices: every answer at max_tokens, every judge at its limit."""
    import asyncio

    return asyncio.run(_estimate(config, systems, inputs, epochs))


async def _estimate(config: Config, systems: Sequence[RunSettings], inputs: Sequence[str], epochs: int) -> float:
    fusion = Fusion(config)
    prices: dict[str, Any] = {}
    unknown: list[str] = []

    async def price(spec: str) -> Any:
        if spec in prices:
            return prices[spec]
        backend, model = fusion.resolver.resolve(spec)
        infos = {}
        if isinstance(backend, ModelCatalog):
            try:
                infos = {info.id: info for info in await backend.list_models()}
            except FusionError:
                infos = {}
        info = infos.get(model)
        prices[spec] = info.pricing if info is not None else None
        if prices[spec] is None:
            unknown.append(spec)
        return prices[spec]

    total = 0.0
    try:
        for settings in systems:
            answer_tokens = settings.max_tokens or DEFAULT_ESTIMATE_TOKENS
            members = expand_pool(settings.pool)
            rounds = settings.rounds if settings.mode == "debate" else 1
            judge_spec, likelihood = split_judge_spec(settings.judge)
            for text in inputs:
                prompt_tokens = len(text) // CHARS_PER_TOKEN + 1
                for member in members:
                    if is_local_spec(member.spec):
                        continue
                    pricing = await price(member.spec)
                    if pricing is not None:
                        context = prompt_tokens + (rounds - 1) * len(members) * answer_tokens
                        total += rounds * pricing.cost(context, answer_tokens) * epochs
                if not likelihood and not is_local_spec(judge_spec):
                    pricing = await price(judge_spec)
                    if pricing is not None:
                        judged = prompt_tokens + len(members) * answer_tokens
                        total += pricing.cost(judged, DEFAULT_JUDGE_MAX_TOKENS) * epochs
    finally:
        await fusion.aclose()
    if unknown:
        raise CostCapExceeded(
            f"cannot check {', '.join(sorted(set(unknown)))} against --max-cost: no price is listed",
            hint="Remove --max-cost, or use models whose endpoint lists prices.",
        )
    return total


def _report(
    logs: Sequence[Any], systems: Sequence[_System], base: RunSettings, options: EvalOptions, log_dir: str
) -> EvalReport:
    by_label = {str((log.eval.model_args or {}).get("system_label")): log for log in logs}
    fused: list[SampleRecord] = []
    members: list[SampleRecord] = []
    oracle: list[SampleRecord] = []
    notes: list[str] = []
    multi_epoch = options.epochs > 1
    pool_members = expand_pool(base.pool)
    single = len(pool_members) == 1
    for index, system in enumerate(systems):
        log = by_label.get(system.label)
        if log is None:
            notes.append(f"{system.label}: no log was written")
            continue
        if log.status != "success":
            message = log.error.message if log.error else log.status
            notes.append(f"{system.label}: inspect reported {log.status}: {message}")
        errors = 0
        for sample in log.samples or []:
            score = next(iter((sample.scores or {}).values()), None)
            if sample.error is not None or score is None:
                errors += 1
                continue
            sample_id = f"{sample.id}#{sample.epoch}" if multi_epoch else str(sample.id)
            metadata = score.metadata or {}
            result = (sample.output.metadata or {}).get(METADATA_KEY) or {}
            usage = result.get("usage") or {}
            fused.append(
                SampleRecord(
                    id=sample_id,
                    system=system.label,
                    kind="member" if single else "fusion",
                    mode="alone" if single else system.settings.mode,
                    score=float(score.value) if isinstance(score.value, int | float) else 0.0,
                    answer=score.answer or "",
                    partial=metadata.get("partial"),
                    truncated=bool(metadata.get("truncated")),
                    latency_s=result.get("wall_s"),
                    cost_usd=usage.get("cost"),
                    tokens=int(usage.get("prompt_tokens") or 0) + int(usage.get("completion_tokens") or 0),
                )
            )
            if index == 0 and not single:
                candidates = metadata.get("candidates") or []
                members += [_member_record(sample_id, c) for c in candidates]
                if len(candidates) > 1:
                    oracle.append(_oracle_record(sample_id, candidates))
        if errors:
            notes.append(f"{system.label}: {errors} sample(s) ended in an error and are left out (see the log)")
    greedy = next((m.name for m in pool_members if m.seed is not None and m.temperature == 0.0), None)
    if greedy:
        notes.append(f"{greedy} is the greedy sample (temperature 0); the others sample at higher temperatures")
    if any(m.is_local for m in pool_members):
        notes.append("local members' latency is their own compute time inside the fused run (they take turns)")
    if not all(m.is_local for m in pool_members):
        notes.append("remote members' latency is measured inside the fused run, where candidates run concurrently")
    notes.append(f"code sandbox: {isolation().describe()}")
    notes.append("resume: generations are kept in inspect's response cache; re-running pays only for new samples")
    position = {m.name: i for i, m in enumerate(pool_members)}
    ordered_members = sorted(members, key=lambda s: position.get(s.system, len(position)))
    judges = {} if single else {s.label: s.settings.judge for s in systems}
    return build_report(
        [*ordered_members, *fused, *oracle],
        judges=judges,
        derived=[] if single else [m.name for m in pool_members],
        greedy=greedy,
        log_dir=log_dir,
        notes=notes,
    )


def _member_record(sample_id: str, cand: dict[str, Any]) -> SampleRecord:
    usage = cand.get("usage") or {}
    # Local members take turns on one model, so their wall time includes waiting for the
    # others; their own compute time is what running alone would take.
    latency = usage.get("compute_s") or cand.get("latency_s")
    return SampleRecord(
        id=sample_id,
        system=str(cand.get("model")),
        kind="member",
        mode="alone",
        score=float(cand.get("score") or 0.0),
        answer=str(cand.get("answer") or ""),
        partial=cand.get("partial"),
        truncated=bool(cand.get("truncated")),
        latency_s=latency,
        cost_usd=usage.get("cost"),
        tokens=int(usage.get("prompt_tokens") or 0) + int(usage.get("completion_tokens") or 0),
    )


def _oracle_record(sample_id: str, candidates: list[dict[str, Any]]) -> SampleRecord:
    best = max(candidates, key=lambda c: (float(c.get("score") or 0.0), float(c.get("partial") or 0.0)))
    partials = [float(c["partial"]) for c in candidates if c.get("partial") is not None]
    return SampleRecord(
        id=sample_id,
        system=ORACLE,
        kind="oracle",
        mode="upper bound",
        score=max(float(c.get("score") or 0.0) for c in candidates),
        answer=str(best.get("answer") or ""),
        partial=max(partials) if partials else None,
    )
