"""Typed verdicts: what each judge decided, as frozen dataclasses that serialise to the JSON of ``--json``.

Every front end (the CLI, the notebook, the run log, ``fusion eval``) used to read
one mode-specific ``dict`` by string keys, so a renamed key broke a renderer
silently. Now each judge builds one of these, renderers read attributes, and
``to_dict()`` writes exactly the JSON that the dicts had (a test holds each kind
to it); :func:`verdict_from_dict` reads that JSON back (stored results).

* :class:`BestOfVerdict`: an LLM judge picked a winner and scored everyone 0-10
  (with ``swap`` when it judged twice, in reversed order);
* :class:`MergeVerdict`: an LLM judge wrote a fused answer and an analysis of agreement;
* :class:`LikelihoodVerdict`: a local model's penalised likelihood picked the winner;
* :class:`ExecVerdict`: execution of code candidates picked the winner.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from fusion_core.judges.visible_tests import VisibleTest

__all__ = [
    "BestOfVerdict",
    "Contradiction",
    "ExecRun",
    "ExecSummary",
    "ExecVerdict",
    "Insight",
    "JudgeVerdict",
    "LikelihoodScore",
    "LikelihoodVerdict",
    "MergeVerdict",
    "Stance",
    "SwapCheck",
    "verdict_from_dict",
    "winner_of",
]


def _finite(value: float) -> float | None:
    # JSON has no infinity; an empty candidate's -inf is shown as null.
    return round(value, 4) if math.isfinite(value) else None


def _number(value: Any) -> float:
    return float("-inf") if value is None else float(value)


@dataclass(frozen=True)
class SwapCheck:
    """best-of judged twice with the candidates in reversed order: did the two judgings agree?"""

    agree: bool
    confidence: str
    winners: tuple[str, str]
    scores: tuple[Mapping[str, float], Mapping[str, float]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "agree": self.agree,
            "confidence": self.confidence,
            "winners": list(self.winners),
            "scores": [dict(s) for s in self.scores],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SwapCheck:
        first, second = data["winners"]
        scores_a, scores_b = data["scores"]
        return cls(bool(data["agree"]), str(data["confidence"]), (first, second), (dict(scores_a), dict(scores_b)))


@dataclass(frozen=True)
class BestOfVerdict:
    """An LLM judge's pick: the winner and a 0-10 score per model (labels mapped back to models)."""

    winner: str
    scores: Mapping[str, float]
    # The winner's label in the judging; None after two judgings in different orders.
    winner_label: str | None = None
    swap: SwapCheck | None = None

    score_unit: ClassVar[str] = "0-10"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"winner": self.winner}
        if self.winner_label is not None:
            data["winner_label"] = self.winner_label
        data["scores"] = dict(self.scores)
        if self.swap is not None:
            data["swap"] = self.swap.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BestOfVerdict:
        swap = data.get("swap")
        return cls(
            winner=str(data["winner"]),
            scores={str(m): float(s) for m, s in data["scores"].items()},
            winner_label=data.get("winner_label"),
            swap=SwapCheck.from_dict(swap) if swap is not None else None,
        )


@dataclass(frozen=True)
class Stance:
    """One model's position in a contradiction."""

    model: str
    stance: str


@dataclass(frozen=True)
class Contradiction:
    """A point the candidates disagree on, with each model's stance."""

    topic: str
    stances: tuple[Stance, ...] = ()


@dataclass(frozen=True)
class Insight:
    """Something only ``model`` said."""

    insight: str
    model: str


@dataclass(frozen=True)
class MergeVerdict:
    """merge's (and debate's) analysis beside the fused answer, after OpenRouter Fusion's schema."""

    consensus: tuple[str, ...] = ()
    contradictions: tuple[Contradiction, ...] = ()
    unique_insights: tuple[Insight, ...] = ()
    blind_spots: tuple[str, ...] = ()
    confidence: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "consensus": list(self.consensus),
            "contradictions": [
                {"topic": c.topic, "stances": [{"model": s.model, "stance": s.stance} for s in c.stances]}
                for c in self.contradictions
            ],
            "unique_insights": [{"insight": i.insight, "model": i.model} for i in self.unique_insights],
            "blind_spots": list(self.blind_spots),
            "confidence": self.confidence,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MergeVerdict:
        return cls(
            consensus=tuple(str(c) for c in data["consensus"]),
            contradictions=tuple(
                Contradiction(str(c["topic"]), tuple(Stance(str(s["model"]), str(s["stance"])) for s in c["stances"]))
                for c in data["contradictions"]
            ),
            unique_insights=tuple(Insight(str(i["insight"]), str(i["model"])) for i in data["unique_insights"]),
            blind_spots=tuple(str(b) for b in data["blind_spots"]),
            confidence=float(data["confidence"]),
        )


@dataclass(frozen=True)
class LikelihoodScore:
    """One candidate's likelihood score and the parts it is made of (penalties are ≤ 0)."""

    likelihood: float
    reviewer: float | None
    repetition: float
    repetition_penalty: float
    truncation_penalty: float

    @property
    def total(self) -> float:
        return self.likelihood + (self.reviewer or 0.0) + self.repetition_penalty + self.truncation_penalty

    def to_dict(self) -> dict[str, Any]:
        return {
            "likelihood": _finite(self.likelihood),
            "reviewer": None if self.reviewer is None else _finite(self.reviewer),
            "repetition": round(self.repetition, 3),
            "repetition_penalty": round(self.repetition_penalty, 4),
            "truncation_penalty": round(self.truncation_penalty, 4),
            "total": _finite(self.total),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LikelihoodScore:
        reviewer = data.get("reviewer")
        return cls(
            likelihood=_number(data["likelihood"]),
            reviewer=None if reviewer is None else float(reviewer),
            repetition=float(data["repetition"]),
            repetition_penalty=float(data["repetition_penalty"]),
            truncation_penalty=float(data["truncation_penalty"]),
        )

    def describe(self) -> str:
        """``likelihood -0.41, reviewer -1.20, repetition 0.62 (-1.24), truncated (-1)``."""
        parts = [f"likelihood {self.likelihood:.3f}"]
        if self.reviewer is not None:
            parts.append(f"reviewer {self.reviewer:.3f}")
        if self.repetition_penalty:
            parts.append(f"repetition {self.repetition:.2f} ({self.repetition_penalty:.2f})")
        if self.truncation_penalty:
            parts.append(f"cut off at max_tokens ({self.truncation_penalty:g})")
        return ", ".join(parts)


@dataclass(frozen=True)
class LikelihoodVerdict:
    """The likelihood judge's pick: each candidate's total and its components, by model."""

    winner: str
    winner_label: str
    components: Mapping[str, LikelihoodScore]
    reviewer: bool = False

    method: ClassVar[str] = "likelihood"
    score_unit: ClassVar[str] = "mean token log-probability"

    @property
    def scores(self) -> dict[str, float | None]:
        """Each candidate's total (None for -inf, as in the JSON)."""
        return {model: _finite(score.total) for model, score in self.components.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "winner": self.winner,
            "winner_label": self.winner_label,
            "scores": self.scores,
            "components": {model: score.to_dict() for model, score in self.components.items()},
            "reviewer": self.reviewer,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LikelihoodVerdict:
        return cls(
            winner=str(data["winner"]),
            winner_label=str(data["winner_label"]),
            components={str(m): LikelihoodScore.from_dict(s) for m, s in data["components"].items()},
            reviewer=bool(data.get("reviewer")),
        )


@dataclass(frozen=True)
class ExecRun:
    """What one candidate did in the sandbox: visible tests passed out of run, its group, any error."""

    label: str
    passed: int = 0
    run: int = 0
    group: int | None = None
    group_size: int = 0
    error: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "passed": self.passed,
            "run": self.run,
            "group": self.group,
            "group_size": self.group_size,
            "error": self.error or None,
            "seconds": round(self.seconds, 3),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExecRun:
        return cls(
            label=str(data["label"]),
            passed=int(data["passed"]),
            run=int(data["run"]),
            group=data.get("group"),
            group_size=int(data["group_size"]),
            error=str(data.get("error") or ""),
            seconds=float(data["seconds"]),
        )


@dataclass(frozen=True)
class ExecSummary:
    """What the execution judge ran: the function, the visible tests, every input, and notes."""

    function: str | None
    visible_tests: tuple[VisibleTest, ...] = ()
    inputs: tuple[str, ...] = ()
    seconds: float = 0.0
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "visible_tests": [t.to_dict() for t in self.visible_tests],
            "inputs": list(self.inputs),
            "seconds": round(self.seconds, 3),
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExecSummary:
        return cls(
            function=data.get("function"),
            visible_tests=tuple(
                VisibleTest(kind=t["kind"], source=t["source"], args=t.get("args"), expected=t.get("expected"))
                for t in data["visible_tests"]
            ),
            inputs=tuple(data["inputs"]),
            seconds=float(data["seconds"]),
            notes=tuple(data["notes"]),
        )


@dataclass(frozen=True)
class ExecVerdict:
    """The execution judge's pick: per-candidate runs, the tie-break, and the judge's own latency."""

    winner: str
    winner_label: str
    scores: Mapping[str, float]
    execution: Mapping[str, ExecRun]
    summary: ExecSummary
    tie_break: str
    distinct_candidates: int
    execution_s: float
    judge_s: float
    # Likelihood components of the tied leaders, when the likelihood broke a tie.
    components: Mapping[str, LikelihoodScore] = field(default_factory=dict)

    method: ClassVar[str] = "exec"
    score_unit: ClassVar[str] = "visible tests passed"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "method": self.method,
            "winner": self.winner,
            "winner_label": self.winner_label,
            "scores": dict(self.scores),
            "execution": {model: run.to_dict() for model, run in self.execution.items()},
            "exec": self.summary.to_dict(),
            "tie_break": self.tie_break,
            "distinct_candidates": self.distinct_candidates,
            "latency_s": {"execution": round(self.execution_s, 3), "judge": round(self.judge_s, 3)},
        }
        if self.components:
            data["components"] = {model: score.to_dict() for model, score in self.components.items()}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExecVerdict:
        return cls(
            winner=str(data["winner"]),
            winner_label=str(data["winner_label"]),
            scores={str(m): float(s) for m, s in data["scores"].items()},
            execution={str(m): ExecRun.from_dict(r) for m, r in data["execution"].items()},
            summary=ExecSummary.from_dict(data["exec"]),
            tie_break=str(data["tie_break"]),
            distinct_candidates=int(data["distinct_candidates"]),
            execution_s=float(data["latency_s"]["execution"]),
            judge_s=float(data["latency_s"]["judge"]),
            components={str(m): LikelihoodScore.from_dict(s) for m, s in (data.get("components") or {}).items()},
        )


JudgeVerdict = BestOfVerdict | MergeVerdict | LikelihoodVerdict | ExecVerdict


def verdict_from_dict(data: Mapping[str, Any]) -> JudgeVerdict:
    """A verdict read back from its JSON (a stored result); raises KeyError or ValueError if malformed."""
    method = data.get("method")
    if method == "exec":
        return ExecVerdict.from_dict(data)
    if method == "likelihood":
        return LikelihoodVerdict.from_dict(data)
    if "winner" in data:
        return BestOfVerdict.from_dict(data)
    return MergeVerdict.from_dict(data)


def winner_of(verdict: JudgeVerdict | None) -> str | None:
    """The model whose answer won, for the verdicts that pick one (merge writes its own)."""
    if verdict is None or isinstance(verdict, MergeVerdict):
        return None
    return verdict.winner
