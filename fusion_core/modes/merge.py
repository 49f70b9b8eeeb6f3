"""merge: the judge writes one fused answer and an analysis of agreement.

The analysis follows OpenRouter Fusion's schema: consensus, contradictions
(topic and each model's stance), unique insights (insight and model), blind
spots, plus a confidence from 0 to 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fusion_core.modes.base import SingleRound, Verdict, VerdictFormatError, label_of, require
from fusion_core.verdicts import Contradiction, Insight, MergeVerdict, Stance


class Merge(SingleRound):
    name = "merge"
    schema_name = "merge_verdict"
    instructions = (
        "You are an expert editor fusing several candidate answers to one question into the "
        "single best answer. Keep what is correct and complementary, drop what is wrong, and "
        "resolve contradictions by reasoning about them. Write the fused answer as a complete "
        "reply to the question, not as a comparison. Then report what the candidates agree on, "
        "where they contradict each other (with each candidate's stance), insights only one "
        "candidate had, and what all of them missed. Refer to candidates only by label."
    )

    def schema(self, labels: list[str]) -> dict[str, Any]:
        label = {"type": "string", "enum": labels}
        return {
            "type": "object",
            "properties": {
                "answer": {"type": "string"},
                "consensus": {"type": "array", "items": {"type": "string"}},
                "contradictions": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "topic": {"type": "string"},
                            "stances": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {"model": label, "stance": {"type": "string"}},
                                    "required": ["model", "stance"],
                                    "additionalProperties": False,
                                },
                            },
                        },
                        "required": ["topic", "stances"],
                        "additionalProperties": False,
                    },
                },
                "unique_insights": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"insight": {"type": "string"}, "model": label},
                        "required": ["insight", "model"],
                        "additionalProperties": False,
                    },
                },
                "blind_spots": {"type": "array", "items": {"type": "string"}},
                "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                "rationale": {"type": "string"},
            },
            "required": [
                "answer",
                "consensus",
                "contradictions",
                "unique_insights",
                "blind_spots",
                "confidence",
                "rationale",
            ],
            "additionalProperties": False,
        }

    def read(self, data: dict[str, Any], texts: Mapping[str, str], models: Mapping[str, str]) -> Verdict:
        answer = require(data, "answer", str).strip()
        if not answer:
            raise VerdictFormatError("the field 'answer' is empty")
        confidence = float(require(data, "confidence", (int, float)))
        if not 0.0 <= confidence <= 1.0:
            raise VerdictFormatError("confidence must be between 0 and 1")
        contradictions = []
        for item in _objects(data, "contradictions"):
            stances = []
            for stance in item.get("stances") or []:
                if not isinstance(stance, dict):
                    raise VerdictFormatError("each stance must be an object")
                who = label_of(stance.get("model"), models, "a stance's model")
                stances.append(Stance(model=models[who], stance=str(stance.get("stance", ""))))
            contradictions.append(Contradiction(topic=str(item.get("topic", "")), stances=tuple(stances)))
        insights = tuple(
            Insight(
                insight=str(item.get("insight", "")),
                model=models[label_of(item.get("model"), models, "an insight's model")],
            )
            for item in _objects(data, "unique_insights")
        )
        return Verdict(
            answer=answer,
            rationale=str(data.get("rationale") or ""),
            details=MergeVerdict(
                consensus=tuple(_strings(data, "consensus")),
                contradictions=tuple(contradictions),
                unique_insights=insights,
                blind_spots=tuple(_strings(data, "blind_spots")),
                confidence=confidence,
            ),
        )


def _strings(data: Mapping[str, Any], key: str) -> list[str]:
    values = require(data, key, list)
    return [str(v) for v in values]


def _objects(data: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    values = require(data, key, list)
    if not all(isinstance(v, dict) for v in values):
        raise VerdictFormatError(f"every item of {key!r} must be an object")
    return [dict(v) for v in values]
