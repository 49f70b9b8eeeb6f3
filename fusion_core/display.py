"""Plain-text descriptions of costs, times, errors, events and verdicts, shared by every front end.

The CLI's line-by-line mode, the notebook's text mode and its widgets all word
things the same way because they all use these. The judge's verdict is read
into lines only here (:func:`verdict_lines`), and :class:`AnswerSoFar` reads a fused answer
out of a judge reply that is still being written.
"""

from __future__ import annotations

import math

import jiter

from fusion_core.events import (
    CandidateCancelled,
    CandidateEvent,
    CandidateFailed,
    CandidateFinished,
    CandidateStarted,
    Event,
    JudgeFailed,
    JudgeFinished,
    JudgeStarted,
    Notice,
    RoundFinished,
    RunStarted,
)
from fusion_core.result import FusionResult, JudgeOutcome
from fusion_core.usage import Usage
from fusion_core.verdicts import BestOfVerdict, ExecVerdict, JudgeVerdict, LikelihoodVerdict, MergeVerdict, winner_of

# How every front end words an answer that stopped at max_tokens (finish_reason "length").
TRUNCATED = "truncated"
TRUNCATED_HINT = "cut off at max_tokens; raise --max-tokens for a complete answer"


def format_cost(usage: Usage | None) -> str:
    """``$0.0012`` (``~`` when estimated from list prices), ``n/a`` when unknown."""
    if usage is None or usage.cost is None:
        return "n/a"
    cost = usage.cost
    # Cheap models cost fractions of a cent per call; show enough digits to compare them.
    text = "0" if cost == 0 else f"{cost:.4f}" if cost >= 0.01 else f"{cost:.6f}"
    return f"{'~' if usage.cost_estimated else ''}${text}"


def format_tokens(usage: Usage | None) -> str:
    """``1,234 tokens`` (prompt plus completion), blank when unknown."""
    if usage is None:
        return ""
    return f"{usage.total_tokens:,} tokens"


def format_seconds(seconds: float | None) -> str:
    """``0.61 s`` (one decimal from 10 s on), blank when unknown."""
    if seconds is None:
        return ""
    return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"


def error_text(kind: str, status: int | None, message: str) -> str:
    """``no_credits: 402 insufficient credits``: the kind, and the status unless the message has it."""
    if status is not None and str(status) not in message:
        return f"{kind}: {status} {message}"
    return f"{kind}: {message}"


def progress_line(event: Event) -> str | None:
    """One line describing ``event``, or None for events not worth a line (deltas)."""
    if isinstance(event, RunStarted):
        judge = f"judge {event.judge}" if event.judge else "no judge (one model runs alone)"
        return f"fusion: {event.mode} over {len(event.models)} models, {judge}"
    if isinstance(event, Notice):
        return f"note: {event.message}"
    number = event.round if isinstance(event, CandidateEvent) else 1
    suffix = f" (round {number})" if number > 1 else ""
    if isinstance(event, CandidateStarted):
        return f"  {event.model}: streaming{suffix}"
    if isinstance(event, CandidateFinished):
        cut = f" ({TRUNCATED} at max_tokens)" if event.finish_reason == "length" else ""
        return (
            f"  {event.model}: done{suffix} in {format_seconds(event.latency_s)}, "
            f"{event.usage.completion_tokens} tokens{cut}"
        )
    if isinstance(event, CandidateFailed):
        error = event.error
        message = error.message.removeprefix(f"{event.model}: ")  # the line already starts with the name
        return f"  {event.model}: failed{suffix}: {error_text(error.kind, error.status, message)}"
    if isinstance(event, CandidateCancelled):
        return f"  {event.model}: cancelled{suffix} after {format_seconds(event.latency_s)}"
    if isinstance(event, RoundFinished):
        return f"  round {event.round} done" + (" (converged)" if event.converged else "")
    if isinstance(event, JudgeStarted):
        return f"  judge {event.model}: " + ("judging" if event.attempt == 1 else "repair request")
    if isinstance(event, JudgeFinished):
        return f"  judge {event.model}: done"
    if isinstance(event, JudgeFailed):
        error = event.error
        return f"  judge {event.model}: failed: {error_text(error.kind, error.status, error.message)}"
    return None


# ---------------------------------------------------------------------------
# The judge's verdict, in lines. Verdicts are typed (:mod:`fusion_core.verdicts`): every
# renderer reads their attributes; the CLI and the notebook's text mode word them here.


def read_verdict(judge: JudgeOutcome | None) -> JudgeVerdict | None:
    """The verdict of a judge that succeeded (None when there is none)."""
    if judge is None or judge.error is not None:
        return None
    return judge.verdict


def chart_scores(verdict: BestOfVerdict | LikelihoodVerdict | ExecVerdict) -> list[tuple[str, float]]:
    """Each model's score for a chart or a line (in ``verdict.score_unit``), in pool order.

    The execution judge is shown by visible tests passed; a likelihood of -inf (an
    empty candidate) has no score to show.
    """
    if isinstance(verdict, ExecVerdict):
        return [(model, float(run.passed)) for model, run in verdict.execution.items()]
    return [(model, score) for model, score in verdict.scores.items() if score is not None]


def verdict_lines(verdict: JudgeVerdict | None) -> list[str]:
    """The verdict in a few plain lines: winner and scores, or confidence and the analysis."""
    if verdict is None:
        return []
    if isinstance(verdict, MergeVerdict):
        return _analysis_lines(verdict)
    ranked = sorted(chart_scores(verdict), key=lambda item: item[1], reverse=True)
    scores = ", ".join(f"{model} {score:g}" for model, score in ranked)
    lines = [f"winner {verdict.winner}" + (f"; scores ({verdict.score_unit}): {scores}" if scores else "")]
    if isinstance(verdict, ExecVerdict):
        totals = [(model, score.total) for model, score in verdict.components.items() if math.isfinite(score.total)]
        ties = sorted(((m, round(t, 4)) for m, t in totals), key=lambda item: item[1], reverse=True)
        detail = ", ".join(f"{model} {score:g}" for model, score in ties)
        lines.append(f"tie-break: {verdict.tie_break}" + (f" ({detail})" if detail else ""))
    if not isinstance(verdict, BestOfVerdict):
        # What each likelihood total is made of: the model's number and every penalty.
        lines += [f"    {model}: {score.describe()}" for model, score in verdict.components.items()]
    if isinstance(verdict, BestOfVerdict) and verdict.swap is not None:
        agreed = "agreed" if verdict.swap.agree else "disagreed"
        lines.append(f"position-bias check: the two judgings {agreed}, confidence {verdict.swap.confidence}")
    return lines


def _analysis_lines(verdict: MergeVerdict) -> list[str]:
    lines = [f"confidence {verdict.confidence:.0%}"]
    lines += [f"consensus: {item}" for item in verdict.consensus]
    for contradiction in verdict.contradictions:
        lines.append(f"contradiction: {contradiction.topic}")
        lines += [f"    {s.model}: {s.stance}" for s in contradiction.stances]
    lines += [f"unique insight ({i.model}): {i.insight}" for i in verdict.unique_insights]
    lines += [f"blind spot: {spot}" for spot in verdict.blind_spots]
    return lines


def truncated_models(result: FusionResult) -> list[str]:
    """Candidates that stopped at ``max_tokens`` (their answers are cut off)."""
    return [c.model for c in result.candidates if c.ok and c.truncated]


def answer_truncated(result: FusionResult) -> bool:
    """Whether the answer printed is cut off: it is the text of a candidate that was.

    A merged answer is never cut off when the run succeeded: it was read from a
    complete JSON string, even if the judge's reply went on until ``max_tokens``.
    """
    if not result.ok:
        return False
    if result.judge is None:  # one model and no judge: the answer is that model's
        answered = [c for c in result.candidates if c.ok]
        return len(answered) == 1 and answered[0].truncated
    winner = winner_of(read_verdict(result.judge))
    return any(c.model == winner and c.truncated for c in result.candidates)


class AnswerSoFar:
    """The fused answer while the judge is still writing it, read from its partial JSON reply.

    merge and debate judges reply with a JSON object whose ``answer`` field is the
    fused answer; jiter's partial mode reads the object before it is closed, so a
    front end can show the answer as it is written. best-of replies have no
    ``answer`` field (the winner's text is known only at the end).
    """

    def __init__(self) -> None:
        self._reply: list[str] = []
        self.text = ""

    def feed(self, delta: str) -> str:
        """Add a piece of the judge's reply; return the part of the answer that is new."""
        self._reply.append(delta)
        reply = "".join(self._reply)
        start = reply.find("{")
        if start < 0:
            return ""
        try:
            data = jiter.from_json(reply[start:].encode(), partial_mode="trailing-strings")
        except ValueError:  # not JSON (yet, or after the object closed): nothing new to show
            return ""
        answer = data.get("answer") if isinstance(data, dict) else None
        if not isinstance(answer, str):
            return ""
        answer = answer.lstrip()
        if not answer.startswith(self.text):
            return ""
        new, self.text = answer[len(self.text) :], answer
        return new
