"""Fused code review in the core: the prompt, parsing findings, merging them, running a pool."""

from __future__ import annotations

import json

import pytest

from fusion_core.backends.scripted import ScriptedBackend
from fusion_core.engine import Fusion
from fusion_core.errors import BadResponse, UpstreamError
from fusion_core.events import CandidateFinished, Event, Notice
from fusion_core.review import (
    CostCapExceeded,
    Finding,
    ReviewSettings,
    ReviewTarget,
    agreed_severity,
    explain,
    merge_findings,
    parse_findings,
    review,
    review_messages,
)
from fusion_core.testing.server import TestServer

CODE = """def average(values):
    total = 0
    for i in range(len(values) + 1):
        total += values[i]
    return total / len(values)
"""
FIXED = "    for i in range(len(values)):"
SECRET = "sk-or-v1-" + "9f" * 24


def item(line: int, message: str, **extra: object) -> dict[str, object]:
    return {
        "start_line": line,
        "end_line": extra.pop("end", line),
        "severity": extra.pop("severity", "error"),
        "category": extra.pop("category", "bug"),
        "message": message,
        "replacement": extra.pop("replacement", None),
    }


def reply(*items: dict[str, object]) -> str:
    return json.dumps({"findings": list(items)})


def f(
    model: str,
    line: int,
    message: str,
    severity: str = "warning",
    category: str = "bug",
    replacement: str | None = None,
    end: int | None = None,
) -> Finding:
    return Finding(model, line, end or line, severity, category, message, replacement)  # type: ignore[arg-type]


# -- prompt and parsing -------------------------------------------------------------------


def test_prompt_numbers_lines_and_frames_the_code_as_data() -> None:
    system, user = review_messages(ReviewTarget(CODE, path="stats.py", language="python"), CODE, "n0nce")
    assert '"findings"' in system.content and "start_line" in system.content
    assert "<<<BEGIN-n0nce code FILE>>>" in user.content
    assert "3|     for i in range(len(values) + 1):" in user.content
    assert "File: stats.py (python)" in user.content


def test_selection_prompt_names_the_lines_and_adds_context() -> None:
    long = "\n".join(f"x{i} = {i}" for i in range(1, 101))
    _, user = review_messages(ReviewTarget(long, lines=(50, 52)), long, "n")
    assert "Review only lines 50-52" in user.content
    assert "\n30| x30 = 30" in user.content and "\n72| x72 = 72" in user.content
    assert "29| x29" not in user.content and "73| x73" not in user.content


@pytest.mark.parametrize(
    "text",
    [
        reply(item(3, "off by one")),
        "Sure! Here are my findings:\n```json\n" + reply(item(3, "off by one")) + "\n```\nHope it helps.",
        json.dumps([item(3, "off by one")]),
        "I found this: " + reply(item(3, "off by one")) + " and nothing else.",
    ],
)
def test_parsing_is_lenient_about_the_wrapping(text: str) -> None:
    (found,) = parse_findings(text, "m", line_count=5)
    assert (found.start_line, found.end_line, found.message) == (3, 3, "off by one")


def test_parsing_normalises_and_drops_bad_entries() -> None:
    text = json.dumps(
        {
            "findings": [
                {"line": "4", "severity": "CRITICAL", "category": "Security", "message": "  injection\n here "},
                {"start_line": 9, "end_line": 2, "severity": "nit", "category": "weird", "message": "backwards"},
                {"start_line": 1, "message": ""},
                {"message": "no line"},
                "not an object",
                {"start_line": True, "message": "a boolean is not a line"},
                {"start_line": 2, "message": "fenced fix", "replacement": "```python\n    total = 0.0\n```"},
            ]
        }
    )
    found = parse_findings(text, "m", line_count=5)
    assert [(x.start_line, x.end_line, x.severity, x.category, x.message) for x in found] == [
        (4, 4, "error", "security", "injection here"),
        (2, 5, "hint", "other", "backwards"),
        (2, 2, "warning", "other", "fenced fix"),
    ]
    assert found[2].replacement == "    total = 0.0"


def test_a_reply_without_findings_json_is_an_error() -> None:
    with pytest.raises(BadResponse):
        parse_findings("The code looks fine to me.", "m", line_count=5)
    assert parse_findings('{"findings": []}', "m", line_count=5) == []


def test_selection_drops_findings_outside_it() -> None:
    text = reply(item(1, "a"), item(3, "b"), item(5, "c", end=6))
    assert [x.message for x in parse_findings(text, "m", line_count=10, lines=(3, 5))] == ["b", "c"]


# -- merging ------------------------------------------------------------------------------


def test_same_location_and_problem_merge_and_record_the_models() -> None:
    merged = merge_findings(
        {
            "a": [f("a", 3, "Off-by-one: the loop reads past the end of the list", "error", replacement=FIXED)],
            "b": [f("b", 3, "Loop bound is one too many, IndexError at the end", "error", replacement=FIXED)],
            "c": [
                f("c", 4, "off by one: values[i] reads past the end", "warning"),  # one line off: same problem
                f("c", 5, "Division by zero for an empty list", "warning", category="error-handling"),
            ],
        },
        original_lines=CODE.split("\n"),
    )
    top, lone = merged
    assert top.models == ("a", "b", "c") and top.agreement == "3 of 3 models"
    assert (top.start_line, top.end_line) == (3, 3) and top.severity == "error"
    assert top.fix is not None and top.fix.text == FIXED and top.fix.models == ("a", "b")
    assert lone.models == ("c",) and lone.severity == "hint" and lone.fix is None
    assert top.id != lone.id and len({m.id for m in merged}) == 2


def test_different_problems_on_the_same_line_stay_apart() -> None:
    merged = merge_findings(
        {
            "a": [
                f("a", 3, "SQL injection through string formatting", category="security"),
                f("a", 3, "Connection is never closed", category="bug"),
            ],
            "b": [f("b", 3, "User input is formatted into the SQL query (injection)", category="security")],
        }
    )
    assert sorted(m.models for m in merged) == [("a",), ("a", "b")]


def test_one_model_never_counts_twice() -> None:
    merged = merge_findings({"a": [f("a", 3, "off by one"), f("a", 3, "off by one again")], "b": []})
    assert [m.models for m in merged] == [("a",), ("a",)]
    assert all(m.responders == 2 for m in merged)


@pytest.mark.parametrize(
    ("reported", "agree", "responders", "expected"),
    [
        (["error", "error", "error"], 3, 3, "error"),
        (["warning", "info"], 2, 3, "warning"),  # two of three is a majority: the strongest stands
        (["error", "error"], 2, 5, "warning"),  # a minority of two drops a level
        (["info", "info"], 2, 5, "info"),
        (["warning"], 1, 3, "hint"),  # one model alone: a hint ...
        (["error"], 1, 3, "warning"),  # ... unless it is severe
        (["error"], 1, 1, "error"),  # a pool of one keeps what it said
    ],
)
def test_agreement_drives_severity(reported: list[str], agree: int, responders: int, expected: str) -> None:
    assert agreed_severity(reported, agree, responders) == expected


def test_order_is_agreement_then_severity_then_line() -> None:
    merged = merge_findings(
        {
            "a": [
                f("a", 9, "late bug", "error"),
                f("a", 2, "style", "hint", category="style"),
                f("a", 5, "shared warning", "warning"),
            ],
            "b": [f("b", 5, "shared warning", "warning")],
        }
    )
    assert [(m.start_line, len(m.models)) for m in merged] == [(5, 2), (9, 1), (2, 1)]


def test_a_fix_identical_to_the_code_is_no_fix() -> None:
    merged = merge_findings({"a": [f("a", 2, "hmm", replacement="    total = 0")]}, original_lines=CODE.split("\n"))
    assert merged[0].fix is None


# -- running a review -----------------------------------------------------------------------


def scripted_fusion(replies: dict[str, list[str | Exception]]) -> tuple[Fusion, ScriptedBackend]:
    fusion = Fusion()
    backend = ScriptedBackend(replies)
    fusion.resolver.register("scripted", backend)
    return fusion, backend


async def test_review_runs_the_pool_and_merges() -> None:
    fusion, backend = scripted_fusion(
        {
            "a": [reply(item(3, "off by one in the loop bound", replacement=FIXED))],
            "b": [reply(item(3, "loop goes one past the end (off by one)", replacement=FIXED))],
            "c": [UpstreamError("boom", model="c")],
        }
    )
    events: list[Event] = []
    outcome = await review(
        fusion, ReviewTarget(CODE), ReviewSettings(pool=("scripted:a", "scripted:b", "scripted:c")), emit=events.append
    )

    (top,) = outcome.findings
    assert top.models == ("scripted:a", "scripted:b") and top.agreement == "2 of 2 models"
    assert outcome.responders == ("scripted:a", "scripted:b")
    assert outcome.failures["scripted:c"].kind == "upstream"
    assert sum(isinstance(e, CandidateFinished) for e in events) == 2
    assert all(r.temperature == 0.2 and r.max_tokens == 2048 for r in backend.requests)


async def test_remote_models_get_redacted_code_and_fixes_get_the_secret_back() -> None:
    code = f'API_KEY = "{SECRET}"\nresp = requests.get(url, headers={{"key": API_KEY}}, verify=False)\n'
    fix = 'resp = requests.get(url, headers={"key": API_KEY}, timeout=10)'
    keep_key = 'API_KEY = "REDACTED_SECRET_1"  # TODO: load from env'
    fusion, backend = scripted_fusion(
        {
            "a": [
                reply(
                    item(2, "TLS verification disabled", category="security", replacement=fix),
                    item(1, "hard-coded key", category="security", replacement=keep_key),
                )
            ]
        }
    )
    events: list[Event] = []

    outcome = await review(fusion, ReviewTarget(code), ReviewSettings(pool=("scripted:a",)), emit=events.append)

    sent = backend.requests[0].messages[-1].content
    assert SECRET not in sent and 'API_KEY = "REDACTED_SECRET_1"' in sent
    assert outcome.redacted == 1
    notices = [e.message for e in events if isinstance(e, Notice)]
    assert notices == ["redacted 1 secret (api_key) before sending code to 1 remote model"]
    by_line = {m.start_line: m for m in outcome.findings}
    assert by_line[1].fix is not None and by_line[1].fix.text == f'API_KEY = "{SECRET}"  # TODO: load from env'


async def test_unreadable_replies_count_as_failures() -> None:
    fusion, _ = scripted_fusion({"a": ["Looks good to me!"], "b": [reply(item(1, "x"))]})
    outcome = await review(fusion, ReviewTarget(CODE), ReviewSettings(pool=("scripted:a", "scripted:b")))
    assert outcome.failures["scripted:a"].kind == "bad_response"
    assert outcome.findings[0].agreement == "1 of 1 model"


async def test_cost_cap_refuses_before_any_request(server: TestServer, remote_env: dict[str, str]) -> None:
    fusion = Fusion(env=remote_env)
    server.script("script/r", replies=[reply(item(3, "off by one"))])
    settings = ReviewSettings(pool=("mock/alpha", "mock/beta"), cost_cap_usd=0.0001)
    try:
        with pytest.raises(CostCapExceeded, match="over the cap"):
            await review(fusion, ReviewTarget(CODE * 20), settings)
        assert server.log() == []
        cheap = ReviewSettings(pool=("script/r",), cost_cap_usd=0.5)
        outcome = await review(fusion, ReviewTarget(CODE), cheap)
        assert len(outcome.findings) == 1 and outcome.usage.cost
    finally:
        await fusion.aclose()


async def test_explain_asks_the_judge_with_redacted_context() -> None:
    judge = ScriptedBackend({"j": ["Yes, this reads one element past the end."]})
    finding = merge_findings({"a": [f("a", 2, "off by one")]})[0]
    code = f'KEY = "{SECRET}"\nfor i in range(len(xs) + 1):\n    print(xs[i])\n'

    reply = await explain(judge, "j", finding, code, is_local=False)

    assert reply.text == "Yes, this reads one element past the end." and reply.finish_reason is not None
    sent = judge.requests[0].messages[-1].content
    assert SECRET not in sent and "2| for i in range(len(xs) + 1):" in sent and "a (warning, bug): off by one" in sent


async def test_models_that_support_structured_output_get_the_findings_schema(
    server: TestServer, remote_env: dict[str, str]
) -> None:
    server.script("script/plain", replies=[reply(item(3, "off by one"))])
    fusion = Fusion(env=remote_env)
    try:
        # mock/judge lists structured output support; its reply is not findings JSON, which is fine here.
        await review(fusion, ReviewTarget(CODE), ReviewSettings(pool=("script/plain", "mock/judge")))
    finally:
        await fusion.aclose()
    formats = {e["model"]: e["response_format"] for e in server.log()}
    assert formats["script/plain"] is None
    assert formats["mock/judge"]["json_schema"]["name"] == "findings"
    assert formats["mock/judge"]["json_schema"]["schema"]["required"] == ["findings"]
