"""Every Python example runs on its own (smoke test)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENROUTER_")}
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args], env=env, capture_output=True, text=True, timeout=240
    )


def test_stream_events_example() -> None:
    run = run_example("stream_events.py", "Why is the sky blue?")
    assert run.returncode == 0, run.stderr
    assert "Fused:" in run.stdout and "mock/no-credits-402 failed: no_credits" in run.stdout
