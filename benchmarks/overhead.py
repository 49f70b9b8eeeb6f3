"""How much does fusing cost over simply waiting for the slowest model and the judge?

Runs against the loopback test server with fixed model latencies (``mock/lat-<ms>``)
and reports, side by side from one run:

- fused wall time ÷ (slowest candidate alone + judge alone), pools of 3, 5 and 8 (target ≤ 1.05);
- the spread of candidate start times, as the server saw them;
- the gap between the last candidate finishing and the judge request starting (target < 10 ms);
- wall time with --quorum and one straggler vs waiting for the straggler;
- 100 concurrent runs of 5 models each: throughput and peak memory.

Usage: ``python benchmarks/overhead.py [--quick] [--json PATH]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import time
from typing import Any

from fusion_core import Fusion, RunSettings
from fusion_core.backends.base import ChatRequest, Message, complete
from fusion_core.testing.server import TestServer, run_test_server

KEY = "sk-or-v1-benchmark"
JUDGE = "mock/judge"
LATENCIES_MS = (300, 350, 400, 450, 500, 550, 600, 650)


def _env(server: TestServer) -> dict[str, str]:
    return dict(os.environ, OPENROUTER_API_KEY=KEY, OPENROUTER_BASE_URL=server.base_url)


async def _overhead(server: TestServer, size: int, repeats: int) -> dict[str, Any]:
    fusion = Fusion(env=_env(server))
    pool = tuple(f"mock/lat-{ms}" for ms in LATENCIES_MS[:size])
    settings = RunSettings(pool=pool, judge=JUDGE, mode="merge")
    ratios, spreads, gaps = [], [], []
    await fusion.arun("warm up", settings)  # open connections, fetch /models once
    backend, _ = fusion.resolver.resolve(JUDGE)
    for _ in range(repeats):
        server.reset()
        result = await fusion.arun("Why is the sky blue?", settings)
        log = server.log()
        candidates = [r for r in log if r["model"].startswith("mock/lat-")]
        judge_log = next(r for r in log if r["model"] == JUDGE)
        spreads.append(max(r["t_start"] for r in candidates) - min(r["t_start"] for r in candidates))
        gaps.append(judge_log["t_start"] - max(r["t_end"] for r in candidates))
        # Baseline, measured the same way right after: the slowest model alone, then the judge alone
        # with exactly the request the engine sent.
        slow_backend, slow_model = fusion.resolver.resolve(pool[-1])
        t0 = time.perf_counter()
        await complete(slow_backend, ChatRequest(model=slow_model, messages=(Message("user", "Why is the sky blue?"),)))
        t1 = time.perf_counter()
        messages = tuple(Message(m["role"], m["content"]) for m in judge_log["messages"])
        await complete(backend, ChatRequest(model=JUDGE, messages=messages))
        baseline = (t1 - t0) + (time.perf_counter() - t1)
        ratios.append(result.wall_s / baseline)
    await fusion.aclose()
    return {
        "pool": size,
        "wall_over_slowest_plus_judge": round(statistics.median(ratios), 3),
        "start_spread_ms": round(1000 * statistics.median(spreads), 2),
        "judge_gap_ms": round(1000 * statistics.median(gaps), 2),
    }


async def _quorum(server: TestServer) -> dict[str, Any]:
    fusion = Fusion(env=_env(server))
    pool = ("mock/lat-300", "mock/lat-350", "mock/lat-400", "mock/slow")
    waited = await fusion.arun("q", RunSettings(pool=pool, judge=JUDGE))
    quorum = await fusion.arun("q", RunSettings(pool=pool, judge=JUDGE, quorum=3))
    await fusion.aclose()
    return {
        "wait_for_straggler_s": round(waited.wall_s, 3),
        "quorum_3_s": round(quorum.wall_s, 3),
        "speedup": round(waited.wall_s / quorum.wall_s, 2),
    }


async def _concurrent(server: TestServer, runs: int) -> dict[str, Any]:
    fusion = Fusion(env=_env(server))
    settings = RunSettings(pool=tuple(f"mock/lat-{ms}" for ms in (200, 250, 300, 350, 400)), judge=JUDGE)
    await fusion.arun("warm up", settings)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    results = await asyncio.gather(*(fusion.arun(f"question {i}", settings) for i in range(runs)))
    elapsed = time.perf_counter() - t0
    await fusion.aclose()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "runs": runs,
        "ok": sum(r.ok for r in results),
        "wall_s": round(elapsed, 2),
        "runs_per_s": round(runs / elapsed, 1),
        "peak_rss_mb": round(rss_after / 1024, 1),
        "rss_growth_mb": round((rss_after - rss_before) / 1024, 1),
    }


async def bench(quick: bool) -> dict[str, Any]:
    with run_test_server(key=None) as server:
        repeats = 1 if quick else 5
        sizes = (3,) if quick else (3, 5, 8)
        return {
            "overhead": [await _overhead(server, size, repeats) for size in sizes],
            "quorum": await _quorum(server),
            "concurrent": await _concurrent(server, 10 if quick else 100),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one small pass (for smoke tests)")
    parser.add_argument("--json", dest="json_path", help="also write the figures to this file")
    args = parser.parse_args()
    figures = asyncio.run(bench(args.quick))
    print(f"{'pool':>4} {'wall/(slowest+judge)':>21} {'start spread':>13} {'judge gap':>10}")
    for row in figures["overhead"]:
        print(
            f"{row['pool']:>4} {row['wall_over_slowest_plus_judge']:>21} "
            f"{row['start_spread_ms']:>10} ms {row['judge_gap_ms']:>7} ms"
        )
    q = figures["quorum"]
    print(
        f"quorum: waiting for a 5 s straggler {q['wait_for_straggler_s']} s, "
        f"--quorum 3 {q['quorum_3_s']} s ({q['speedup']}x)"
    )
    c = figures["concurrent"]
    print(
        f"concurrent: {c['runs']} runs x 5 models in {c['wall_s']} s = {c['runs_per_s']} runs/s, "
        f"{c['ok']} ok, peak RSS {c['peak_rss_mb']} MB (+{c['rss_growth_mb']} MB)"
    )
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as handle:
            json.dump(figures, handle, indent=2)


if __name__ == "__main__":
    main()
