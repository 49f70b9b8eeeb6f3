"""Fusion: run one prompt through a pool of LLMs at once and fuse their answers.

The engine every front end shares::

    from fusion_core import Fusion, RunSettings

    fusion = Fusion()
    settings = RunSettings(pool=("openai/gpt-4o", "google/gemini-2.5-pro"),
                           judge="anthropic/claude-3.7-sonnet", mode="merge")
    result = fusion.run("Why is the sky blue?", settings)      # or: await fusion.arun(...)
    async for event in fusion.stream("...", settings): ...      # live events
"""

from __future__ import annotations

from fusion_core.config import Config, load_config
from fusion_core.engine import Fusion, RunSettings
from fusion_core.errors import (
    AllCandidatesFailed,
    AuthError,
    BackendError,
    BackendTimeout,
    ConfigError,
    EgressBlocked,
    FusionError,
    JudgeError,
    MissingKey,
    NoCredits,
    RateLimited,
)
from fusion_core.events import (
    CandidateCancelled,
    CandidateDelta,
    CandidateEvent,
    CandidateFailed,
    CandidateFinished,
    CandidateStarted,
    Event,
    JudgeDelta,
    JudgeFailed,
    JudgeFinished,
    JudgeStarted,
    Notice,
    RoundFinished,
    RunFinished,
    RunStarted,
)
from fusion_core.result import Candidate, ErrorInfo, FusionResult, JudgeOutcome
from fusion_core.usage import Usage

__version__ = "0.1.0"

__all__ = [
    "AllCandidatesFailed",
    "AuthError",
    "BackendError",
    "BackendTimeout",
    "Candidate",
    "CandidateCancelled",
    "CandidateDelta",
    "CandidateEvent",
    "CandidateFailed",
    "CandidateFinished",
    "CandidateStarted",
    "Config",
    "ConfigError",
    "EgressBlocked",
    "ErrorInfo",
    "Event",
    "Fusion",
    "FusionError",
    "FusionResult",
    "JudgeDelta",
    "JudgeError",
    "JudgeFailed",
    "JudgeFinished",
    "JudgeOutcome",
    "JudgeStarted",
    "MissingKey",
    "NoCredits",
    "Notice",
    "RateLimited",
    "RoundFinished",
    "RunFinished",
    "RunSettings",
    "RunStarted",
    "Usage",
    "load_config",
]
