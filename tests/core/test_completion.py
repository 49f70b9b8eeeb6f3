"""Fused completion in the core: cleaning replies, ranking by agreement, deadline and quorum."""

from __future__ import annotations

import asyncio
import time

import pytest

from fusion_core.backends.scripted import ScriptedBackend
from fusion_core.completion import (
    CompletionContext,
    CompletionSettings,
    clean_completion,
    completion_messages,
    fused_completion,
    rank_completions,
)
from fusion_core.engine import Fusion
from fusion_core.errors import UpstreamError
from fusion_core.testing.server import TestServer

CONTEXT = CompletionContext(prefix="def add(a, b):\n    return ", suffix="\n\nprint(add(1, 2))\n")
SECRET = "ghp_" + "Xy7" * 12


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("a + b", "a + b"),
        ("return a + b", "a + b"),  # the model repeated the start of the line
        ("    return a + b\n", "a + b"),
        ("```python\na + b\n```", "a + b"),
        ("a + b\n\nprint(add(1, 2))", "a + b"),  # it ran on into the code after the cursor
        ("\n".join(f"line{i}" for i in range(20)), "\n".join(f"line{i}" for i in range(8))),
        ("   \n", ""),
    ],
)
def test_clean_completion(reply: str, expected: str) -> None:
    assert clean_completion(reply, CONTEXT) == expected


def test_a_partial_reply_keeps_its_complete_lines() -> None:
    assert clean_completion("a + b\n    # and then som", CONTEXT, partial=True) == "a + b"


def test_a_partial_first_line_keeps_its_whole_words() -> None:
    # At the deadline the model is often still writing its first line: show what it has.
    assert clean_completion("0 if n == 0 else 1", CONTEXT, partial=True) == "0 if n == 0 else"
    assert clean_completion("0 if n == 0 ", CONTEXT, partial=True) == "0 if n == 0"
    assert clean_completion("fibonac", CONTEXT, partial=True) == ""
    assert clean_completion("\n        retu", CONTEXT, partial=True) == ""
    assert clean_completion("\n    yield a, b", CONTEXT, partial=True) == "\n    yield a,"


def test_agreement_ranks_and_shared_beginnings_support() -> None:
    ranked = rank_completions(
        {"m1": "a + b", "m2": "a + b ", "m3": "a - b", "m4": "sum((a, b))"}, ["m1", "m2", "m3", "m4"]
    )
    assert [(r.text, r.models) for r in ranked] == [
        ("a + b", ("m1", "m2")),
        ("a - b", ("m3",)),
        ("sum((a, b))", ("m4",)),
    ]
    assert ranked[0].support > ranked[1].support > ranked[2].support


def test_ties_follow_pool_order() -> None:
    assert [r.models for r in rank_completions({"b": "x", "a": "y"}, ["b", "a"])] == [("b",), ("a",)]


def test_prompts_for_base_and_chat_models() -> None:
    (base,) = completion_messages(CONTEXT, base_model=True, nonce="f00d")
    assert base.content == CONTEXT.prefix
    system, user = completion_messages(CONTEXT, base_model=False, nonce="f00d")
    assert "only the text to insert" in system.content
    assert "    return <|cursor|>\n\nprint(add(1, 2))" in user.content and "<<<BEGIN-f00d code FILE>>>" in user.content


def scripted(replies: dict[str, list[str | Exception]], delay: float = 0.0) -> tuple[Fusion, ScriptedBackend]:
    fusion = Fusion()
    backend = ScriptedBackend(replies, chunk_delay_s=delay)
    fusion.resolver.register("s", backend)
    return fusion, backend


async def test_fused_completion_ranks_the_pool() -> None:
    fusion, backend = scripted({"a": ["a + b"], "b": ["return a + b"], "c": ["a - b"], "d": [UpstreamError("x")]})
    outcome = await fused_completion(fusion, CONTEXT, CompletionSettings(pool=("s:a", "s:b", "s:c", "s:d")))
    assert [(i.text, i.models) for i in outcome.items] == [("a + b", ("s:a", "s:b")), ("a - b", ("s:c",))]
    assert outcome.responders == 3 and list(outcome.failures) == ["s:d"]
    assert all(r.max_tokens == 64 and r.temperature == 0.2 for r in backend.requests)


async def test_deadline_keeps_complete_lines_of_stragglers() -> None:
    # A word every 0.25 s: by the deadline "x=1\ny=2 z=3" has arrived, of which one line is complete.
    fusion, _ = scripted({"fast": ["a + b"]})
    slow = ScriptedBackend({"slow": ["x=1\ny=2 z=3 w=4 v=5"]}, chunk_delay_s=0.25)
    fusion.resolver.register("slow", slow)
    started = time.perf_counter()
    outcome = await fused_completion(fusion, CONTEXT, CompletionSettings(pool=("s:fast", "slow:slow"), deadline_s=0.6))
    assert time.perf_counter() - started < 2.0
    assert [i.text for i in outcome.items] == ["a + b", "x=1"]
    assert {c.model: c.status for c in outcome.candidates}["slow:slow"] == "failed"


async def test_quorum_cancels_the_rest() -> None:
    fusion, _ = scripted({"a": ["a + b"], "b": ["a + b"]})
    fusion.resolver.register("slow", ScriptedBackend({"c": ["never " * 50]}, chunk_delay_s=0.2))
    started = time.perf_counter()
    outcome = await fused_completion(
        fusion, CONTEXT, CompletionSettings(pool=("s:a", "s:b", "slow:c"), quorum=2, deadline_s=10)
    )
    assert time.perf_counter() - started < 3.0  # not the 10 s the straggler would take
    assert outcome.items[0].models == ("s:a", "s:b")
    assert {c.model: c.status for c in outcome.candidates}["slow:c"] == "cancelled"


async def test_remote_models_never_see_secrets() -> None:
    fusion, backend = scripted({"a": ["token"]})
    context = CompletionContext(prefix=f'GITHUB = "{SECRET}"\nclient = Github(', suffix=")\n")
    await fused_completion(fusion, context, CompletionSettings(pool=("s:a",)))
    sent = backend.requests[0].messages[-1].content
    assert SECRET not in sent and 'GITHUB = "REDACTED_SECRET_1"' in sent


async def test_against_the_http_test_server(server: TestServer, remote_env: dict[str, str]) -> None:
    server.script("script/x", replies=["a + b"])
    server.script("script/y", replies=["a + b"])
    fusion = Fusion(env=remote_env)
    try:
        # The default 1.5 s deadline: the scripted models answer at once, mock/hang never does.
        outcome = await fused_completion(
            fusion, CONTEXT, CompletionSettings(pool=("script/x", "script/y", "mock/hang"))
        )
    finally:
        await fusion.aclose()
    assert [(i.text, i.agreement) for i in outcome.items] == [("a + b", 2)]
    for _ in range(200):  # the server notices the hang-up a moment later
        hung = [e for e in server.log() if e["model"] == "mock/hang" and e["disconnected"]]
        if hung:
            break
        await asyncio.sleep(0.01)
    assert hung


@pytest.mark.local
async def test_the_likelihood_judge_ranks_local_samples() -> None:
    fusion = Fusion()
    context = CompletionContext(prefix="def fibonacci(n):\n    if n < 2:\n        return n\n    return ")
    settings = CompletionSettings(
        pool=("local/gemma-3-270m*3",), deadline_s=120, max_tokens=16, judge="likelihood:local/gemma-3-270m"
    )
    outcome = await fused_completion(fusion, context, settings)
    assert outcome.items
    scores = [i.likelihood for i in outcome.items]
    assert all(s is not None for s in scores) and scores == sorted(scores, reverse=True)  # type: ignore[type-var]
