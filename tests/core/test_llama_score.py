"""The likelihood judge's candidates scored in one batch (real Gemma 3 270M), and the load
time reported apart from the candidates' latency (the real CLI)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from fusion_core.backends.llama.backend import LlamaBackend, LoadSettings, local_backend
from fusion_core.backends.llama.hardware import gpu_layers_for
from fusion_core.config import LocalConfig, parse_config
from tests.core.cli_run import fusion

PROMPT = "def is_even(n):\n    "
CANDIDATES = [
    "return n % 2 == 0\n",
    "return n % 2 == 1\n",
    "",
    "print('hello world')\n",
    "if n % 2 == 0:\n        return True\n    return False\n",
    "return not n & 1\n",
]
# Batched logits are not bit-identical to one sequence's; the mean log-probability per
# token moved by at most 0.04 nats in the benchmark (README: "Benchmarks").
BATCHED_TOLERANCE = 0.05


@pytest.fixture(scope="module")
def gemma(tmp_path_factory: pytest.TempPathFactory) -> tuple[LlamaBackend, str]:
    config = LocalConfig(n_ctx=512, cache_dir=str(tmp_path_factory.mktemp("models")))
    return local_backend("local/gemma-3-270m", config)


@pytest.mark.local
async def test_batched_scores_match_scores_taken_one_at_a_time(gemma: tuple[LlamaBackend, str]) -> None:
    backend, _ = gemma
    batched = await backend.score(PROMPT, CANDIDATES)
    sequential = await backend.score(PROMPT, CANDIDATES, batched=False)
    assert batched[2] == sequential[2] == float("-inf")
    for one, other in zip(batched, sequential, strict=True):
        if one != float("-inf"):
            assert one == pytest.approx(other, abs=BATCHED_TOLERANCE)
    # The ranking the judge acts on is the same, and the same batch gives the same numbers.
    assert sorted(range(6), key=batched.__getitem__) == sorted(range(6), key=sequential.__getitem__)
    assert await backend.score(PROMPT, CANDIDATES) == batched
    # More candidates than sequences in one batch: scored in several batches, same numbers.
    many = await backend.score(PROMPT, CANDIDATES * 2)
    assert many[:6] == pytest.approx(batched, abs=BATCHED_TOLERANCE)


def test_sequences_threads_and_gpu_layers_come_from_the_config(caplog: pytest.LogCaptureFixture) -> None:
    local = parse_config("[local]\nn_threads = 1\nn_threads_batch = 2\nn_seq_max = 1\nn_gpu_layers = 0").local
    settings = LoadSettings.from_config(local)
    assert settings.threads(cores=8) == (1, 2) and settings.n_seq_max == 1 and settings.n_gpu_layers == 0
    assert LoadSettings.from_config(LocalConfig()).n_gpu_layers is None
    with caplog.at_level(logging.WARNING):
        assert gpu_layers_for(None, gpu_build=False) == 0 and not caplog.records
        assert gpu_layers_for(7, gpu_build=True) == 7 and not caplog.records
        assert gpu_layers_for(None, gpu_build=True) == gpu_layers_for(None, gpu_build=True) == -1
    assert ["offloading every layer" in r.getMessage() for r in caplog.records] == [True]  # said once


@pytest.mark.local
def test_the_model_load_is_reported_apart_from_the_candidates(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENROUTER_")}
    pool = ["--pool", "local/gemma-3-270m*2", "--judge", "likelihood:local/gemma-3-270m", "--max-tokens", "8"]
    run = fusion(dict(env, COLUMNS="400"), "run", "def add(a, b):\n", *pool, "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["load_s"] > 0
    # Each candidate's latency starts after the load: both fit in the run's wall time.
    assert all(c["latency_s"] + result["load_s"] <= result["wall_s"] for c in result["candidates"])
    assert f"load local models {result['load_s']:.2f}s" in run.stderr
