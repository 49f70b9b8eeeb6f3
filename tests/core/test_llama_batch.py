"""Several samples of one local model decode as one batch (real Gemma 3 270M).

A ``SPEC*N`` pool's members reach the model together with the same prompt; they share
its prefill and decode side by side, each with its own sampler, stops and stream.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from fusion_core.backends.base import ChatRequest, Message
from fusion_core.backends.llama.backend import LlamaBackend, local_backend
from fusion_core.config import LocalConfig
from fusion_core.events import CandidateDelta, CandidateFinished, CandidateStarted, Event
from fusion_core.pool import Job, run_round
from fusion_core.specs import SAMPLE_TEMPERATURES

pytestmark = pytest.mark.local

MAX_TOKENS = 16
PROMPT = "def fizzbuzz(n):\n"
# Long enough for any of this test's generations on a loaded 2-core machine.
GENEROUS_TIMEOUT_S = 600.0


@pytest.fixture(scope="module")
def gemma(tmp_path_factory: pytest.TempPathFactory) -> tuple[LlamaBackend, str]:
    """The embedded model's process-wide backend."""
    config = LocalConfig(n_ctx=512, cache_dir=str(tmp_path_factory.mktemp("models")))
    return local_backend("local/gemma-3-270m", config)


def pool_jobs(backend: LlamaBackend, model_id: str, n: int, max_tokens: int = MAX_TOKENS) -> list[Job]:
    """The jobs of a ``SPEC*n`` pool: the temperatures and seeds models.py gives its samples."""
    return [
        Job(
            member=f"gemma#{i + 1}",
            label=f"gemma#{i + 1}",
            backend=backend,
            request=ChatRequest(
                model=model_id,
                messages=(Message("user", PROMPT),),
                temperature=SAMPLE_TEMPERATURES[i % len(SAMPLE_TEMPERATURES)],
                seed=1000 + i,
                max_tokens=max_tokens,
            ),
        )
        for i in range(n)
    ]


async def test_a_pool_of_samples_streams_interleaved_and_its_greedy_sample_is_deterministic(
    gemma: tuple[LlamaBackend, str],
) -> None:
    backend, model_id = gemma
    await backend.load()
    runs = []
    for _ in range(2):
        events: list[Event] = []
        candidates = await run_round(pool_jobs(backend, model_id, 3), emit=events.append, timeout_s=GENEROUS_TIMEOUT_S)
        assert all(c.ok for c in candidates), candidates
        runs.append(candidates)
        # Decoded together: every member streams its first text before any member finishes
        # (taking turns, the second would start only after the first had finished).
        first_delta = {e.model: i for i, e in reversed(list(enumerate(events))) if isinstance(e, CandidateDelta)}
        first_finish = min(i for i, e in enumerate(events) if isinstance(e, CandidateFinished))
        assert len(first_delta) == 3 and max(first_delta.values()) < first_finish
        assert sum(isinstance(e, CandidateStarted) for e in events) == 3
    greedy = [run[0].text for run in runs]
    assert greedy[0] == greedy[1] and greedy[0].strip()
    # Seeded samples are reproducible too, and differ from each other.
    assert [c.text for c in runs[0]] == [c.text for c in runs[1]]
    assert len({c.text for c in runs[0]}) > 1


async def test_n_seq_max_1_runs_the_samples_one_after_another(tmp_path_factory: pytest.TempPathFactory) -> None:
    # The documented switch for comparing batched with sequential runs (fusion eval).
    config = LocalConfig(n_ctx=512, cache_dir=str(tmp_path_factory.mktemp("models")), n_seq_max=1)
    backend, model_id = local_backend("local/gemma-3-270m", config)
    events: list[Event] = []
    candidates = await run_round(pool_jobs(backend, model_id, 2), emit=events.append, timeout_s=GENEROUS_TIMEOUT_S)
    assert all(c.ok for c in candidates), candidates
    # Taking turns: the first member to finish did so before the other streamed anything.
    finished = next(e for e in events if isinstance(e, CandidateFinished))
    before = events[: events.index(finished)]
    assert not any(isinstance(e, CandidateDelta) and e.model != finished.model for e in before)


async def test_a_member_that_ends_early_finishes_while_the_others_go_on(gemma: tuple[LlamaBackend, str]) -> None:
    backend, model_id = gemma
    short, long = pool_jobs(backend, model_id, 2)
    short = Job(short.member, short.label, backend, replace(short.request, max_tokens=2))
    long = Job(long.member, long.label, backend, replace(long.request, max_tokens=32))
    events: list[Event] = []
    candidates = await run_round([short, long], emit=events.append, timeout_s=GENEROUS_TIMEOUT_S)
    assert [c.usage.completion_tokens for c in candidates] == [2, 32]
    short_done = next(i for i, e in enumerate(events) if isinstance(e, CandidateFinished) and e.model == short.member)
    long_deltas = [i for i, e in enumerate(events) if isinstance(e, CandidateDelta) and e.model == long.member]
    assert long_deltas[0] < short_done < long_deltas[-1]


async def test_closing_one_members_stream_stops_only_that_sequence(gemma: tuple[LlamaBackend, str]) -> None:
    backend, model_id = gemma
    jobs = pool_jobs(backend, model_id, 3, max_tokens=24)
    streams = [job.backend.stream(job.request) for job in jobs]
    texts = ["", "", ""]
    finishes: list[str | None] = [None, None, None]

    async def consume(i: int) -> None:
        async for chunk in streams[i]:
            texts[i] += chunk.text
            finishes[i] = chunk.finish_reason or finishes[i]
            if i == 0 and texts[0].strip():
                break  # closes member 1's stream: its sequence leaves the batch
        await streams[i].aclose()

    await asyncio.gather(*(consume(i) for i in range(3)))
    assert texts[0].strip() and finishes[0] is None
    assert finishes[1] in {"stop", "length"} and finishes[2] in {"stop", "length"}
    assert texts[1].strip() and texts[2].strip()
    # The model is free and its own sequence holds only the shared prompt.
    llm = backend.model.llama
    prompt_tokens = len(llm.tokenize(PROMPT.encode()))
    assert await backend.model.run(lambda: llm.n_tokens) <= prompt_tokens


async def test_waiting_for_a_busy_model_does_not_count_against_the_timeout(gemma: tuple[LlamaBackend, str]) -> None:
    backend, model_id = gemma
    await backend.load()
    timeout_s, busy_s = 20.0, 25.0
    (job,) = pool_jobs(backend, model_id, 1, max_tokens=2)
    # Someone else holds the model (as a judge's scoring or another request would) for
    # longer than the whole timeout; the candidate waits, then has its full timeout to work.
    backend.model.lock.acquire()
    try:
        round_task = asyncio.create_task(run_round([job], emit=lambda _: None, timeout_s=timeout_s))
        await asyncio.sleep(busy_s)
        assert not round_task.done()
    finally:
        backend.model.lock.release()
    (candidate,) = await round_task
    assert candidate.ok, candidate.error
    assert candidate.latency_s is not None and candidate.latency_s > timeout_s
