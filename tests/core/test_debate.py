"""Debate: members never see the judge's nonce or labels; the mode decides who revises and when to stop."""

from __future__ import annotations

import json
import random
import re

from fusion_core import Fusion, RunSettings
from fusion_core.backends.scripted import ScriptedBackend
from fusion_core.errors import NoCredits
from fusion_core.events import Event, RoundFinished, RunFinished, RunStarted
from fusion_core.testing.replies import merge_verdict
from fusion_core.testing.server import TestServer

BEGIN = re.compile(r"<<<BEGIN-([0-9a-f]+) (\w+) ([^>]+)>>>")


async def test_members_get_their_own_nonce_and_neutral_names(server: TestServer, remote_env: dict[str, str]) -> None:
    for name in ("a", "b", "c"):
        server.script(
            f"script/deb-{name}",
            replies=[f"first answer from {name}", f"a thoroughly revised answer, now written by {name} alone"],
        )
    fusion = Fusion(env=remote_env)
    pool = ("script/deb-a", "script/deb-b", "script/deb-c")
    result = await fusion.arun("why?", RunSettings(pool=pool, judge="mock/judge", mode="debate", rounds=2))
    await fusion.aclose()
    assert result.status == "ok" and len(result.rounds) == 2

    log = server.log()
    judge_prompt = next(e for e in log if e["model"] == "mock/judge")["messages"][-1]["content"]
    judge_nonces = {m.group(1) for m in BEGIN.finditer(judge_prompt)}
    judge_labels = {m.group(3) for m in BEGIN.finditer(judge_prompt) if m.group(2) == "candidate"}
    assert len(judge_nonces) == 1 and judge_labels == {"A", "B", "C"}
    judge_nonce = judge_nonces.pop()

    revisions = [
        e["messages"][-1]["content"] for e in log if e["model"].startswith("script/deb") and "round 2" in str(e)
    ]
    assert len(revisions) == 3
    member_nonces = set()
    for prompt in revisions:
        assert judge_nonce not in prompt.lower()
        blocks = list(BEGIN.finditer(prompt))
        assert {m.group(3) for m in blocks} == {"Q", "yours", "expert 1", "expert 2"}
        assert not re.search(r"\b(candidate|answer) [A-C]\b", prompt)
        member_nonces |= {m.group(1) for m in blocks}
    # Each revision prompt has a nonce of its own.
    assert len(member_nonces) == 3 and judge_nonce not in member_nonces


def merged() -> str:
    """A valid merge verdict for a pool of two (labels A and B)."""
    return json.dumps(merge_verdict({"A": "one", "B": "two"}))


async def run_scripted(models: dict[str, list[str | Exception]], settings: RunSettings) -> tuple[list[Event], int]:
    """The events of a real run over the scripted backend, and how many requests the members got."""
    members = ScriptedBackend(models)
    fusion = Fusion(rng=random.Random(5))
    fusion.resolver.register("s", members)
    fusion.resolver.register("j", ScriptedBackend({"judge": [merged()]}))
    events = [e async for e in fusion.stream("q", settings)]
    await fusion.aclose()
    return events, len(members.requests)


async def test_a_debate_stops_once_the_answers_settle() -> None:
    settings = RunSettings(pool=("s:a", "s:b"), judge="j:judge", mode="debate", rounds=4)
    same = {"a": ["the sky is blue because of Rayleigh scattering"], "b": ["air scatters blue light the most"]}
    events, requests = await run_scripted(dict(same), settings)
    (started,) = [e for e in events if isinstance(e, RunStarted)]
    assert started.rounds == 4
    # Round 2 repeats round 1: settled, so rounds 3 and 4 never run.
    assert [(e.round, e.converged) for e in events if isinstance(e, RoundFinished)] == [(2, True)]
    assert requests == 4
    result = events[-1]
    assert isinstance(result, RunFinished) and len(result.result.rounds) == 2


async def test_a_debate_needs_two_answers_to_revise() -> None:
    settings = RunSettings(pool=("s:a", "s:b"), judge="j:judge", mode="debate", rounds=3)
    events, requests = await run_scripted({"a": ["alone"], "b": [NoCredits("s:b: 402", status=402)]}, settings)
    assert requests == 2 and not [e for e in events if isinstance(e, RoundFinished)]
    result = events[-1]
    assert isinstance(result, RunFinished) and result.result.to_dict()["rounds"] == [
        [c.to_dict() for c in result.result.candidates]
    ]


async def test_best_of_and_merge_answer_once_whatever_the_rounds() -> None:
    for mode in ("best-of", "merge"):
        judge_reply = merged() if mode == "merge" else '{"winner": "A", "scores": {"A": 1, "B": 2}}'
        models: dict[str, list[str | Exception]] = {"a": ["one"], "b": ["two"]}
        fusion = Fusion(rng=random.Random(5))
        members = ScriptedBackend(models)
        fusion.resolver.register("s", members)
        fusion.resolver.register("j", ScriptedBackend({"judge": [judge_reply]}))
        settings = RunSettings(pool=("s:a", "s:b"), judge="j:judge", mode=mode, rounds=3)
        events = [e async for e in fusion.stream("q", settings)]
        await fusion.aclose()
        (started,) = [e for e in events if isinstance(e, RunStarted)]
        result = events[-1]
        assert started.rounds == 1 and len(members.requests) == 2, mode
        assert (
            isinstance(result, RunFinished) and result.result.rounds == () and "rounds" not in result.result.to_dict()
        )
