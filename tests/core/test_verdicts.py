"""Typed verdicts: each kind, made by its real judge, writes exactly the JSON of ``--json`` and reads back."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from fusion_core.display import verdict_lines
from fusion_core.events import Event
from fusion_core.judges.exec_judge import TieBreak, judge_by_execution
from fusion_core.judges.likelihood import judge_by_likelihood
from fusion_core.modes.best_of import BestOf, combine_swapped
from fusion_core.modes.merge import Merge
from fusion_core.result import Candidate, JudgeOutcome
from fusion_core.verdicts import (
    BestOfVerdict,
    ExecVerdict,
    JudgeVerdict,
    LikelihoodVerdict,
    MergeVerdict,
    verdict_from_dict,
    winner_of,
)

PROMPT = 'def add(a: int, b: int) -> int:\n    """Return the sum.\n    >>> add(2, 3)\n    5\n    """\n'
MODELS = {"A": "m/one", "B": "m/two"}
TEXTS = {"A": "    return a + b\n", "B": "    return a - b\n"}


def no_events(event: Event) -> None:
    pass


class Table:
    """Fixed log-probabilities by text: the judge's arithmetic is what is under test."""

    def __init__(self, table: dict[str, float]) -> None:
        self.table = table

    async def score(self, prompt: str, continuations: Sequence[str]) -> list[float]:
        return [self.table.get(c, -2.0) for c in continuations]


def candidates() -> list[Candidate]:
    return [Candidate(model=MODELS[k], label=k, status="ok", text=TEXTS[k]) for k in ("A", "B")]


def assert_round_trips(verdict: JudgeVerdict, expected: dict[str, Any]) -> None:
    data = verdict.to_dict()
    assert json.loads(json.dumps(data)) == expected
    assert list(data) == list(expected)  # the same key order as before, so --json reads the same
    assert JudgeOutcome(model="j", verdict=verdict).to_dict()["verdict"] == expected
    back = verdict_from_dict(json.loads(json.dumps(data)))
    assert type(back) is type(verdict) and back.to_dict() == data


def test_best_of_and_its_swap_check() -> None:
    first = BestOf().read({"winner": "B", "scores": {"A": 4, "B": 8}}, TEXTS, MODELS)
    assert_round_trips(first.details, {"winner": "m/two", "winner_label": "B", "scores": {"m/one": 4.0, "m/two": 8.0}})
    second = BestOf().read({"winner": "A", "scores": {"A": 7, "B": 6}}, TEXTS, MODELS)
    both = combine_swapped(first, second, {MODELS[k]: TEXTS[k] for k in TEXTS})
    expected = {
        "winner": "m/two",
        "scores": {"m/one": 5.5, "m/two": 7.0},
        "swap": {
            "agree": False,
            "confidence": "low",
            "winners": ["m/two", "m/one"],
            "scores": [{"m/one": 4.0, "m/two": 8.0}, {"m/one": 7.0, "m/two": 6.0}],
        },
    }
    assert_round_trips(both.details, expected)
    assert isinstance(both.details, BestOfVerdict) and both.details.swap is not None
    assert "position-bias check: the two judgings disagreed, confidence low" in verdict_lines(both.details)


def test_merge() -> None:
    reply = {
        "answer": "fused",
        "consensus": ["adds"],
        "contradictions": [
            {"topic": "sign", "stances": [{"model": "A", "stance": "+"}, {"model": "B", "stance": "-"}]}
        ],
        "unique_insights": [{"insight": "subtracts", "model": "B"}],
        "blind_spots": ["overflow"],
        "confidence": 0.75,
    }
    verdict = Merge().read(reply, TEXTS, MODELS)
    expected = {
        "consensus": ["adds"],
        "contradictions": [
            {"topic": "sign", "stances": [{"model": "m/one", "stance": "+"}, {"model": "m/two", "stance": "-"}]}
        ],
        "unique_insights": [{"insight": "subtracts", "model": "m/two"}],
        "blind_spots": ["overflow"],
        "confidence": 0.75,
    }
    assert_round_trips(verdict.details, expected)
    assert isinstance(verdict.details, MergeVerdict) and winner_of(verdict.details) is None
    assert verdict_lines(verdict.details)[:2] == ["confidence 75%", "consensus: adds"]


async def test_likelihood() -> None:
    scorer = Table({TEXTS["A"]: -0.5, TEXTS["B"]: -0.25, "": 0.0})
    verdict, outcome = await judge_by_likelihood("lik", scorer, PROMPT, candidates(), emit=no_events)
    assert verdict is not None and isinstance(verdict.details, LikelihoodVerdict)
    parts = {"reviewer": None, "repetition": 0.0, "repetition_penalty": 0.0, "truncation_penalty": 0.0}
    expected = {
        "method": "likelihood",
        "winner": "m/two",
        "winner_label": "B",
        "scores": {"m/one": -0.5, "m/two": -0.25},
        "components": {
            "m/one": {"likelihood": -0.5, **parts, "total": -0.5},
            "m/two": {"likelihood": -0.25, **parts, "total": -0.25},
        },
        "reviewer": False,
    }
    assert_round_trips(verdict.details, expected)
    assert outcome.verdict is verdict.details
    assert verdict_lines(verdict.details) == [
        "winner m/two; scores (mean token log-probability): m/two -0.25, m/one -0.5",
        "    m/one: likelihood -0.500",
        "    m/two: likelihood -0.250",
    ]


async def test_exec_with_its_likelihood_tie_break() -> None:
    same = "    return b + a\n"
    cands = [*candidates(), Candidate(model="m/three", label="C", status="ok", text=same)]
    scorer = Table({TEXTS["A"]: -0.5, same: -0.25})
    tie = TieBreak(scorer=scorer, scorer_name="t")
    verdict, _ = await judge_by_execution("exec+lik", PROMPT, cands, emit=no_events, tie_break=tie)
    assert verdict is not None and isinstance(verdict.details, ExecVerdict)
    details = verdict.details
    data = json.loads(json.dumps(details.to_dict()))
    # Times are measured: everything else is fixed by the candidates.
    assert data["latency_s"]["judge"] >= data["latency_s"]["execution"] >= 0
    assert all(row.pop("seconds") >= 0 for row in data["execution"].values())
    assert data["exec"].pop("seconds") >= 0
    assert data.pop("latency_s") and set(data) == {
        "method",
        "winner",
        "winner_label",
        "scores",
        "execution",
        "exec",
        "tie_break",
        "distinct_candidates",
        "components",
    }
    assert data["method"] == "exec" and data["winner"] == "m/three" and data["winner_label"] == "C"
    assert data["scores"] == {"m/one": 10.0, "m/two": 0.0, "m/three": 10.0}
    assert data["execution"]["m/one"] == {
        "label": "A",
        "passed": 1,
        "run": 1,
        "group": 1,
        "group_size": 2,
        "error": None,
    }
    assert data["execution"]["m/two"] == {
        "label": "B",
        "passed": 0,
        "run": 1,
        "group": 2,
        "group_size": 1,
        "error": None,
    }
    assert data["exec"]["function"] == "add" and data["exec"]["inputs"][0] == "2, 3"
    assert data["exec"]["visible_tests"] == [
        {"kind": "doctest", "source": "add(2, 3) == 5", "args": "2, 3", "expected": "5"}
    ]
    assert data["tie_break"] == "likelihood under t" and data["distinct_candidates"] == 3
    assert set(data["components"]) == {"m/one", "m/three"}  # only the tied leaders were scored
    assert_round_trips(details, details.to_dict())
    assert verdict_lines(details) == [
        "winner m/three; scores (visible tests passed): m/one 1, m/three 1, m/two 0",
        "tie-break: likelihood under t (m/three -0.25, m/one -0.5)",
        "    m/one: likelihood -0.500",
        "    m/three: likelihood -0.250",
    ]


def test_a_malformed_stored_verdict_is_refused() -> None:
    with pytest.raises(KeyError):
        verdict_from_dict({"method": "exec", "winner": "m/one"})
