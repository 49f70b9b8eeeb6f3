"""Grading answers: each text scorer, and code by execution with partial credit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fusion_core.eval.grading import grade_code, grade_text, program_for, split_checks

ROOT = Path(__file__).resolve().parents[2]


def task(name: str) -> dict[str, str]:
    rows = [json.loads(line) for line in (ROOT / "examples/evals/code.jsonl").read_text().splitlines()]
    return next(r for r in rows if r["entry_point"] == name)


@pytest.mark.parametrize(
    ("kind", "answer", "target", "expected"),
    [
        ("exact", "  Paris. ", "paris", 1.0),
        ("exact", "Paris, France", "paris", 0.0),
        ("includes", "It is Paris, of course", "paris", 1.0),
        ("includes", "Lyon", "paris", 0.0),
        ("regex", "x = 42\n", r"^x = \d+$", 1.0),
        ("regex", "x = y", r"^x = \d+$", 0.0),
        ("numeric", "3 + 4 = 7 apples", "7", 1.0),
        ("numeric", "7 apples, then 1,800 more: 1,807", "1807", 1.0),
        ("numeric", "it is 7 or 8", "7", 0.0),
        ("numeric", "no idea", "7", 0.0),
        ("choice", "I think ANSWER: B", "B", 1.0),
        ("choice", "C) is right", "B", 0.0),
    ],
)
def test_text_graders(kind: str, answer: str, target: str, expected: float) -> None:
    assert grade_text(kind, answer, [target]).value == expected


def test_every_dev_task_passes_with_its_reference_solution() -> None:
    rows = [json.loads(line) for line in (ROOT / "examples/evals/code.jsonl").read_text().splitlines()]
    assert len(rows) >= 40
    for row in rows[:3]:  # all 42 are checked when the set is generated; three keep this test fast
        grade = grade_code(row["prompt"], row["canonical_solution"], row["test"], row["entry_point"])
        assert grade.value == 1.0 and grade.partial == 1.0


def test_partial_credit_counts_single_asserts() -> None:
    t = task("count_vowels")
    whole, parts = split_checks(t["test"], t["entry_point"])
    assert len(parts) == 5 and "check(count_vowels)" in whole
    grade = grade_code(t["prompt"], "    return 3 if word else 0\n", t["test"], t["entry_point"])
    # 'Banana', 'Programming' (3 vowels each) and '' pass; 'xyz' and 'AEIOU' fail.
    assert grade.value == 0.0 and grade.partial == pytest.approx(3 / 5)


def test_exiting_before_the_tests_is_no_pass() -> None:
    t = task("add")
    for completion in ("    import sys; sys.exit(0)\n", "    import os; os._exit(0)\n"):
        grade = grade_code(t["prompt"], completion, t["test"], t["entry_point"])
        # The first call of the function exits the process before any assert has run.
        assert grade.value == 0.0 and grade.partial == 0.0


def test_chat_style_answers_with_a_fenced_full_definition() -> None:
    t = task("add")
    answer = "Here you go:\n```python\ndef add(a, b):\n    return a + b\n```\n"
    assert "def add(a, b)" in program_for(t["prompt"], answer, "add")
    assert grade_code(t["prompt"], answer, t["test"], t["entry_point"]).value == 1.0
