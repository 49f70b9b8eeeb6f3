"""Debate through the loopback server: members never see the judge's nonce or labels."""

from __future__ import annotations

import re

from fusion_core import Fusion, RunSettings
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
