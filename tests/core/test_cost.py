"""The worst case of a fusion run, call by call, and the cap that refuses it (fusion_core.cost)."""

from __future__ import annotations

import pytest

from fusion_core.cost import (
    JUDGE_OVERHEAD_TOKENS,
    REVISION_OVERHEAD_TOKENS,
    Caller,
    enforce_cap,
    estimate,
    estimate_tokens,
    fusion_calls,
    usd,
)
from fusion_core.errors import CostCapExceeded
from fusion_core.usage import Pricing

PRICE = Pricing(prompt=1e-6, completion=2e-6)
JUDGE_PRICE = Pricing(prompt=3e-6, completion=15e-6)
PROMPT = "x" * 400  # 101 tokens by the estimate


def run_calls(members: list[Caller], *, rounds: int = 1, judgings: int = 1, judge: Caller | None = None) -> list:  # type: ignore[type-arg]
    return fusion_calls(
        prompt=PROMPT,
        members=members,
        max_tokens=100,
        debate_rounds=rounds,
        judge=judge,
        judgings=judgings,
        judge_max_tokens=500,
    )


def test_candidates_then_judge_with_its_repair() -> None:
    p = estimate_tokens(PROMPT)
    members = [Caller("a", PRICE), Caller("b", PRICE)]
    cost = estimate(run_calls(members, judge=Caller("judge j", JUDGE_PRICE)))
    judge_in = p + JUDGE_OVERHEAD_TOKENS + 200
    expected = 2 * PRICE.cost(p, 100) + JUDGE_PRICE.cost(judge_in, 500) + JUDGE_PRICE.cost(judge_in + 500, 500)
    assert cost.calls == 4 and cost.total_usd == pytest.approx(expected)
    assert cost.unpriced == () and cost.unbounded == ()


def test_debate_rounds_and_swap_add_their_calls() -> None:
    p = estimate_tokens(PROMPT)
    members = [Caller("a", PRICE), Caller("b", PRICE)]
    plain = estimate(run_calls(members))
    debate = estimate(run_calls(members, rounds=3))
    revision = PRICE.cost(p + REVISION_OVERHEAD_TOKENS + 200, 100)
    assert debate.calls == 6 and debate.total_usd == pytest.approx(plain.total_usd + 4 * revision)
    judge = Caller("judge j", JUDGE_PRICE)
    once, swapped = estimate(run_calls(members, judge=judge)), estimate(run_calls(members, judge=judge, judgings=2))
    assert swapped.calls == once.calls + 2
    assert swapped.total_usd - plain.total_usd == pytest.approx(2 * (once.total_usd - plain.total_usd))


def test_free_unpriced_and_unbounded_models() -> None:
    calls = fusion_calls(
        prompt=PROMPT,
        members=[Caller("local/x", free=True), Caller("vllm:y", context_length=None, pricing=PRICE)],
        max_tokens=None,
        debate_rounds=1,
        judge=Caller("judge j", None),
        judgings=1,
        judge_max_tokens=500,
    )
    cost = estimate(calls)
    assert cost.total_usd == 0 and cost.unbounded == ("vllm:y",) and cost.unpriced == ("judge j",)
    # Without max_tokens a listed context length bounds the answer.
    bounded = Caller("m", PRICE, context_length=1000)
    assert bounded.answer_bound(estimate_tokens(PROMPT), None) == 1000 - estimate_tokens(PROMPT)


def test_the_cap_says_why_and_states_a_bound() -> None:
    cost = estimate(run_calls([Caller("a", PRICE)]))
    with pytest.raises(CostCapExceeded, match=r"could cost up to \$0\.000301 \(1 calls, worst case\)"):
        enforce_cap(cost, 0.0001, what="this run", hint="h")
    enforce_cap(cost, float(usd(cost.total_usd, up=True)[1:]), what="this run", hint="h")
    unpriced = estimate(run_calls([Caller("a", None)]))
    with pytest.raises(CostCapExceeded, match="cannot check a against the cost cap of \\$1.0000"):
        enforce_cap(unpriced, 1.0, what="this run", hint="h")
    assert usd(0.0123456) == "$0.0123" and usd(0.00012341, up=True) == "$0.000124"
