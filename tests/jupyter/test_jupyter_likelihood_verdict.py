"""The notebook's verdict view shows what each likelihood total is made of (issue #12: components, not one number)."""

from __future__ import annotations

from collections.abc import Sequence
from html import unescape

from fusion_core.events import Event
from fusion_core.judges.likelihood import judge_by_likelihood
from fusion_core.result import Candidate, FusionResult
from fusion_core.usage import Usage
from fusion_jupyter.html import verdict

LOOP = "    return a + b\n" + "    # the sum\n" * 12
CLEAN = "    return a + b\n"


class Table:
    async def score(self, prompt: str, continuations: Sequence[str]) -> list[float]:
        return [-0.2 if text == LOOP else -0.6 for text in continuations]


def no_events(event: Event) -> None:
    pass


async def test_each_candidate_shows_its_likelihood_and_penalties() -> None:
    cands = (
        Candidate(model="m/loop", label="A", status="ok", text=LOOP, finish_reason="length"),
        Candidate(model="m/clean", label="B", status="ok", text=CLEAN),
    )
    chosen, judge = await judge_by_likelihood("likelihood:t", Table(), "def add(a, b):\n", cands, emit=no_events)
    assert chosen is not None and chosen.answer == CLEAN
    result = FusionResult("best-of", "ok", chosen.answer, cands, judge, Usage(), 0.1)
    html = unescape(verdict(result))
    assert "winner: <b>m/clean</b>" in html and "mean token log-probability" in html
    assert "Likelihood components" in html
    assert "m/clean: likelihood -0.600</li>" in html
    assert "m/loop: likelihood -0.200, repetition" in html and "cut off at max_tokens (-1)" in html
