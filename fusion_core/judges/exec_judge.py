"""The ``exec`` judge's verdict: execution ranking, a tie-break, and why the winner won.

``exec`` alone breaks ties by the greedy sample (then pool order);
``exec+likelihood:local/...`` by the penalised likelihood
(:mod:`fusion_core.judges.likelihood`); ``exec+MODEL`` asks an LLM judge to
pick among the tied leaders, showing it each candidate's execution results as
fenced, untrusted facts. The judge's own latency (sandbox runs included) is
recorded in the verdict.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from fusion_core.errors import FusionError
from fusion_core.events import JudgeStarted
from fusion_core.judge import JudgeCall, judge_with_llm
from fusion_core.judges.execution import CandidateRun, ExecReport, execute_candidates, rank
from fusion_core.judges.likelihood import (
    DEFAULT_REPETITION_MEASURE,
    Emit,
    LikelihoodScore,
    RepetitionMeasure,
    Scorer,
    judge_by_likelihood,
    score_candidates,
)
from fusion_core.judges.visible_tests import is_code_prompt
from fusion_core.modes.base import Verdict
from fusion_core.pool import error_info
from fusion_core.result import Candidate, JudgeOutcome
from fusion_core.usage import Usage
from fusion_core.verdicts import ExecVerdict, winner_of

__all__ = ["TieBreak", "judge_by_execution"]


class TieBreak:
    """How ties after execution are broken: greedy sample, likelihood, or an LLM judge."""

    def __init__(
        self,
        *,
        preferred: Sequence[str] = (),
        scorer: Scorer | None = None,
        scorer_name: str = "",
        reviewer: bool = False,
        llm: JudgeCall | None = None,
        measure: RepetitionMeasure = DEFAULT_REPETITION_MEASURE,
    ) -> None:
        self.preferred = tuple(preferred)
        self.scorer = scorer
        self.scorer_name = scorer_name
        self.reviewer = reviewer
        self.llm = llm
        self.measure = measure

    def describe(self) -> str:
        if self.llm is not None:
            return f"the LLM judge {self.llm.name}"
        if self.scorer is not None:
            return f"likelihood under {self.scorer_name}"
        return "the greedy sample, then pool order"


async def judge_by_execution(
    name: str,
    prompt: str,
    candidates: Sequence[Candidate],
    *,
    emit: Emit,
    tie_break: TieBreak,
    clock: Callable[[], float] = time.perf_counter,
    extra_inputs: Sequence[str] = (),
) -> tuple[Verdict | None, JudgeOutcome]:
    """best-of by execution: visible tests passed, then agreement-group size, then the tie-break.

    A prompt that asks for no function is judged by the tie-break judge alone (the
    penalised likelihood, or the LLM judge), so ``exec+...`` is a safe default for any prompt.
    """
    if not is_code_prompt(prompt):
        if tie_break.scorer is not None:
            return await judge_by_likelihood(
                name,
                tie_break.scorer,
                prompt,
                candidates,
                emit=emit,
                reviewer=tie_break.reviewer,
                measure=tie_break.measure,
            )
        if tie_break.llm is not None:
            return await judge_with_llm(tie_break.llm, candidates, swap=False, emit=emit)
    emit(JudgeStarted(model=name))
    started = clock()
    report = await execute_candidates(prompt, candidates, clock=clock, extra_inputs=extra_inputs)
    exec_s = clock() - started
    order = rank(report.runs, [-float(_position(c.model, tie_break.preferred, i)) for i, c in enumerate(candidates)])
    best = order[0]
    leaders = [i for i in order if _key(report.runs[i]) == _key(report.runs[best])]
    # Only a real tie needs the (slower) likelihood: score the leaders alone, and only when they differ.
    likelihoods: dict[int, LikelihoodScore] = {}
    if tie_break.scorer is not None and len({candidates[i].text for i in leaders}) > 1:
        tied = [candidates[i] for i in leaders]
        try:
            scored = await score_candidates(
                tie_break.scorer, prompt, tied, reviewer=tie_break.reviewer, measure=tie_break.measure
            )
        except FusionError as exc:
            return None, JudgeOutcome(model=name, error=error_info(exc))
        likelihoods = dict(zip(leaders, scored, strict=True))
        best = max(leaders, key=lambda i: (likelihoods[i].total, -leaders.index(i)))
    usage = Usage()
    llm_note = ""
    if tie_break.llm is not None and len(leaders) > 1:
        chosen, usage, llm_note = await _ask_llm(tie_break.llm, report, [candidates[i] for i in leaders], leaders, emit)
        best = order[0] if chosen is None else chosen
    winner = candidates[best]
    judge_s = clock() - started
    details = ExecVerdict(
        winner=winner.model,
        winner_label=winner.label,
        scores={c.model: _score(r, len(candidates)) for c, r in zip(candidates, report.runs, strict=True)},
        execution={c.model: r.row() for c, r in zip(candidates, report.runs, strict=True)},
        summary=report.summary(),
        tie_break=tie_break.describe(),
        distinct_candidates=len({c.text for c in candidates}),
        execution_s=exec_s,
        judge_s=judge_s,
        components={candidates[i].model: score for i, score in likelihoods.items()},
    )
    rationale = _explain(report, candidates, best, leaders, tie_break, likelihoods, llm_note, judge_s)
    verdict = Verdict(answer=winner.text, rationale=rationale, details=details)
    return verdict, JudgeOutcome(model=name, rationale=rationale, verdict=details, usage=usage)


def _position(model: str, preferred: Sequence[str], index: int) -> int:
    return preferred.index(model) if model in preferred else len(preferred) + index


def _key(run: CandidateRun) -> tuple[bool, int, int]:
    return (run.broken, run.passed, run.group_size)


def _score(run: CandidateRun, n: int) -> float:
    """A 0-10 score for charts: share of visible tests passed, else share of candidates agreeing."""
    if run.broken:
        return 0.0
    if run.run:
        return round(10 * run.passed / run.run, 2)
    return round(10 * run.group_size / max(n, 1), 2)


async def _ask_llm(
    call: JudgeCall, report: ExecReport, leaders: list[Candidate], indices: list[int], emit: Emit
) -> tuple[int | None, Usage, str]:
    facts = report.facts()
    call = replace(call, facts=tuple((c.label, facts[c.label]) for c in leaders if c.label in facts))
    verdict, outcome = await judge_with_llm(call, leaders, swap=False, emit=emit)
    if verdict is None:
        reason = outcome.error.message if outcome.error else "no verdict"
        return None, outcome.usage, f" The LLM tie-break failed ({reason}); the first leader was kept."
    chosen = next((i for i, c in zip(indices, leaders, strict=True) if c.model == winner_of(verdict.details)), None)
    return chosen, outcome.usage, f" {call.name} chose among the leaders: {verdict.rationale[:300]}"


def _explain(
    report: ExecReport,
    candidates: Sequence[Candidate],
    best: int,
    leaders: list[int],
    tie_break: TieBreak,
    likelihoods: dict[int, LikelihoodScore],
    llm_note: str,
    judge_s: float,
) -> str:
    winner, run = candidates[best], report.runs[best]
    text = f"{winner.label} ({winner.model}) won on execution: {run.describe()}."
    if len(leaders) > 1:
        why = tie_break.describe()
        if best in likelihoods:
            why = f"likelihood under {tie_break.scorer_name} ({likelihoods[best].describe()})"
        elif tie_break.llm is None:
            why = "the greedy sample, then pool order"
        text += f" {len(leaders)} candidates tied on tests and agreement; the tie went by {why}."
    text += llm_note
    others = [f"{c.label}: {r.describe()}" for c, r in zip(candidates, report.runs, strict=True) if c is not winner]
    if others:
        text += " Others: " + "; ".join(others) + "."
    if report.notes:
        text += " Note: " + "; ".join(report.notes) + "."
    return text + f" Judging took {judge_s:.2f} s."
