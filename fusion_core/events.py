"""The event stream of a fusion run: small frozen dataclasses.

Every front end (CLI, notebook widget, language server) renders the same
stream; none of them needs to know how the engine works inside. Events about
one pool member derive from :class:`CandidateEvent`, so a consumer asks
``isinstance(event, CandidateEvent)`` for ``event.model`` instead of probing
attributes. The judge's part of a run is ``JudgeStarted``, ``JudgeDelta``,
then ``JudgeFinished`` or ``JudgeFailed``, before ``RunFinished``.

:mod:`fusion_core.run_state` folds this stream into one per-model state
machine that every front end reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fusion_core.result import ErrorInfo, FusionResult, JudgeOutcome
from fusion_core.usage import Usage


@dataclass(frozen=True)
class RunStarted:
    mode: str
    models: tuple[str, ...]
    judge: str
    rounds: int = 1


@dataclass(frozen=True)
class Notice:
    """Something the user should know that is not an error (e.g. self-preference bias)."""

    message: str


@dataclass(frozen=True)
class CandidateEvent:
    """Base of every event about one pool member: ``model`` is its name in the pool,
    ``round`` the debate round (1 outside a debate)."""

    model: str
    # Keyword-only, so each event's own fields keep their positions after ``model``.
    round: int = field(default=1, kw_only=True)


@dataclass(frozen=True)
class CandidateStarted(CandidateEvent):
    label: str


@dataclass(frozen=True)
class CandidateDelta(CandidateEvent):
    text: str


@dataclass(frozen=True)
class CandidateFinished(CandidateEvent):
    text: str
    usage: Usage
    latency_s: float
    finish_reason: str | None = None  # "length": cut off at max_tokens


@dataclass(frozen=True)
class CandidateFailed(CandidateEvent):
    error: ErrorInfo
    latency_s: float
    text: str = ""


@dataclass(frozen=True)
class CandidateCancelled(CandidateEvent):
    """A straggler stopped because the quorum was met, or the run was cancelled."""

    text: str
    latency_s: float


@dataclass(frozen=True)
class RoundFinished:
    """Debate only: every member has answered round ``round``."""

    round: int
    converged: bool = False


@dataclass(frozen=True)
class JudgeStarted:
    model: str
    attempt: int = 1


@dataclass(frozen=True)
class JudgeDelta:
    text: str


@dataclass(frozen=True)
class JudgeFinished:
    """The judge decided; ``outcome`` is what the result's ``judge`` will hold."""

    model: str
    outcome: JudgeOutcome


@dataclass(frozen=True)
class JudgeFailed:
    """The judge gave no usable verdict (the candidates are kept; the run is ``judge_failed``)."""

    model: str
    error: ErrorInfo
    outcome: JudgeOutcome


@dataclass(frozen=True)
class RunFinished:
    result: FusionResult


Event = (
    RunStarted
    | Notice
    | CandidateStarted
    | CandidateDelta
    | CandidateFinished
    | CandidateFailed
    | CandidateCancelled
    | RoundFinished
    | JudgeStarted
    | JudgeDelta
    | JudgeFinished
    | JudgeFailed
    | RunFinished
)
