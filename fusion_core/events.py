"""The event stream of a fusion run: small frozen dataclasses.

Every front end (CLI, notebook widget, language server) renders the same
stream; none of them needs to know how the engine works inside.
"""

from __future__ import annotations

from dataclasses import dataclass

from fusion_core.result import ErrorInfo, FusionResult
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
class CandidateStarted:
    model: str
    label: str
    round: int = 1


@dataclass(frozen=True)
class CandidateDelta:
    model: str
    text: str
    round: int = 1


@dataclass(frozen=True)
class CandidateFinished:
    model: str
    text: str
    usage: Usage
    latency_s: float
    round: int = 1
    finish_reason: str | None = None  # "length": cut off at max_tokens


@dataclass(frozen=True)
class CandidateFailed:
    model: str
    error: ErrorInfo
    latency_s: float
    text: str = ""
    round: int = 1


@dataclass(frozen=True)
class CandidateCancelled:
    """A straggler stopped because the quorum was met, or the run was cancelled."""

    model: str
    text: str
    latency_s: float
    round: int = 1


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
    | RunFinished
)
