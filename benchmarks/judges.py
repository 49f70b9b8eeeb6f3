"""Compare judges on the very same candidates, from a ``fusion eval`` report.

``fusion eval`` runs each judge as its own system, so comparing five judges
costs five generations. The candidates of one run are enough: every member's
answer in the report is already graded (pass and partial credit), so a judge's
pick is scored by looking it up. Run from the repository root::

    fusion eval examples/evals/code.jsonl --pool 'local/gemma-3-270m*5' --out runs/star5
    python benchmarks/judges.py examples/evals/code.jsonl runs/star5/report.json [--json out.json]

Rows: the greedy sample (#1), the raw likelihood judge (mean token
log-probability), the likelihood judge with each repetition measure (n-gram
share, zlib compression, scoring first occurrences of lines only), with
Coder-Reviewer, ``exec``, ``exec+likelihood`` with each measure, and the
oracle (an upper bound). ``--members 5`` judges a ``*10`` run's first five
samples, which are the very samples of a ``*5`` run (same seeds and temperatures). Judge
efficiency = (judge − greedy) / (oracle − greedy), for passes and partial credit.
Latency is each judge's own wall time per task (the candidates already exist);
model scores are computed once and shared, each row charged their first cost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from fusion_core.backends.base import Backend
from fusion_core.backends.llama.backend import local_backend
from fusion_core.config import LocalConfig
from fusion_core.events import Event
from fusion_core.judges.codet import propose_inputs
from fusion_core.judges.exec_judge import TieBreak, judge_by_execution
from fusion_core.judges.likelihood import (
    DEFAULT_REPETITION_MEASURE,
    REPETITION_MEASURES,
    RepetitionMeasure,
    Scorer,
    judge_by_likelihood,
)
from fusion_core.judges.visible_tests import entry_point
from fusion_core.result import Candidate
from fusion_core.verdicts import winner_of

JUDGE_MODEL = "local/gemma-3-270m"


def no_events(event: Event) -> None:
    pass


def load(tasks_path: Path, report_path: Path) -> tuple[dict[str, str], dict[str, list[dict[str, Any]]]]:
    """Prompts by task id, and each task's graded member answers in pool order."""
    prompts = {}
    for line in tasks_path.read_text().splitlines():
        if line.strip():
            item = json.loads(line)
            prompts[item["task_id"]] = item["prompt"]
    report = json.loads(report_path.read_text())
    members = [r["system"] for r in report["rows"] if r.get("kind") == "member"]
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for sample in report["samples"]:
        if sample["system"] in members:
            by_task[str(sample["id"])].append(sample)
    for samples in by_task.values():
        samples.sort(key=lambda s: members.index(s["system"]))
    return prompts, dict(by_task)


def candidates_of(samples: list[dict[str, Any]]) -> list[Candidate]:
    return [
        Candidate(
            model=s["system"],
            label=chr(ord("A") + i),
            status="ok",
            text=s["answer"] or "",
            finish_reason="length" if s.get("truncated") else "stop",
        )
        for i, s in enumerate(samples)
    ]


class CachedScorer:
    """The judge model's scores, each (context, text) computed once and shared by every judge row.

    Each judge's latency is then its own wall time plus the model time its scores
    took when first computed, so the rows' latencies are as if nothing were cached.
    """

    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer
        self.cache: dict[tuple[str, str], tuple[float, float]] = {}
        self.charged = 0.0  # model seconds of the cached scores used since the last reset

    async def score(self, prompt: str, continuations: Sequence[str]) -> list[float]:
        missing = [c for c in dict.fromkeys(continuations) if (prompt, c) not in self.cache]
        if missing:
            started = time.perf_counter()
            values = await self.scorer.score(prompt, missing)
            each = (time.perf_counter() - started) / len(missing)
            for text, value in zip(missing, values, strict=True):
                self.cache[(prompt, text)] = (value, each)
        hits = [c for c in continuations if c not in missing]
        self.charged += sum(self.cache[(prompt, c)][1] for c in hits)
        return [self.cache[(prompt, c)][0] for c in continuations]


Judge = Callable[[str, list[Candidate]], Awaitable[str]]


class Proposals:
    """Test inputs the judge model proposes per prompt (CodeT), made once; rows are charged their cost."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.made: dict[str, tuple[list[str], float]] = {}
        self.counts: list[int] = []

    async def inputs(self, prompt: str, scorer: CachedScorer) -> list[str]:
        function = entry_point(prompt)
        if function is None:
            return []
        if prompt not in self.made:
            started = time.perf_counter()
            found = await propose_inputs(self.backend, JUDGE_MODEL, prompt, function)
            self.made[prompt] = (found, time.perf_counter() - started)
            self.counts.append(len(found))
        else:
            scorer.charged += self.made[prompt][1]
        return self.made[prompt][0]


def judges_for(
    scorer: CachedScorer, measures: Sequence[RepetitionMeasure], proposals: Proposals | None
) -> dict[str, Judge]:
    """Every judge compared, by row name."""

    async def greedy(prompt: str, cands: list[Candidate]) -> str:
        return cands[0].model

    async def old_likelihood(prompt: str, cands: list[Candidate]) -> str:
        scores = await scorer.score(prompt, [c.text for c in cands])
        return cands[max(range(len(cands)), key=lambda i: scores[i])].model

    def likelihood(reviewer: bool, measure: RepetitionMeasure) -> Judge:
        async def pick(prompt: str, cands: list[Candidate]) -> str:
            verdict, _ = await judge_by_likelihood(
                JUDGE_MODEL, scorer, prompt, cands, emit=no_events, reviewer=reviewer, measure=measure
            )
            assert verdict is not None
            return str(winner_of(verdict.details))

        return pick

    def execution(scored: bool, measure: RepetitionMeasure = DEFAULT_REPETITION_MEASURE, codet: bool = False) -> Judge:
        async def pick(prompt: str, cands: list[Candidate]) -> str:
            tie = TieBreak(
                preferred=[cands[0].model], scorer=scorer if scored else None, scorer_name=JUDGE_MODEL, measure=measure
            )
            extra = await proposals.inputs(prompt, scorer) if codet and proposals else []
            verdict, _ = await judge_by_execution(
                "exec", prompt, cands, emit=no_events, tie_break=tie, extra_inputs=extra
            )
            assert verdict is not None
            return str(winner_of(verdict.details))

        return pick

    judges: dict[str, Judge] = {
        "greedy sample (#1)": greedy,
        "likelihood, raw mean log-prob": old_likelihood,
    }
    for measure in measures:
        judges[f"likelihood, repetition: {measure}"] = likelihood(False, measure)
    judges[f"likelihood + Coder-Reviewer ({DEFAULT_REPETITION_MEASURE})"] = likelihood(True, DEFAULT_REPETITION_MEASURE)
    judges["exec"] = execution(False)
    for measure in measures:
        judges[f"exec+likelihood ({measure})"] = execution(True, measure)
    if proposals is not None:
        judges["exec, + model-proposed inputs (CodeT)"] = execution(False, codet=True)
        judges[f"exec+likelihood ({DEFAULT_REPETITION_MEASURE}), + CodeT inputs"] = execution(True, codet=True)
    return judges


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tasks", type=Path)
    parser.add_argument("report", type=Path)
    parser.add_argument("--members", type=int, help="only the first N members (a *10 run gives *5 too)")
    parser.add_argument("--measures", default=",".join(REPETITION_MEASURES), help="repetition measures to compare")
    parser.add_argument("--codet", action="store_true", help="also exec with inputs the judge model proposes")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    prompts, by_task = load(args.tasks, args.report)
    if args.members:
        by_task = {task: samples[: args.members] for task, samples in by_task.items()}
    gemma, _ = local_backend(JUDGE_MODEL, LocalConfig(n_ctx=2048))
    await gemma.load()
    scorer = CachedScorer(gemma)
    measures = [m for m in REPETITION_MEASURES if m in args.measures.split(",")]
    results: dict[str, dict[str, Any]] = {}
    distinct = []
    proposals = Proposals(gemma) if args.codet else None
    for name, judge in judges_for(scorer, measures, proposals).items():
        passes, partials, seconds = [], [], []
        for task, samples in by_task.items():  # noqa: B007
            # Members that failed (e.g. timed out) are not candidates, as in a real run.
            answered = [s for s in samples if (s["answer"] or "").strip()] or samples[:1]
            cands = candidates_of(answered)
            scorer.charged = 0.0
            started = time.perf_counter()
            winner = await judge(prompts[task], cands)
            seconds.append(time.perf_counter() - started + scorer.charged)
            chosen = next(s for s in answered if s["system"] == winner)
            passes.append(float(chosen["score"]))
            partials.append(float(chosen.get("partial") or 0.0))
            if name == "exec":
                distinct.append(len({c.text for c in cands}))
        results[name] = {
            "pass": statistics.fmean(passes),
            "partial": statistics.fmean(partials),
            "latency_mean_s": statistics.fmean(seconds),
            "latency_max_s": max(seconds),
        }
        print(f"{name}: pass {results[name]['pass']:.1%}, partial {results[name]['partial']:.1%}", flush=True)
    oracle_pass = statistics.fmean(max(float(s["score"]) for s in v) for v in by_task.values())
    oracle_partial = statistics.fmean(max(float(s.get("partial") or 0) for s in v) for v in by_task.values())
    base = results["greedy sample (#1)"]
    for row in results.values():
        row["eff_pass"] = _eff(row["pass"], base["pass"], oracle_pass)
        row["eff_partial"] = _eff(row["partial"], base["partial"], oracle_partial)
    n = len(by_task)
    print(
        f"{n} tasks, {len(next(iter(by_task.values())))} candidates each; distinct texts per task: "
        f"mean {statistics.fmean(distinct):.2f}"
    )
    if proposals is not None and proposals.counts:
        print(f"CodeT: the model proposed {statistics.fmean(proposals.counts):.1f} usable inputs per task")
    print("| judge | pass | partial | judge eff. (pass / partial) | judge latency mean / max |")
    print("|---|---|---|---|---|")
    for name, row in results.items():
        eff = f"{_fmt(row['eff_pass'])} / {_fmt(row['eff_partial'])}"
        lat = f"{row['latency_mean_s']:.2f} s / {row['latency_max_s']:.2f} s"
        print(f"| {name} | {row['pass']:.1%} | {row['partial']:.1%} | {eff} | {lat} |")
    print(f"| oracle (upper bound) | {oracle_pass:.1%} | {oracle_partial:.1%} | | |")
    if args.json:
        payload = {"tasks": n, "oracle": {"pass": oracle_pass, "partial": oracle_partial}, "judges": results}
        args.json.write_text(json.dumps(payload, indent=2))


def _eff(value: float, base: float, oracle: float) -> float | None:
    return None if oracle == base else (value - base) / (oracle - base)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    asyncio.run(main())
