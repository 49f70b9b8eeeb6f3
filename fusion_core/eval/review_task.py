"""Review quality on inspect_ai: ``fusion eval examples/evals/review/`` runs the review pool on a dev set.

Each file of the dev set (:mod:`fusion_core.eval.findings_score`) is one inspect
sample. The solver runs the whole review pool once on it, through the same
:func:`fusion_core.review.review` as ``fusion review`` and the language server,
and keeps every reviewer's own findings and the merged ones. The ``findings``
scorer then scores, from that one run, each reviewer alone and the fused
review at every agreement threshold ("reported by at least k reviewers"), so
the rows compare on the same files and the same findings. inspect's log is
the record of every sample; the report is built from it.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from inspect_ai import Task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ModelOutput
from inspect_ai.scorer import Metric, SampleScore, Score, Scorer, Target, metric, scorer
from inspect_ai.solver import Generate, Solver, TaskState, solver

from fusion_core.analysers import plain_finding
from fusion_core.config import Config
from fusion_core.eval.findings_score import (
    Planted,
    Reported,
    ReviewFile,
    Tally,
    manifest_path,
    read_manifest,
    tally,
)
from fusion_core.eval.review_report import ReviewReport, build_review_report
from fusion_core.eval.run import EvalOptions
from fusion_core.pool import Job
from fusion_core.review import (
    DEFAULT_REVIEW_MAX_TOKENS,
    DEFAULT_REVIEW_TEMPERATURE,
    DEFAULT_REVIEW_TIMEOUT_S,
    ReviewOutcome,
    ReviewSettings,
    ReviewTarget,
    plan_review,
    review,
)
from fusion_core.specs import expand_pool

__all__ = [
    "REVIEW_KEY",
    "evaluate_review",
    "findings_scorer",
    "fused_label",
    "plan_cost",
    "review_task",
    "score_record",
]

REVIEW_KEY = "fusion_review"
PROBLEMS_KEY = "problems"


def fused_label(threshold: int, reviewers: int) -> str:
    """The name of the fused review that keeps findings at least ``threshold`` reviewers agree on."""
    return f"fused, agreed by >= {threshold} of {reviewers}"


@dataclass(frozen=True)
class _Run:
    config: Config
    settings: ReviewSettings
    local_only: bool


# What a solver needs but inspect cannot log as a solver argument (a Config object):
# registered under a key, as the provider's budgets are.
_RUNS: dict[str, _Run] = {}


def review_task(
    files: list[ReviewFile], name: str, settings: ReviewSettings, config: Config, *, local_only: bool = False
) -> Task:
    """The inspect Task: one sample per file, the review pool as the solver, the findings scorer."""
    samples = [
        Sample(
            id=f.path.name,
            input=f.path.read_text(encoding="utf-8"),
            target="",
            metadata={"path": str(f.path), PROBLEMS_KEY: [asdict(p) for p in f.problems]},
        )
        for f in files
    ]
    key = uuid.uuid4().hex
    _RUNS[key] = _Run(config, settings, local_only)
    return Task(
        dataset=MemoryDataset(samples, name=name),
        solver=review_solver(key),
        scorer=findings_scorer(),
        name=name,
    )


@solver
def review_solver(run_key: str) -> Solver:
    """Run the review pool on the sample's file; every reviewer's findings go into the state's metadata."""

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        from fusion_core.engine import Fusion

        run = _RUNS[run_key]
        target = ReviewTarget(text=state.input_text, path=str(state.metadata["path"]), language="python")
        fusion = Fusion(run.config, local_only=run.local_only)
        started = time.perf_counter()
        try:
            outcome = await review(fusion, target, run.settings)
        finally:
            await fusion.aclose()
        data = _record(outcome, [m.name for m in expand_pool(run.settings.pool)], time.perf_counter() - started)
        state.metadata[REVIEW_KEY] = data
        state.output = ModelOutput.from_content(model="fusion-review", content=json.dumps(data["merged"], indent=1))
        return state

    return solve


def _record(outcome: ReviewOutcome, pool: list[str], wall_s: float) -> dict[str, Any]:
    """The plain-data record of one file's review: each reviewer's findings, the merged ones, failures."""
    reviewers: dict[str, list[dict[str, Any]]] = {name: [] for name in outcome.responders}
    for merged in outcome.findings:
        for report in merged.reports:
            reviewers.setdefault(report.model, []).append(plain_finding(report))
    merged_list = [m.to_dict() for m in outcome.findings]
    return {
        "pool": pool,
        "reviewers": reviewers,
        "merged": merged_list,
        "failures": {name: error.message for name, error in outcome.failures.items()},
        "latency_s": {c.model: c.latency_s for c in outcome.candidates if c.latency_s is not None},
        "wall_s": wall_s,
        "cost_usd": outcome.usage.cost,
    }


@metric
def recall() -> Metric:
    """Planted problems found by the fused review (any agreement), over all files."""

    # inspect passes SampleScores only to a metric whose parameter is annotated so.
    def compute(scores: list[SampleScore]) -> float:
        return _ratio(scores, "found", "planted")

    return compute


@metric
def precision() -> Metric:
    """Findings of the fused review (any agreement) that match a planted problem, over all files."""

    def compute(scores: list[SampleScore]) -> float:
        return _ratio(scores, "true", "reported")

    return compute


def _ratio(scores: list[SampleScore], part: str, whole: str) -> float:
    total = sum(int(_value(s)[whole]) for s in scores)
    return sum(int(_value(s)[part]) for s in scores) / total if total else 0.0


def _value(sample: SampleScore) -> dict[str, Any]:
    value = sample.score.value
    return value if isinstance(value, dict) else {}


@scorer(metrics=[recall(), precision()], name="findings")
def findings_scorer() -> Scorer:
    """Score each reviewer alone and the fused review at each agreement threshold against the planted problems."""

    async def score(state: TaskState, target: Target) -> Score:
        data = state.metadata[REVIEW_KEY]
        problems = [Planted(**p) for p in state.metadata[PROBLEMS_KEY]]
        systems = score_record(problems, data)
        fused = Tally.from_dict(systems[_headline(data["pool"])])
        value = {"planted": fused.planted, "found": fused.found, "reported": fused.reported, "true": fused.true}
        return Score(
            value=value,
            answer=f"{fused.found}/{fused.planted} found, {fused.true}/{fused.reported} findings true",
            metadata={
                "systems": systems,
                "latency_s": data["latency_s"],
                "wall_s": data["wall_s"],
                "failures": data["failures"],
                "cost_usd": data["cost_usd"],
            },
        )

    return score


def _headline(pool: list[str]) -> str:
    return fused_label(1, len(pool)) if len(pool) > 1 else pool[0]


def score_record(problems: list[Planted], data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Tallies of one file's review record: each reviewer alone, then fused at each threshold."""
    pool: list[str] = data["pool"]
    systems = {}
    for name in pool:
        found = [_reported(f) for f in data["reviewers"].get(name, [])]
        systems[name] = tally(problems, found, failed=name in data["failures"]).to_dict()
    if len(pool) > 1:
        for k in range(1, len(pool) + 1):
            kept = [_reported(m) for m in data["merged"] if len(m["models"]) >= k]
            systems[fused_label(k, len(pool))] = tally(problems, kept).to_dict()
    return systems


def _reported(item: dict[str, Any]) -> Reported:
    return Reported(int(item["start_line"]), int(item["end_line"]), str(item.get("category", "other")))


def plan_cost(files: list[ReviewFile], settings: ReviewSettings, config: Config, cap_usd: float) -> None:
    """Refuse (CostCapExceeded) before any request when reviewing every file could cost over ``cap_usd``."""
    from fusion_core.cost import check_cost
    from fusion_core.engine import Fusion

    async def check() -> None:
        fusion = Fusion(config)
        try:
            jobs: list[Job] = []
            for f in files:
                target = ReviewTarget(text=f.path.read_text(encoding="utf-8"), path=str(f.path), language="python")
                jobs += (await plan_review(fusion, target, settings)).jobs
            if jobs:
                await check_cost(jobs, cap_usd)
        finally:
            await fusion.aclose()

    asyncio.run(check())


# -- running it ------------------------------------------------------------------------------

# Files reviewed at once: each runs every analyser as a subprocess.
SAMPLES_AT_ONCE = 4
# inspect wants a model; the review pool is the solver and never calls it.
NO_MODEL = "none"


def evaluate_review(options: EvalOptions, pool: tuple[str, ...], config: Config) -> ReviewReport:
    """Review every file of the dev set with ``pool``; score each reviewer and the fused review."""
    import inspect_ai

    files = read_manifest(options.tasks)
    if options.limit is not None:
        files = files[: options.limit]
    settings = ReviewSettings(
        pool=pool,
        timeout_s=options.timeout_s or DEFAULT_REVIEW_TIMEOUT_S,
        max_tokens=options.max_tokens or DEFAULT_REVIEW_MAX_TOKENS,
        temperature=options.temperature if options.temperature is not None else DEFAULT_REVIEW_TEMPERATURE,
    )
    if options.max_cost is not None:
        plan_cost(files, settings, config, options.max_cost)
    manifest = manifest_path(options.tasks)
    assert manifest is not None  # read_manifest checked it
    name = manifest.parent.name
    out_dir = options.out_dir or Path("fusion-eval") / name
    log_dir = out_dir / "logs"
    task = review_task(files, name, settings, config, local_only=options.local_only)
    [log] = inspect_ai.eval(
        task,
        model=NO_MODEL,
        log_dir=str(log_dir),
        display=options.display,  # type: ignore[arg-type]
        fail_on_error=False,
        max_samples=SAMPLES_AT_ONCE,
        score_display=False,
    )
    notes = []
    if log.status != "success":
        notes.append(f"inspect reported {log.status}: {log.error.message if log.error else ''}".rstrip(": "))
    scored: list[tuple[str, dict[str, Any]]] = []
    failures: dict[str, list[str]] = {}
    for sample in log.samples or []:
        score = (sample.scores or {}).get("findings")
        if sample.error is not None or score is None or not score.metadata:
            notes.append(f"{sample.id}: the review ended in an error and is left out (see the log)")
            continue
        scored.append((str(sample.id), score.metadata))
        for reviewer, message in (score.metadata.get("failures") or {}).items():
            failures.setdefault(reviewer, []).append(message)
    for reviewer, messages in failures.items():
        notes.append(f"{reviewer} failed on {len(messages)} file(s), counted as finding nothing: {messages[0]}")
    names = [m.name for m in expand_pool(pool)]
    report = build_review_report(scored, names, log_dir=str(log_dir), notes=notes)
    report.log_file = log.location or None
    report.write(out_dir)
    return report
