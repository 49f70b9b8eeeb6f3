"""Plain-text descriptions of costs, times, errors and events, shared by every front end.

The CLI's line-by-line mode, the notebook's text mode and its widgets all word
things the same way because they all use these.
"""

from __future__ import annotations

from fusion_core.events import (
    CandidateCancelled,
    CandidateFailed,
    CandidateFinished,
    CandidateStarted,
    Event,
    JudgeStarted,
    Notice,
    RoundFinished,
    RunStarted,
)
from fusion_core.usage import Usage


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
    number = getattr(event, "round", 1)
    suffix = f" (round {number})" if number > 1 else ""
    if isinstance(event, CandidateStarted):
        return f"  {event.model}: streaming{suffix}"
    if isinstance(event, CandidateFinished):
        return (
            f"  {event.model}: done{suffix} in {format_seconds(event.latency_s)}, "
            f"{event.usage.completion_tokens} tokens"
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
    return None
