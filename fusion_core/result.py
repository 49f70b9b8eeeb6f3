"""The outcome of a fusion run: plain data that serialises to JSON.

Every text field is scrubbed of registered API keys as the object is made
(:mod:`fusion_core.secrets`), so no front end, log or JSON dump can show one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from fusion_core.secrets import scrub, scrub_data, scrub_known
from fusion_core.usage import Usage
from fusion_core.verdicts import JudgeVerdict

CandidateStatus = Literal["waiting", "streaming", "ok", "failed", "cancelled"]
RunStatus = Literal["ok", "judge_failed", "all_failed"]


@dataclass(frozen=True)
class ErrorInfo:
    """Why a candidate or judge failed, in words fit for a user."""

    kind: str
    message: str
    status: int | None = None
    hint: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "message", scrub(self.message))
        object.__setattr__(self, "hint", scrub(self.hint))

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "message": self.message}
        if self.status is not None:
            data["status"] = self.status
        if self.hint:
            data["hint"] = self.hint
        return data


@dataclass(frozen=True)
class Candidate:
    """One pool member's answer in one round."""

    model: str
    label: str
    status: CandidateStatus
    text: str = ""
    error: ErrorInfo | None = None
    latency_s: float | None = None
    usage: Usage = field(default_factory=Usage)
    round: int = 1
    finish_reason: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", scrub_known(self.text))

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def truncated(self) -> bool:
        """True when the model stopped at ``max_tokens``: the answer is cut off."""
        return self.finish_reason == "length"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "label": self.label,
            "status": self.status,
            "text": self.text,
            "error": self.error.to_dict() if self.error else None,
            "latency_s": None if self.latency_s is None else round(self.latency_s, 4),
            "usage": self.usage.to_dict(),
            "finish_reason": self.finish_reason,
            "truncated": self.truncated,
        }


@dataclass(frozen=True)
class JudgeOutcome:
    """What the judge decided; ``verdict`` is the judge's typed verdict, labels mapped back to models."""

    model: str
    rationale: str = ""
    verdict: JudgeVerdict | None = None
    usage: Usage = field(default_factory=Usage)
    error: ErrorInfo | None = None
    raw_replies: tuple[str, ...] = ()
    finish_reason: str | None = None

    @property
    def truncated(self) -> bool:
        """True when the judge's own reply stopped at ``max_tokens``."""
        return self.finish_reason == "length"

    def __post_init__(self) -> None:
        object.__setattr__(self, "rationale", scrub(self.rationale))
        object.__setattr__(self, "raw_replies", tuple(scrub_known(r) for r in self.raw_replies))

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "model": self.model,
            "rationale": self.rationale,
            "verdict": scrub_data(self.verdict.to_dict()) if self.verdict is not None else {},
            "usage": self.usage.to_dict(),
            "finish_reason": self.finish_reason,
            "truncated": self.truncated,
        }
        if self.error is not None:
            data["error"] = self.error.to_dict()
            data["raw_replies"] = list(self.raw_replies)
        return data


@dataclass(frozen=True)
class FusionResult:
    """A finished run. ``answer`` is empty unless status is ``ok``."""

    mode: str
    status: RunStatus
    answer: str
    candidates: tuple[Candidate, ...]
    judge: JudgeOutcome | None
    usage: Usage
    wall_s: float
    rounds: tuple[tuple[Candidate, ...], ...] = ()
    warnings: tuple[str, ...] = ()
    # Seconds spent loading in-process models before the candidates started: part of
    # ``wall_s``, not of any candidate's latency.
    load_s: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "answer", scrub_known(self.answer))
        object.__setattr__(self, "warnings", tuple(scrub(w) for w in self.warnings))

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON shape (what ``fusion run --json`` prints)."""
        data: dict[str, Any] = {
            "mode": self.mode,
            "answer": self.answer,
            "status": self.status,
            "judge": self.judge.to_dict() if self.judge else None,
            "candidates": [c.to_dict() for c in self.candidates],
            "usage": self.usage.to_dict(),
            "wall_s": round(self.wall_s, 4),
            "warnings": list(self.warnings),
            "load_s": round(self.load_s, 4),
        }
        if self.mode == "debate":
            data["rounds"] = [[c.to_dict() for c in rnd] for rnd in self.rounds]
        return data

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)
