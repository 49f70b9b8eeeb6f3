"""The fusion provider with the real embedded model: the same prompt path as `fusion run`, and
members run alone give exactly the candidate they gave inside the fused run (seeded samples)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("inspect_ai")

from inspect_ai.model import GenerateConfig, get_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
POOL = "local/gemma-3-270m*2"
MAX_TOKENS = 24

pytestmark = [
    pytest.mark.local,
    pytest.mark.filterwarnings("ignore:The 'initial' parameter is deprecated:DeprecationWarning"),
]


def prompt_of(name: str) -> str:
    rows = [json.loads(line) for line in (ROOT / "examples/evals/code.jsonl").read_text().splitlines()]
    return str(next(r for r in rows if r["entry_point"] == name)["prompt"])


def generate(**model_args: str) -> tuple[str, dict]:  # type: ignore[type-arg]
    model = get_model(f"fusion/{POOL}", config=GenerateConfig(max_tokens=MAX_TOKENS), **model_args)
    output = asyncio.run(model.generate(prompt_of("string_length")))
    return output.completion, output.metadata["fusion"]


def test_code_prompts_take_the_fusion_run_path_and_members_alone_match(tmp_path: Path) -> None:
    env = dict(os.environ, FUSION_NO_LOG="1", INSPECT_CACHE_DIR=str(tmp_path / "cache"))
    done = subprocess.run(
        [sys.executable, "-m", "fusion_cli", "run", "--pool", POOL, "--max-tokens", str(MAX_TOKENS), "--json", "-"],
        input=prompt_of("string_length"),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    by_cli = {c["model"]: c["text"] for c in json.loads(done.stdout)["candidates"]}
    answer, result = generate()
    by_provider = {c["model"]: c["text"] for c in result["candidates"]}
    # The prompt reaches the base model as a continuation in both paths: the same seeded texts.
    assert by_provider == by_cli
    assert answer in by_cli.values()
    for member, text in by_cli.items():
        alone, alone_result = generate(member=member)
        assert alone_result["judge"] is None and alone == text
