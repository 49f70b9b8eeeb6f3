"""best-of: the judge picks the strongest candidate; its text is the answer, verbatim."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fusion_core.modes.base import SingleRound, Verdict, VerdictFormatError, label_of, require
from fusion_core.verdicts import BestOfVerdict, SwapCheck

# Scores closer than this (on the 0-10 scale) count as a tie when two judgings disagree.
TIE_MARGIN = 0.5


class BestOf(SingleRound):
    name = "best-of"
    schema_name = "best_of_verdict"
    instructions = (
        "You are an impartial expert judge. Compare the candidate answers to the question "
        "on correctness first, then completeness, clarity and usefulness. Do not favour an "
        "answer for its position, its length or its confidence. Score every candidate from "
        "0 to 10, name the single best one as the winner, and explain why in the rationale."
    )

    def schema(self, labels: list[str]) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "winner": {"type": "string", "enum": labels},
                "scores": {
                    "type": "object",
                    "properties": {label: {"type": "number"} for label in labels},
                    "required": labels,
                    "additionalProperties": False,
                },
                "rationale": {"type": "string"},
            },
            "required": ["winner", "scores", "rationale"],
            "additionalProperties": False,
        }

    def read(self, data: dict[str, Any], texts: Mapping[str, str], models: Mapping[str, str]) -> Verdict:
        winner = label_of(require(data, "winner", str), models, "winner")
        raw_scores = require(data, "scores", dict)
        scores: dict[str, float] = {}
        for label in models:
            value = raw_scores.get(label)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise VerdictFormatError(f"scores has no number for candidate {label}")
            scores[label] = float(value)
        rationale = str(data.get("rationale") or "")
        return Verdict(
            answer=texts[winner],
            rationale=rationale,
            details=BestOfVerdict(
                winner=models[winner],
                winner_label=winner,
                scores={models[label]: score for label, score in scores.items()},
            ),
        )


def combine_swapped(first: Verdict, second: Verdict, texts_by_model: Mapping[str, str]) -> Verdict:
    """Merge two judgings made with the candidate order reversed (position-bias check)."""
    a, b = first.details, second.details
    if not isinstance(a, BestOfVerdict) or not isinstance(b, BestOfVerdict):
        raise TypeError("combine_swapped takes two best-of verdicts")
    mean = {model: (a.scores[model] + b.scores.get(model, a.scores[model])) / 2 for model in a.scores}
    agree = a.winner == b.winner
    ranked = sorted(mean.items(), key=lambda kv: kv[1], reverse=True)
    winner = a.winner if agree else ranked[0][0]
    tie = not agree and len(ranked) > 1 and ranked[0][1] - ranked[1][1] < TIE_MARGIN
    if agree:
        confidence = "high"
    else:
        confidence = "tie" if tie else "low"
    swap = SwapCheck(agree=agree, confidence=confidence, winners=(a.winner, b.winner), scores=(a.scores, b.scores))
    rationale = (
        first.rationale
        if agree
        else (
            f"The two judgings disagreed ({a.winner} vs {b.winner}): "
            f"position bias or a close call. Picked {winner} by mean score. "
            f"First: {first.rationale} Second: {second.rationale}"
        )
    )
    details = BestOfVerdict(winner=winner, scores=mean, swap=swap)
    return Verdict(answer=texts_by_model[winner], rationale=rationale, details=details)
