"""The README's first command, as a new user runs it: no key, no fusion.toml, the embedded model.

Its answer must be complete and correct (the function it writes is run here), and the
output must say why that answer was chosen.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
FIRST_COMMAND = re.compile(r'\.venv/bin/fusion run "(?P<prompt>[^"]+)"')


def readme_prompt() -> str:
    match = FIRST_COMMAND.search(README.read_text(encoding="utf-8"))
    assert match is not None, "the README's first command runs no prompt"
    return match["prompt"]


@pytest.mark.local
def test_the_readme_first_command_gives_a_complete_correct_answer_and_says_why(tmp_path: Path) -> None:
    prompt = readme_prompt()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENROUTER_")}
    # An empty folder: no fusion.toml to pick up, as for a new user.
    run = subprocess.run(
        [sys.executable, "-m", "fusion_cli", "run", prompt, "--json"],
        env=dict(env, COLUMNS="400"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["status"] == "ok"
    winner = result["judge"]["verdict"]["winner"]
    chosen = next(c for c in result["candidates"] if c["model"] == winner)
    assert chosen["text"] == result["answer"] and chosen["finish_reason"] == "stop" and not chosen["truncated"]

    namespace: dict[str, Any] = {}
    exec(prompt + result["answer"], namespace)  # the model's own code, from our own prompt
    convert = namespace["celsius_to_fahrenheit"]
    assert [convert(c) for c in (0, 100, -40, 37)] == [32, 212, -40, pytest.approx(98.6)]

    # Why: the judge's rationale and the scores, on stderr.
    judge = result["judge"]["model"]
    assert f"judge {judge}: {result['judge']['rationale']}" in run.stderr
    # A code prompt with no key is judged by execution, ties broken by likelihood (the default).
    assert result["judge"]["verdict"]["method"] == "exec"
    assert f"winner {winner}; scores (visible tests passed): " in run.stderr
    assert "tie-break: likelihood under local/gemma-3-270m" in run.stderr
    assert "truncated" not in run.stderr
