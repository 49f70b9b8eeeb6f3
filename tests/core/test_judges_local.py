"""The likelihood judge and greedy sampling with the real embedded Gemma 3 270M (no fakes)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from fusion_core.backends.base import ChatRequest, Message, complete
from fusion_core.backends.llama.backend import LlamaBackend, local_backend
from fusion_core.config import LocalConfig
from fusion_core.events import Event
from fusion_core.judges.likelihood import judge_by_likelihood
from fusion_core.result import Candidate
from fusion_core.verdicts import LikelihoodVerdict

pytestmark = pytest.mark.local

PROMPT = 'def string_length(text: str) -> int:\n    """Return how many characters text has."""\n'
CLEAN = "    return len(text)\n"
# What a base model does when it loops: one plausible line, again and again.
REPETITIVE = "    return len(text)\n" + "    # Return how many characters text has.\n" * 10
CODE_PROMPTS = [
    "def fib(n):\n",
    'def is_palindrome(s: str) -> bool:\n    """Return True if s reads the same backwards."""\n',
]


@pytest.fixture(scope="module")
def gemma(tmp_path_factory: pytest.TempPathFactory) -> LlamaBackend:
    backend, _ = local_backend("local/gemma-3-270m", LocalConfig(n_ctx=1024, cache_dir=None))
    return backend


def cand(label: str, text: str, finish: str = "stop") -> Candidate:
    return Candidate(model=f"local/gemma-3-270m#{label}", label=label, status="ok", text=text, finish_reason=finish)


def no_events(event: Event) -> None:
    pass


async def test_raw_likelihood_prefers_the_loop_and_the_penalty_reverses_it(gemma: LlamaBackend) -> None:
    raw_loop, raw_clean = await gemma.score(PROMPT, [REPETITIVE, CLEAN])
    # The failure the issue measured: copies of a line are nearly certain, so the loop scores higher.
    assert raw_loop > raw_clean
    verdict, outcome = await judge_by_likelihood(
        "likelihood:local/gemma-3-270m", gemma, PROMPT, [cand("A", REPETITIVE), cand("B", CLEAN)], emit=no_events
    )
    assert verdict is not None and verdict.answer == CLEAN
    assert isinstance(outcome.verdict, LikelihoodVerdict)
    parts = outcome.verdict.components
    assert parts["local/gemma-3-270m#A"].repetition_penalty < 0 == parts["local/gemma-3-270m#B"].repetition_penalty


async def test_a_truncated_candidate_loses_to_a_complete_one(gemma: LlamaBackend) -> None:
    cut = "    n = 0\n    for ch in text:\n        n"
    [raw_cut, raw_clean] = await gemma.score(PROMPT, [cut, CLEAN])
    verdict, outcome = await judge_by_likelihood(
        "likelihood:local/gemma-3-270m",
        gemma,
        PROMPT,
        [cand("A", cut, "length"), cand("B", CLEAN)],
        emit=no_events,
    )
    assert verdict is not None and verdict.answer == CLEAN
    assert isinstance(outcome.verdict, LikelihoodVerdict)
    parts = outcome.verdict.components
    assert parts["local/gemma-3-270m#A"].truncation_penalty == -1.0
    assert parts["local/gemma-3-270m#A"].likelihood == pytest.approx(raw_cut, abs=1e-3)
    assert raw_clean == pytest.approx(parts["local/gemma-3-270m#B"].likelihood, abs=1e-3)


async def test_the_greedy_sample_is_the_same_text_with_or_without_prefix_reuse(gemma: LlamaBackend) -> None:
    def ask(prompt: str) -> ChatRequest:
        return ChatRequest(
            model="gemma-3-270m", messages=(Message("user", prompt),), temperature=0.0, max_tokens=24, seed=1001
        )

    for prompt in CODE_PROMPTS:
        await complete(gemma, ask("The capital of France is"))  # another prompt: nothing reused
        cold = await complete(gemma, ask(prompt))
        warm = await complete(gemma, ask(prompt))  # the same prompt again: its prefill is reused
        assert warm.usage is not None and warm.usage.cached_tokens > 0
        sampled = await complete(gemma, replace(ask(prompt), temperature=1.0, seed=7))
        after_sample = await complete(gemma, ask(prompt))
        assert cold.text == warm.text == after_sample.text, prompt
        assert sampled.text  # a sampled reply in between does not disturb the greedy one
