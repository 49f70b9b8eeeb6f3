"""Every Python example runs on its own (smoke test)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, *args: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENROUTER_")}
    if home is not None:  # no fusion.toml in the cwd or the home directory: the built-in pool runs
        env.update(HOME=str(home))
        env.pop("FUSION_CONFIG", None)
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args], env=env, capture_output=True, text=True, timeout=240, cwd=home
    )


def test_stream_events_example() -> None:
    run = run_example("stream_events.py", "Why is the sky blue?")
    assert run.returncode == 0, run.stderr
    assert "Fused:" in run.stdout and "mock/no-credits-402 failed: no_credits" in run.stdout


@pytest.mark.local
def test_python_api_example_runs_the_embedded_model_with_no_key(tmp_path: Path) -> None:
    run = run_example("python_api.py", "def fizzbuzz(n):", home=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "pool local/gemma-3-270m*3" in run.stdout and "run: ok, 3 candidates" in run.stdout
    assert "review: line 6 [error]" in run.stdout and "(2 of 2 reviewers)" in run.stdout
    assert "complete: " in run.stdout and "Traceback" not in run.stderr
