"""The batched parts of ``benchmarks/local.py``: sampling, scoring and threads, side by side.

Every figure here is a ratio of two things measured alternately in one process, because
other processes on the machine change absolute speeds from one minute to the next; the
load average is recorded with each part.

(e) batched sampling: pools of N samples of one model (one multi-sequence decode) for
    N = 1, 2, 3, 5, 8, and the same seeds run one at a time: ``*5`` and ``*8`` wall
    time ÷ the N samples alone, and tokens/s per sequence and in total per batch size;
(f) likelihood scoring of 5 candidates in one batch ÷ one after another (prompt cached),
    and the largest difference between the two sets of scores;
(g) threads: for 1 thread, 2 threads and every core, a model loaded with that many
    decode and prefill threads: one sample's decode tokens/s, the prompt's prefill, a
    ``*5`` pool and scoring 5 candidates. A batch of several tokens (a pool's step, a
    prefill, scoring) runs on ``n_threads_batch``; one token on ``n_threads``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from typing import Any

from fusion_core.backends.base import ChatRequest, Message, complete
from fusion_core.backends.llama.backend import LlamaBackend, local_backend
from fusion_core.backends.llama.hardware import cores
from fusion_core.config import LocalConfig

BATCH_SIZES = (1, 2, 3, 5, 8)
RATIO_SIZES = (5, 8)
SCORED = 5
TEMPERATURE = 0.8
N_CTX = 2048


def load_average() -> float:
    """The 1-minute load average, rounded."""
    return round(os.getloadavg()[0], 2)


def request(prompt: str, max_tokens: int, seed: int) -> ChatRequest:
    """The one request every measurement sends (only the seed varies in a pool)."""
    return ChatRequest(
        model="gemma-3-270m",
        messages=(Message("user", prompt),),
        temperature=TEMPERATURE,
        max_tokens=max_tokens,
        seed=seed,
    )


async def pool(backend: LlamaBackend, prompt: str, max_tokens: int, seeds: list[int]) -> tuple[float, int, list[str]]:
    """Wall seconds, completion tokens and texts of one pool (every seed at once: one batch)."""
    start = time.perf_counter()
    done = await asyncio.gather(*(complete(backend, request(prompt, max_tokens, s)) for s in seeds))
    return time.perf_counter() - start, sum(d.usage.completion_tokens for d in done), [d.text or " " for d in done]


async def one_by_one(backend: LlamaBackend, prompt: str, max_tokens: int, seeds: list[int]) -> tuple[float, int]:
    """Wall seconds and completion tokens of the same seeds run one at a time."""
    wall, count = 0.0, 0
    for seed in seeds:
        seconds, tokens, _ = await pool(backend, prompt, max_tokens, [seed])
        wall, count = wall + seconds, count + tokens
    return wall, count


async def timed_score(backend: LlamaBackend, prompt: str, texts: list[str], batched: bool) -> tuple[float, list[float]]:
    """Wall seconds and scores of one scoring call."""
    start = time.perf_counter()
    scores = await backend.score(prompt, texts, batched=batched)
    return time.perf_counter() - start, scores


async def measure_batches(backend: LlamaBackend, prompt: str, args: argparse.Namespace) -> dict[str, Any]:
    """(e) and (f) on one loaded model, prompt warm."""
    load_before = load_average()
    await pool(backend, prompt, args.max_tokens, [args.seed])  # the prompt is cached from here on
    walls: dict[int, list[float]] = {n: [] for n in BATCH_SIZES}
    tokens: dict[int, list[int]] = {n: [] for n in BATCH_SIZES}
    alone: dict[int, list[float]] = {n: [] for n in RATIO_SIZES}
    ratios: dict[int, list[float]] = {n: [] for n in RATIO_SIZES}
    batched_s, sequential_s, gaps = [], [], []
    for rep in range(args.reps):
        seeds = [args.seed + 100 * rep + i for i in range(max(BATCH_SIZES))]
        texts: list[str] = []
        for n in BATCH_SIZES:
            wall, count, texts_n = await pool(backend, prompt, args.max_tokens, seeds[:n])
            walls[n].append(wall)
            tokens[n].append(count)
            texts = texts_n if n == SCORED else texts
            if n in RATIO_SIZES:
                single, _ = await one_by_one(backend, prompt, args.max_tokens, seeds[:n])
                alone[n].append(single)
                ratios[n].append(wall / single)
        scores: dict[bool, list[float]] = {}
        for batched in (True, False) if rep % 2 == 0 else (False, True):
            seconds, scores[batched] = await timed_score(backend, prompt, texts, batched)
            (batched_s if batched else sequential_s).append(seconds)
        gaps.append(max(abs(a - b) for a, b in zip(scores[True], scores[False], strict=True)))
    result: dict[str, Any] = {"e_load_average_before_after": [load_before, load_average()], "e_cores": cores()}
    for n in RATIO_SIZES:
        result[f"e_pool{n}_wall_vs_{n}x_single"] = round(statistics.median(ratios[n]), 3)
        result[f"e_pool{n}_s"] = round(statistics.median(walls[n]), 3)
        result[f"e_{n}_singles_s"] = round(statistics.median(alone[n]), 3)
    for n in BATCH_SIZES:
        total = sum(tokens[n]) / sum(walls[n])
        result[f"e_batch{n}_total_tokens_per_s"] = round(total, 1)
        result[f"e_batch{n}_per_sequence_tokens_per_s"] = round(total / n, 1)
    result["f_score5_batched_s"] = round(statistics.median(batched_s), 3)
    result["f_score5_sequential_s"] = round(statistics.median(sequential_s), 3)
    result["f_score5_batched_vs_sequential"] = round(statistics.median(batched_s) / statistics.median(sequential_s), 3)
    result["f_score5_max_difference"] = round(max(gaps), 4)
    return result


async def measure_threads(prompt: str, args: argparse.Namespace) -> dict[str, Any]:
    """(g) one model per thread count, measured in turn within every repetition."""
    counts = sorted({1, 2, cores()})
    load_before = load_average()
    backends = {}
    for n in counts:
        config = LocalConfig(n_ctx=N_CTX, cache_dir=args.cache_dir, n_threads=n, n_threads_batch=n)
        backends[n], _ = local_backend("local/gemma-3-270m", config)
        await backends[n].load()
    decode: dict[int, list[float]] = {n: [] for n in counts}
    prefill: dict[int, list[float]] = {n: [] for n in counts}
    pools: dict[int, list[float]] = {n: [] for n in counts}
    scoring: dict[int, list[float]] = {n: [] for n in counts}
    for rep in range(args.thread_reps or args.reps):
        seeds = [args.seed + 100 * rep + i for i in range(SCORED)]
        for n in counts if rep % 2 == 0 else counts[::-1]:
            backend = backends[n]
            await backend.model.run(backend.model.llama.reset)  # cold: the next request prefills
            prefill[n].append((await pool(backend, prompt, 1, [args.seed]))[0])
            wall, count, _ = await pool(backend, prompt, args.max_tokens, [args.seed])
            decode[n].append(count / wall)
            wall, _, texts = await pool(backend, prompt, args.max_tokens, seeds)
            pools[n].append(wall)
            scoring[n].append((await timed_score(backend, prompt, texts, True))[0])
    result: dict[str, Any] = {"g_load_average_before_after": [load_before, load_average()], "g_threads": counts}
    for n in counts:
        result[f"g_threads{n}_decode_tokens_per_s"] = round(statistics.median(decode[n]), 1)
        result[f"g_threads{n}_prefill_s"] = round(statistics.median(prefill[n]), 3)
        result[f"g_threads{n}_pool5_s"] = round(statistics.median(pools[n]), 3)
        result[f"g_threads{n}_score5_s"] = round(statistics.median(scoring[n]), 3)
    return result


def batch_table(results: dict[str, Any]) -> str:
    """(e) and (f) as text."""
    lines = [
        f"(e) pool of {n} ÷ {n} × one sample: {results[f'e_pool{n}_wall_vs_{n}x_single']:.3f}"
        f" ({results[f'e_pool{n}_s']} s vs {results[f'e_{n}_singles_s']} s alone)"
        for n in RATIO_SIZES
    ]
    lines.append(f"    load average {results['e_load_average_before_after']} on {results['e_cores']} cores")
    lines.append(f"{'batch':>5} {'total tok/s':>12} {'per sequence':>13}")
    lines += [
        f"{n:>5} {results[f'e_batch{n}_total_tokens_per_s']:>12} {results[f'e_batch{n}_per_sequence_tokens_per_s']:>13}"
        for n in BATCH_SIZES
    ]
    lines.append(
        f"(f) scoring {SCORED} candidates batched ÷ one by one: {results['f_score5_batched_vs_sequential']:.3f}"
        f" ({results['f_score5_batched_s']} s vs {results['f_score5_sequential_s']} s;"
        f" scores differ by at most {results['f_score5_max_difference']})"
    )
    return "\n".join(lines)


def threads_table(results: dict[str, Any]) -> str:
    """(g) as text: one row per thread count."""
    lines = [
        f"(g) threads (n_threads = n_threads_batch), load average {results['g_load_average_before_after']}",
        f"{'threads':>7} {'decode tok/s':>13} {'prefill s':>10} {'*5 pool s':>10} {'score 5 s':>10}",
    ]
    lines += [
        f"{n:>7} {results[f'g_threads{n}_decode_tokens_per_s']:>13} {results[f'g_threads{n}_prefill_s']:>10}"
        f" {results[f'g_threads{n}_pool5_s']:>10} {results[f'g_threads{n}_score5_s']:>10}"
        for n in results["g_threads"]
    ]
    return "\n".join(lines)
