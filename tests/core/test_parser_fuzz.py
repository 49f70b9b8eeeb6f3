"""Fuzzing the lenient parsers of untrusted model replies: the judge's verdict and review findings.

A judge or reviewer can answer anything. These parsers must only ever return a value or
raise the error type their callers handle (``VerdictFormatError``, ``BadResponse``), never
hang on adversarial nesting, and never return more than the input can justify.
"""

from __future__ import annotations

import json

import pytest
from fuzzing import fuzz
from hypothesis import example, given
from hypothesis import strategies as st

from fusion_core.errors import BadResponse
from fusion_core.findings import MAX_FINDINGS_PER_MODEL, parse_findings
from fusion_core.framing import extract_json_object
from fusion_core.judge import _read as read_verdict
from fusion_core.modes import MODES
from fusion_core.modes.base import VerdictFormatError

LABELS = {"A": "model-a", "B": "model-b"}
TEXTS = {"A": "answer a", "B": "answer b"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
# Replies shaped like what a confused model writes: prose, fences, JSON fragments, deep nesting.
fragments = st.sampled_from(
    [
        '{"',
        '"}',
        "{",
        "}",
        "[",
        "]",
        ":",
        ",",
        '"winner"',
        '"A"',
        '"findings"',
        '"start_line"',
        "1e400",
        "NaN",
        "-Infinity",
        "```json\n",
        "\n```",
        "1",
        '"x"',
        "null",
        " ",
        "\n",
    ]
)
adversarial = st.lists(fragments, max_size=60).map("".join)
replies = st.one_of(st.text(max_size=400), adversarial, json_values.map(json.dumps))

DEEP = '{"a":' * 50_000 + "1" + "}" * 50_000
UNCLOSED = '{"a":' * 3_000
BRACKETS = "[" * 50_000


@fuzz
@given(replies)
@example(DEEP)
@example(UNCLOSED)
@example(BRACKETS)
@example('{"findings": [{"start_line": 1e400, "message": "x"}]}')
@example('{"findings": [{"start_line": NaN, "message": "x"}]}')
def test_extract_json_object_returns_a_dict_or_none(reply: str) -> None:
    value = extract_json_object(reply)
    assert value is None or isinstance(value, dict)


@fuzz
@given(replies, st.sampled_from(["best-of", "merge"]))
@example(DEEP, "best-of")
@example('{"winner": "A", "scores": {"A": 1e400, "B": NaN}, "rationale": 5}', "best-of")
@example('{"answer": 1, "confidence": "high"}', "merge")
def test_the_verdict_parser_only_raises_verdict_format_errors(reply: str, mode: str) -> None:
    try:
        verdict = read_verdict(MODES[mode], reply, dict(TEXTS), dict(LABELS))
    except VerdictFormatError:
        return
    assert isinstance(verdict.answer, str)
    if mode == "best-of":
        assert verdict.answer in TEXTS.values()  # best-of can only pick, never invent


findings_items = st.dictionaries(
    st.sampled_from(["start_line", "end_line", "line", "message", "severity", "category", "replacement"]),
    json_values,
    max_size=7,
)


@fuzz
@given(
    st.one_of(replies, st.lists(findings_items, max_size=8).map(lambda items: json.dumps({"findings": items}))),
    st.integers(min_value=0, max_value=500),
)
@example('{"findings": [{"start_line": 1e400, "message": "overflow"}]}', 10)
@example('[{"line": "-5", "end_line": 99999999999999999999, "message": "m"}]', 3)
@example(BRACKETS, 10)
def test_findings_parser_bounds_what_it_returns(reply: str, line_count: int) -> None:
    try:
        findings = parse_findings(reply, "model-a", line_count)
    except BadResponse:
        return
    assert len(findings) <= MAX_FINDINGS_PER_MODEL
    last = max(line_count, 1)
    for finding in findings:
        assert 1 <= finding.start_line <= finding.end_line <= last
        assert finding.message.strip()


@pytest.mark.parametrize("reply", [DEEP, UNCLOSED, BRACKETS])
def test_adversarial_nesting_is_rejected_quickly(reply: str) -> None:
    # Marked by pytest-timeout rather than timed: a quadratic scan here would take minutes.
    with pytest.raises(BadResponse):
        parse_findings(reply, "model-a", 10)
