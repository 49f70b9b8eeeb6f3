"""Compare judges on the very same candidates, from a ``fusion eval`` report.

``fusion eval`` runs each judge as its own system, so comparing five judges
costs five generations. The candidates of one run are enough: every member's
answer in the report is already graded (pass and partial credit), so a judge's
pick is scored by looking it up. Run from the repository root::

    fusion eval examples/evals/code.jsonl --pool 'local/gemma-3-270m*5' --out runs/star5
    python benchmarks/judges.py examples/evals/code.jsonl runs/star5/report.json [--json out.json]

Rows: the greedy sample (#1), the old likelihood judge (raw mean token
log-probability), the penalised likelihood judge, with Coder-Reviewer,
``exec``, ``exec+likelihood`` and the oracle (an upper bound). Judge
efficiency = (judge − greedy) / (oracle − greedy), for passes and partial credit.
Latency is each judge's own wall time per task (the candidates already exist).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fusion_core.backends.llama import local_backend
from fusion_core.config import LocalConfig
from fusion_core.events import Event
from fusion_core.judges.exec_judge import TieBreak, judge_by_execution
from fusion_core.judges.likelihood import judge_by_likelihood
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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tasks", type=Path)
    parser.add_argument("report", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    prompts, by_task = load(args.tasks, args.report)
    gemma, _ = local_backend(JUDGE_MODEL, LocalConfig(n_ctx=2048))
    await gemma.load()

    async def greedy(prompt: str, cands: list[Candidate]) -> str:
        return cands[0].model

    async def old_likelihood(prompt: str, cands: list[Candidate]) -> str:
        scores = await gemma.score(prompt, [c.text for c in cands])
        return cands[max(range(len(cands)), key=lambda i: scores[i])].model

    def likelihood(reviewer: bool) -> Callable[[str, list[Candidate]], Awaitable[str]]:
        async def pick(prompt: str, cands: list[Candidate]) -> str:
            verdict, _ = await judge_by_likelihood(JUDGE_MODEL, gemma, prompt, cands, emit=no_events, reviewer=reviewer)
            assert verdict is not None
            return str(winner_of(verdict.details))

        return pick

    def execution(scored: bool) -> Callable[[str, list[Candidate]], Awaitable[str]]:
        async def pick(prompt: str, cands: list[Candidate]) -> str:
            tie = TieBreak(preferred=[cands[0].model], scorer=gemma if scored else None, scorer_name=JUDGE_MODEL)
            verdict, _ = await judge_by_execution("exec", prompt, cands, emit=no_events, tie_break=tie)
            assert verdict is not None
            return str(winner_of(verdict.details))

        return pick

    judges: dict[str, Callable[[str, list[Candidate]], Awaitable[str]]] = {
        "greedy sample (#1)": greedy,
        "likelihood, old (mean log-prob)": old_likelihood,
        "likelihood, penalised (new)": likelihood(False),
        "likelihood + Coder-Reviewer": likelihood(True),
        "exec": execution(False),
        "exec+likelihood": execution(True),
    }
    results: dict[str, dict[str, Any]] = {}
    distinct = []
    for name, judge in judges.items():
        passes, partials, seconds = [], [], []
        for task, samples in by_task.items():  # noqa: B007
            # Members that failed (e.g. timed out) are not candidates, as in a real run.
            answered = [s for s in samples if (s["answer"] or "").strip()] or samples[:1]
            cands = candidates_of(answered)
            started = time.perf_counter()
            winner = await judge(prompts[task], cands)
            seconds.append(time.perf_counter() - started)
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
