"""Stream a fusion's events from Python and print them as they arrive.

With OPENROUTER_API_KEY set, this runs three real OpenRouter models. Without
it, it starts Fusion's loopback test server (an OpenRouter-compatible API with
scripted models) so the example runs anywhere, offline.

    python examples/stream_events.py "Why is the sky blue?"
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys

from fusion_core import (
    CandidateDelta,
    CandidateFailed,
    CandidateFinished,
    Fusion,
    JudgeStarted,
    RunFinished,
    RunSettings,
)
from fusion_core.verdicts import MergeVerdict


async def main(prompt: str, env: dict[str, str], pool: tuple[str, ...], judge: str) -> None:
    fusion = Fusion(env=env)
    settings = RunSettings(pool=pool, judge=judge, mode="merge")
    try:
        async for event in fusion.stream(prompt, settings):
            if isinstance(event, CandidateDelta):
                print(".", end="", flush=True)
            elif isinstance(event, CandidateFinished):
                print(f"\n{event.model} answered in {event.latency_s:.2f}s")
            elif isinstance(event, CandidateFailed):
                print(f"\n{event.model} failed: {event.error.kind}: {event.error.message}")
            elif isinstance(event, JudgeStarted):
                print(f"judge {event.model} is fusing...")
            elif isinstance(event, RunFinished):
                result = event.result
                print(f"\n{result.answer}\n")
                if result.judge and isinstance(result.judge.verdict, MergeVerdict):
                    print("consensus:", "; ".join(result.judge.verdict.consensus))
                print(f"cost ${result.usage.cost or 0:.6f}, wall {result.wall_s:.2f}s")
    finally:
        await fusion.aclose()


if __name__ == "__main__":
    question = " ".join(sys.argv[1:]) or "Why is the sky blue?"
    with contextlib.ExitStack() as stack:
        if os.environ.get("OPENROUTER_API_KEY"):
            env = dict(os.environ)
            pool = ("anthropic/claude-3.7-sonnet", "google/gemini-2.5-pro", "openai/gpt-4o")
            judge = "openai/gpt-4.1"
        else:
            from fusion_core.testing.server import run_test_server

            server = stack.enter_context(run_test_server())
            print(f"(no OPENROUTER_API_KEY: using the local test server at {server.base_url})")
            env = dict(os.environ, OPENROUTER_API_KEY="sk-or-v1-demo", OPENROUTER_BASE_URL=server.base_url)
            pool = ("mock/alpha", "mock/beta", "mock/no-credits-402")
            judge = "mock/judge"
        asyncio.run(main(question, env, pool, judge))
