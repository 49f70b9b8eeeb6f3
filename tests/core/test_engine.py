"""The engine's logic with the scripted backend: quorum, failures, judge repair, modes."""

from __future__ import annotations

import json
import random
import re

import pytest

from fusion_core import Fusion, RunSettings
from fusion_core.backends.scripted import ScriptedBackend
from fusion_core.errors import ConfigError, NoCredits
from fusion_core.events import CandidateCancelled, CandidateDelta, Notice, RunFinished, RunStarted
from fusion_core.verdicts import BestOfVerdict

BLOCK = re.compile(r"<<<BEGIN-([0-9a-f]+) candidate ([A-Z]+)>>>\n(.*?)\n<<<END-\1 candidate \2>>>", re.DOTALL)


class LabelReadingJudge(ScriptedBackend):
    """A judge that reads the framed candidates and picks the one containing [BEST]."""

    def __init__(self, replies_before_valid: int = 0) -> None:
        super().__init__({}, name="judge")
        self._bad_left = replies_before_valid

    async def stream(self, request):  # type: ignore[no-untyped-def]
        self.requests.append(request)
        if self._bad_left:
            self._bad_left -= 1
            text = "I like candidate A."
        else:
            blocks = {label: body for _, label, body in BLOCK.findall(request.messages[1].content)}
            winner = next((label for label, body in blocks.items() if "[BEST]" in body), min(blocks))
            text = json.dumps(
                {
                    "winner": winner,
                    "scores": {k: 9 if k == winner else 4 for k in blocks},
                    "rationale": f"{winner} is best",
                }
            )
        from fusion_core.backends.base import Chunk

        yield Chunk(text=text)


def fusion_with(
    models: dict[str, list], judge: ScriptedBackend | None = None, *, slow: dict[str, list] | None = None, seed: int = 7
) -> Fusion:  # type: ignore[type-arg]
    fusion = Fusion(rng=random.Random(seed))
    fusion.resolver.register("s", ScriptedBackend(models))
    fusion.resolver.register("slow", ScriptedBackend(slow or {}, chunk_delay_s=0.5))
    fusion.resolver.register("j", judge or LabelReadingJudge())
    return fusion


async def test_best_of_returns_the_chosen_text_verbatim_and_maps_labels_back() -> None:
    fusion = fusion_with({"a": ["plain answer"], "b": ["the [BEST] answer"], "c": ["meh"]})
    result = await fusion.arun("q", RunSettings(pool=("s:a", "s:b", "s:c"), judge="j:judge", mode="best-of"))
    assert result.status == "ok" and result.answer == "the [BEST] answer"
    assert result.judge is not None and isinstance(result.judge.verdict, BestOfVerdict)
    assert result.judge.verdict.winner == "s:b"
    assert set(result.judge.verdict.scores) == {"s:a", "s:b", "s:c"}


async def test_labels_are_shuffled_per_run_and_names_hidden() -> None:
    assignments = set()
    for seed in range(8):
        judge = LabelReadingJudge()
        fusion = fusion_with({"a": ["x"], "b": ["y"], "c": ["z"]}, judge, seed=seed)
        result = await fusion.arun("q", RunSettings(pool=("s:a", "s:b", "s:c"), judge="j:judge", mode="best-of"))
        assignments.add(tuple(c.label for c in result.candidates))
        judge_prompt = "".join(m.content for m in judge.requests[0].messages)
        assert "s:a" not in judge_prompt and "s:b" not in judge_prompt
    assert len(assignments) > 1


async def test_survivors_are_fused_and_failures_recorded() -> None:
    fusion = fusion_with({"a": ["[BEST] fine"], "b": [NoCredits("b: 402 insufficient credits", status=402)]})
    result = await fusion.arun("q", RunSettings(pool=("s:a", "s:b"), judge="j:judge", mode="best-of"))
    assert result.status == "ok"
    failed = next(c for c in result.candidates if c.model == "s:b")
    assert failed.status == "failed" and failed.error is not None
    assert failed.error.kind == "no_credits" and failed.error.status == 402


async def test_all_failed_keeps_every_error() -> None:
    fusion = fusion_with({"a": [NoCredits("a: 402", status=402)], "b": [RuntimeError("boom")]})
    result = await fusion.arun("q", RunSettings(pool=("s:a", "s:b"), judge="j:judge"))
    assert result.status == "all_failed" and result.answer == ""
    kinds = {c.model: c.error.kind for c in result.candidates if c.error}
    assert kinds == {"s:a": "no_credits", "s:b": "internal"}


async def test_quorum_cancels_stragglers_and_keeps_their_text() -> None:
    fusion = fusion_with(
        {"a": ["fast one"], "b": ["fast two [BEST]"]}, slow={"z": ["very slow straggler answer that takes long"]}
    )
    events = []
    settings = RunSettings(pool=("s:a", "s:b", "slow:z"), judge="j:judge", mode="best-of", quorum=2)
    async for event in fusion.stream("q", settings):
        events.append(event)
    result = events[-1].result
    straggler = next(c for c in result.candidates if c.model == "slow:z")
    assert straggler.status == "cancelled"
    assert result.wall_s < 1.5 and result.status == "ok"
    assert any(isinstance(e, CandidateCancelled) and e.model == "slow:z" for e in events)


async def test_judge_repair_then_success() -> None:
    judge = LabelReadingJudge(replies_before_valid=1)
    fusion = fusion_with({"a": ["x"], "b": ["y [BEST]"]}, judge)
    result = await fusion.arun("q", RunSettings(pool=("s:a", "s:b"), judge="j:judge", mode="best-of"))
    assert result.status == "ok" and result.answer == "y [BEST]"
    assert len(judge.requests) == 2
    assert "could not be used" in judge.requests[1].messages[-1].content


async def test_judge_off_format_twice_keeps_candidates() -> None:
    judge = LabelReadingJudge(replies_before_valid=2)
    fusion = fusion_with({"a": ["x"], "b": ["y"]}, judge)
    result = await fusion.arun("q", RunSettings(pool=("s:a", "s:b"), judge="j:judge", mode="best-of"))
    assert result.status == "judge_failed"
    assert [c.text for c in result.candidates] == ["x", "y"]
    assert result.judge is not None and result.judge.error is not None
    assert len(result.judge.raw_replies) == 2


async def test_swap_judges_twice_in_reversed_order() -> None:
    judge = LabelReadingJudge()
    fusion = fusion_with({"a": ["x"], "b": ["y [BEST]"], "c": ["z"]}, judge)
    settings = RunSettings(pool=("s:a", "s:b", "s:c"), judge="j:judge", mode="best-of", swap=True)
    result = await fusion.arun("q", settings)
    orders = [[label for _, label, _ in BLOCK.findall(r.messages[1].content)] for r in judge.requests]
    assert len(orders) == 2 and orders[1] == list(reversed(orders[0]))
    assert result.judge is not None and isinstance(result.judge.verdict, BestOfVerdict)
    assert result.judge.verdict.swap is not None and result.judge.verdict.swap.agree is True


async def test_self_preference_warning() -> None:
    fusion = fusion_with({"a": ["x [BEST]"]})
    fusion.resolver.register("s2", LabelReadingJudge())
    events = [
        e async for e in fusion.stream("q", RunSettings(pool=("s:a", "s2:judge"), judge="s2:judge", mode="best-of"))
    ]
    assert any(isinstance(e, Notice) and "self-preference" in e.message for e in events)


async def test_debate_keeps_every_round() -> None:
    merge = json.dumps(
        {
            "answer": "fused",
            "consensus": [],
            "contradictions": [],
            "unique_insights": [],
            "blind_spots": [],
            "confidence": 0.5,
            "rationale": "r",
        }
    )
    fusion = fusion_with(
        {
            "a": ["first a", "revised a, quite different now"],
            "b": ["first b", "revised b, also changed a lot"],
            "judge": [merge],
        }
    )
    fusion.resolver.register("j", ScriptedBackend({"judge": [merge]}))
    result = await fusion.arun("q", RunSettings(pool=("s:a", "s:b"), judge="j:judge", mode="debate", rounds=3))
    assert result.status == "ok" and result.answer == "fused"
    assert len(result.rounds) >= 2
    assert [c.text for c in result.rounds[0]] == ["first a", "first b"]
    assert result.to_dict()["rounds"][1][0]["text"].startswith("revised")


async def test_events_stream_live_and_end_with_result() -> None:
    fusion = fusion_with({"a": ["one two three"], "b": ["[BEST] four five"]})
    events = [e async for e in fusion.stream("q", RunSettings(pool=("s:a", "s:b"), judge="j:judge", mode="best-of"))]
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], RunFinished)
    assert sum(isinstance(e, CandidateDelta) for e in events) >= 4


async def test_bad_settings_fail_before_any_event() -> None:
    fusion = fusion_with({"a": ["x"]})
    with pytest.raises(ConfigError):
        async for _ in fusion.stream("q", RunSettings(pool=("s:a",), judge="j:judge", quorum=5)):
            pass


def test_sync_run_works_inside_a_running_loop() -> None:
    import asyncio

    fusion = fusion_with({"a": ["x [BEST]"], "b": ["y"]})

    async def inside_loop() -> str:
        # As in Jupyter or pygls: a loop is running in this thread.
        return fusion.run("q", RunSettings(pool=("s:a", "s:b"), judge="j:judge", mode="best-of")).answer

    try:
        assert asyncio.run(inside_loop()) == "x [BEST]"
    finally:
        fusion.close()


def test_a_script_that_never_closes_still_exits(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    script = tmp_path / "noclose.py"
    script.write_text(
        "from fusion_core import Fusion, RunSettings\n"
        "from fusion_core.backends.scripted import ScriptedBackend\n"
        "f = Fusion()\n"
        "f.resolver.register('s', ScriptedBackend({'a': ['x'], "
        '\'j\': [\'{"winner": "A", "scores": {"A": 1}, "rationale": ""}\']}))\n'
        "print(f.run('q', RunSettings(pool=('s:a',), judge='s:j', mode='best-of')).status)\n"
    )
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0 and run.stdout.strip() == "ok"
