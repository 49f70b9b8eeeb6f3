"""Plain-text descriptions of costs, times, errors, events and verdicts, shared by every front end.

The CLI's line-by-line mode, the notebook's text mode and its widgets all word
things the same way because they all use these. The judge's verdict is read
only here (:func:`read_verdict`), and :class:`AnswerSoFar` reads a fused answer
out of a judge reply that is still being written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

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
# The judge's verdict, read in one place.
#
# ``JudgeOutcome.verdict`` is still a mode-specific dict. The CLI reads it only through
# :func:`read_verdict`; the notebook view and the language server still read the dict
# themselves and should move here (or to typed verdicts, issue #10).


@dataclass(frozen=True)
class Stance:
    """One model's position in a contradiction."""

    model: str
    stance: str


@dataclass(frozen=True)
class Contradiction:
    topic: str
    stances: tuple[Stance, ...]


@dataclass(frozen=True)
class Insight:
    """Something only ``model`` said."""

    model: str
    insight: str


@dataclass(frozen=True)
class VerdictView:
    """What a front end shows of a verdict: best-of's winner and scores, or merge's analysis."""

    winner: str | None = None
    scores: tuple[tuple[str, float], ...] = ()
    score_unit: str = "0-10"
    # The execution judge's tie-break: each candidate's likelihood total, when one was used.
    tie_break: str = ""
    tie_break_scores: tuple[tuple[str, float], ...] = ()
    swap_agree: bool | None = None
    swap_confidence: str = ""
    confidence: float | None = None
    consensus: tuple[str, ...] = ()
    contradictions: tuple[Contradiction, ...] = ()
    insights: tuple[Insight, ...] = ()
    blind_spots: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return self == VerdictView()


def read_verdict(judge: JudgeOutcome | None) -> VerdictView:
    """The verdict of a judge that succeeded, as a VerdictView (empty when there is none)."""
    if judge is None or judge.error is not None or not judge.verdict:
        return VerdictView()
    data: Mapping[str, Any] = judge.verdict
    swap = data.get("swap")
    raw_scores = data.get("scores")
    scores: Iterable[tuple[Any, Any]] = raw_scores.items() if isinstance(raw_scores, dict) else ()
    confidence = data.get("confidence")
    if not isinstance(confidence, int | float) or isinstance(confidence, bool):
        confidence = None
    method = data.get("method")
    unit = {"likelihood": "mean token log-probability", "exec": "visible tests passed"}.get(str(method), "0-10")
    execution = data.get("execution")
    if method == "exec" and isinstance(execution, dict):
        scores = ((model, row.get("passed")) for model, row in execution.items() if isinstance(row, dict))
    components = data.get("components")
    tie_scores = components.items() if method == "exec" and isinstance(components, dict) else ()
    return VerdictView(
        winner=str(data["winner"]) if data.get("winner") is not None else None,
        scores=tuple((str(model), float(score)) for model, score in scores if _is_number(score)),
        score_unit=unit,
        tie_break=str(data.get("tie_break") or "") if method == "exec" else "",
        tie_break_scores=tuple(
            (str(model), float(row["total"]))
            for model, row in tie_scores
            if isinstance(row, dict) and _is_number(row.get("total"))
        ),
        swap_agree=bool(swap.get("agree")) if isinstance(swap, dict) else None,
        swap_confidence=str(swap.get("confidence", "")) if isinstance(swap, dict) else "",
        confidence=None if confidence is None else float(confidence),
        consensus=tuple(str(c) for c in data.get("consensus") or ()),
        contradictions=tuple(
            Contradiction(
                topic=str(item.get("topic", "")),
                stances=tuple(
                    Stance(str(s.get("model", "")), str(s.get("stance", "")))
                    for s in item.get("stances") or ()
                    if isinstance(s, dict)
                ),
            )
            for item in data.get("contradictions") or ()
            if isinstance(item, dict)
        ),
        insights=tuple(
            Insight(str(i.get("model", "")), str(i.get("insight", "")))
            for i in data.get("unique_insights") or ()
            if isinstance(i, dict)
        ),
        blind_spots=tuple(str(b) for b in data.get("blind_spots") or ()),
    )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def verdict_lines(view: VerdictView) -> list[str]:
    """The verdict in a few plain lines: winner and scores, or confidence and the analysis."""
    lines: list[str] = []
    if view.winner is not None:
        ranked = sorted(view.scores, key=lambda item: item[1], reverse=True)
        scores = ", ".join(f"{model} {score:g}" for model, score in ranked)
        lines.append(f"winner {view.winner}" + (f"; scores ({view.score_unit}): {scores}" if scores else ""))
        if view.tie_break:
            ties = sorted(view.tie_break_scores, key=lambda item: item[1], reverse=True)
            detail = ", ".join(f"{model} {score:g}" for model, score in ties)
            lines.append(f"tie-break: {view.tie_break}" + (f" ({detail})" if detail else ""))
        if view.swap_agree is not None:
            agreed = "agreed" if view.swap_agree else "disagreed"
            lines.append(f"position-bias check: the two judgings {agreed}, confidence {view.swap_confidence}")
        return lines
    if view.confidence is not None:
        lines.append(f"confidence {view.confidence:.0%}")
    lines += [f"consensus: {item}" for item in view.consensus]
    for contradiction in view.contradictions:
        lines.append(f"contradiction: {contradiction.topic}")
        lines += [f"    {s.model}: {s.stance}" for s in contradiction.stances]
    lines += [f"unique insight ({i.model}): {i.insight}" for i in view.insights]
    lines += [f"blind spot: {spot}" for spot in view.blind_spots]
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
    winner = read_verdict(result.judge).winner
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
