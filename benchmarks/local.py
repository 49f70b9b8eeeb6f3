"""Benchmark the in-process llama.cpp backend against llama-cpp-python used directly.

Run from the repository root::

    python benchmarks/local.py [--max-tokens 64] [--json results.json]

Everything is measured in one run, on the embedded Gemma 3 270M, with the same
prompt, seeds and token limit:

(a) streaming overhead: tokens/s through ``LlamaBackend.stream`` ÷ tokens/s of a
    direct ``Llama.create_completion`` on an identically loaded model (target ≥ 0.95);
(b) a 3-sample pool of one model (asyncio.gather: one batched decode) ÷ 3 × one
    cold sample: below 1 from the shared prefill and the batch;
(c) peak RSS of a 3-member pool ÷ a single member, each in a fresh subprocess
    (target ≈ 1.0: the weights load once), and the peak RSS of ``*5`` and ``*8``;
(d) the likelihood judge: scoring the 3 samples right after the pool (the prompt
    is still cached) ÷ the pool's generation time (target ≤ 0.25); (d') the same
    from a cold cache, which adds the prompt's prefill;
(e), (f), (g): batched sampling for 1, 2, 3, 5 and 8 sequences, batched scoring and
    the thread counts (see ``benchmarks/local_batch.py``). The load average is
    recorded, because other processes on the machine change every figure.

``--only batch`` runs (e) and (f) alone, ``--only threads`` (g).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

try:
    import fusion_core  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fusion_core.backends.base import ChatRequest, complete
from fusion_core.backends.llama.backend import LlamaBackend, LoadSettings, LocalModel, local_backend
from fusion_core.backends.llama.models import prepare_embedded_model
from fusion_core.config import LocalConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from local_batch import batch_table, measure_batches, measure_threads, threads_table  # noqa: E402
from local_batch import request as prompt_request  # noqa: E402

DEFAULT_MAX_TOKENS = 64
DEFAULT_SEED = 42
DEFAULT_REPS = 3
POOL_SIZE = 3
RSS_POOLS = (1, POOL_SIZE, 5, 8)
TEMPERATURE = 0.8
N_CTX = 2048
# A few hundred tokens of context, as an editor or notebook would send: prefill matters.
PROMPT = (
    "The following is a chapter from a history of the Roman Empire.\n\n"
    + " ".join(
        f"In the year {100 + 7 * i} the emperor reorganised the province of {name}, raising new "
        f"legions, building roads and granting citizenship to the towns along the frontier."
        for i, name in enumerate(
            [
                "Gaul",
                "Hispania",
                "Britannia",
                "Dacia",
                "Syria",
                "Egypt",
                "Africa",
                "Asia",
                "Achaea",
                "Macedonia",
                "Thracia",
                "Pannonia",
                "Noricum",
                "Raetia",
                "Galatia",
            ]
        )
    )
    + "\n\nThe most important consequence of these reforms was"
)


def request(max_tokens: int, seed: int) -> ChatRequest:
    """The one request every measurement sends (only the seed varies in a pool)."""
    return prompt_request(PROMPT, max_tokens, seed)


async def cold(backend: LlamaBackend) -> None:
    """Forget the evaluated prompt, so the next request pays its prefill."""
    llm = backend.model.llama
    await backend.model.run(llm.reset)


async def timed_sample(backend: LlamaBackend, max_tokens: int, seed: int) -> tuple[float, int, str]:
    """Wall seconds, completion tokens and text of one request through the backend."""
    start = time.perf_counter()
    done = await complete(backend, request(max_tokens, seed))
    return time.perf_counter() - start, done.usage.completion_tokens, done.text


def direct_sample(direct: LocalModel, stops: tuple[str, ...], max_tokens: int, seed: int) -> tuple[float, int]:
    """Wall seconds and completion tokens of the same request on llama-cpp-python directly."""
    llm = direct.llama
    start = time.perf_counter()
    out: Any = llm.create_completion(
        PROMPT,
        max_tokens=max_tokens,
        temperature=TEMPERATURE,
        seed=seed,
        stop=list(stops),
        top_k=40,
        top_p=0.95,
        min_p=0.05,
        repeat_penalty=1.0,
    )
    return time.perf_counter() - start, int(out["usage"]["completion_tokens"])


async def timed_pool(backend: LlamaBackend, max_tokens: int, seeds: list[int]) -> tuple[float, int]:
    """Wall seconds and total completion tokens of one pool (all seeds at once)."""
    start = time.perf_counter()
    results = await asyncio.gather(*(timed_sample(backend, max_tokens, seed) for seed in seeds))
    return time.perf_counter() - start, sum(tokens for _, tokens, _ in results)


async def measure_batch_only(args: argparse.Namespace) -> dict[str, Any]:
    """Just (e) and (f), on a freshly loaded model."""
    config = LocalConfig(n_ctx=N_CTX, cache_dir=args.cache_dir, n_threads=args.threads, n_threads_batch=args.threads)
    backend, _ = local_backend("local/gemma-3-270m", config)
    await backend.load()
    head = {"model": "local/gemma-3-270m", "max_tokens": args.max_tokens, "reps": args.reps, "threads": args.threads}
    return head | await measure_batches(backend, PROMPT, args)


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Run (c) in subprocesses first (they would inherit this process's RSS), then (a), (b), (d)."""
    path = prepare_embedded_model(args.cache_dir)
    rss = {n: rss_of_pool(n, args) for n in RSS_POOLS}
    c = rss[POOL_SIZE] / rss[1]

    config = LocalConfig(n_ctx=N_CTX, cache_dir=args.cache_dir)
    backend, _ = local_backend("local/gemma-3-270m", config)
    await backend.load()
    direct = LocalModel(path, LoadSettings.from_config(config))
    direct.load()
    plan = await backend.prompt_plan(request(1, 0).messages)  # the stops the backend applies

    # (a) both warm (prompt cached), alternating, same seed: identical tokens, compare speed.
    await timed_sample(backend, args.max_tokens, args.seed)
    direct_sample(direct, plan.stop, args.max_tokens, args.seed)
    ours, theirs = [], []
    for _ in range(args.reps):
        wall, tokens, _ = await timed_sample(backend, args.max_tokens, args.seed)
        ours.append(tokens / wall)
        wall, tokens = direct_sample(direct, plan.stop, args.max_tokens, args.seed)
        theirs.append(tokens / wall)
    a = statistics.median(ours) / statistics.median(theirs)

    # (b) a cold pool of 3 seeds vs the same 3 seeds each run alone from a cold cache
    # (same seeds, so the same lengths: the difference is the prefill the pool shares).
    # (d) right after the pool, as a likelihood judge would, and again from a cold cache.
    pool_ratios, pools, alone, warm_scores, cold_scores = [], [], [], [], []
    outputs: list[str] = []
    for rep in range(args.reps):
        seeds = [args.seed + 100 * rep + i for i in range(POOL_SIZE)]
        await cold(backend)
        start = time.perf_counter()
        results = await asyncio.gather(*(timed_sample(backend, args.max_tokens, s) for s in seeds))
        pool_s = time.perf_counter() - start
        outputs = [text or " " for _, _, text in results]
        start = time.perf_counter()
        scores = await backend.score(PROMPT, outputs)
        warm_scores.append(time.perf_counter() - start)
        await cold(backend)
        start = time.perf_counter()
        await backend.score(PROMPT, outputs)
        cold_scores.append(time.perf_counter() - start)
        singles = 0.0
        for seed in seeds:
            await cold(backend)
            singles += (await timed_sample(backend, args.max_tokens, seed))[0]
        pools.append(pool_s)
        alone.append(singles)
        pool_ratios.append(pool_s / singles)
    b = statistics.median(pool_ratios)
    pool_s = statistics.median(pools)
    d_warm = statistics.median(warm_scores) / pool_s
    d_cold = statistics.median(cold_scores) / pool_s
    e = await measure_batches(backend, PROMPT, args)
    g = await measure_threads(PROMPT, args)

    return (
        e
        | g
        | {f"c_peak_rss_pool{n}_mb": round(rss[n] / 1024, 1) for n in RSS_POOLS}
        | {
            "model": "local/gemma-3-270m (Gemma 3 270M base, Q4_K_M)",
            "max_tokens": args.max_tokens,
            "seed": args.seed,
            "reps": args.reps,
            "prompt_tokens": len(backend.model.llama.tokenize(PROMPT.encode())),
            "a_stream_vs_direct_tokens_per_s": round(a, 3),
            "a_backend_tokens_per_s": round(statistics.median(ours), 1),
            "a_direct_tokens_per_s": round(statistics.median(theirs), 1),
            "b_pool3_wall_vs_3x_single": round(b, 3),
            "b_pool3_s": round(pool_s, 3),
            "b_3_singles_s": round(statistics.median(alone), 3),
            "c_peak_rss_pool3_vs_single": round(c, 3),
            "c_peak_rss_single_mb": round(rss[1] / 1024, 1),
            "c_peak_rss_pool3_mb": round(rss[POOL_SIZE] / 1024, 1),
            "d_score3_vs_pool3_generation": round(d_warm, 3),
            "d_score3_cold_vs_pool3_generation": round(d_cold, 3),
            "d_score3_s": round(statistics.median(warm_scores), 3),
            "d_score3_cold_s": round(statistics.median(cold_scores), 3),
            "d_scores": [round(s, 3) for s in scores],
        }
    )


def rss_of_pool(members: int, args: argparse.Namespace) -> int:
    """Peak RSS (KiB) of a fresh process that runs a pool of ``members`` samples."""
    command = [sys.executable, __file__, "--rss-child", str(members), "--max-tokens", str(args.max_tokens)]
    if args.cache_dir:
        command += ["--cache-dir", args.cache_dir]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return int(out.strip().splitlines()[-1])


async def rss_child(members: int, args: argparse.Namespace) -> None:
    """Print this process's peak RSS after a pool of ``members`` samples of one model and
    the likelihood judge scoring them, as a ``fusion run`` of that pool does."""
    config = LocalConfig(n_ctx=N_CTX, cache_dir=args.cache_dir)
    backends = [local_backend("local/gemma-3-270m", config)[0] for _ in range(members)]
    done = await asyncio.gather(*(complete(b, request(args.max_tokens, i)) for i, b in enumerate(backends)))
    await backends[0].score(PROMPT, [d.text or " " for d in done])
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def table(results: dict[str, Any]) -> str:
    """The four ratios and their targets, as a small text table."""
    rows = [
        (
            "(a) stream tok/s ÷ direct tok/s",
            results["a_stream_vs_direct_tokens_per_s"],
            "≥ 0.95",
            f"{results['a_backend_tokens_per_s']} vs {results['a_direct_tokens_per_s']} tok/s",
        ),
        (
            "(b) pool of 3 ÷ 3 × one sample",
            results["b_pool3_wall_vs_3x_single"],
            "< 1",
            f"{results['b_pool3_s']} s vs {results['b_3_singles_s']} s for the 3 alone",
        ),
        (
            "(c) peak RSS pool of 3 ÷ single",
            results["c_peak_rss_pool3_vs_single"],
            "≈ 1.0",
            f"{results['c_peak_rss_pool3_mb']} vs {results['c_peak_rss_single_mb']} MB",
        ),
        (
            "(c') peak RSS pool of 8 ÷ single",
            results["c_peak_rss_pool8_mb"] / results["c_peak_rss_pool1_mb"],
            "",
            f"{results['c_peak_rss_pool5_mb']} MB for *5, {results['c_peak_rss_pool8_mb']} MB for *8",
        ),
        (
            "(d) score 3 ÷ pool generation",
            results["d_score3_vs_pool3_generation"],
            "≤ 0.25",
            f"{results['d_score3_s']} s vs {results['b_pool3_s']} s (prompt cached by the pool)",
        ),
        (
            "(d') same, prompt not cached",
            results["d_score3_cold_vs_pool3_generation"],
            "",
            f"{results['d_score3_cold_s']} s, including the prompt's prefill",
        ),
    ]
    lines = [f"{'metric':34} {'ratio':>7}  {'target':7} detail"]
    lines += [f"{name:34} {value:7.3f}  {target:7} {detail}" for name, value, target, detail in rows]
    return "\n".join(lines)


def main() -> None:
    """Parse arguments, run the benchmark, print the table and write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--reps", type=int, default=DEFAULT_REPS)
    parser.add_argument("--thread-reps", type=int, default=None, help="repetitions of (g); default --reps")
    parser.add_argument("--cache-dir", default=None, help="where the embedded model is assembled")
    parser.add_argument("--json", dest="json_path", default=None, help="write results here ('-': stdout)")
    parser.add_argument("--only", choices=["batch", "threads"], default=None, help="run one part alone")
    parser.add_argument("--threads", type=int, default=None, help="[local] n_threads(_batch) for --only batch")
    parser.add_argument("--rss-child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        asyncio.run(rss_child(args.rss_child, args))
        return
    if args.only == "batch":
        results = asyncio.run(measure_batch_only(args))
        print(batch_table(results))
    elif args.only == "threads":
        results = asyncio.run(measure_threads(PROMPT, args))
        print(threads_table(results))
    else:
        results = asyncio.run(measure(args))
        print(table(results))
        print(batch_table(results))
        print(threads_table(results))
    if args.json_path == "-":
        print(json.dumps(results, indent=2))
    elif args.json_path:
        Path(args.json_path).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
