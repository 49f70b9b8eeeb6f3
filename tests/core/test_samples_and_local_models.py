"""``SPEC*N`` samples that really differ, and ``fusion models --local``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fusion_core.specs import MAX_SAMPLES, expand_pool
from fusion_core.testing.server import TestServer

FUSION = [sys.executable, "-m", "fusion_cli"]


def fusion(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FUSION, *args], env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("count", range(2, MAX_SAMPLES + 1))
def test_exactly_one_sample_is_greedy_and_the_rest_differ(count: int) -> None:
    members = expand_pool([f"local/gemma-3-270m*{count}"])
    temperatures = [m.temperature for m in members]
    assert len(members) == count and temperatures.count(0.0) == 1 and temperatures[0] == 0.0
    assert len(set(temperatures)) == count  # no two samples share a temperature, so none repeats another
    assert len({m.seed for m in members}) == count


def test_every_sample_is_sent_its_own_temperature_and_seed(server: TestServer, remote_env: dict[str, str]) -> None:
    run = fusion(remote_env, "run", "Tell me a story.", "--pool", "mock/alpha*5", "--judge", "mock/judge", "--json")
    assert run.returncode == 0, run.stderr
    sent = [(r["temperature"], r["seed"]) for r in server.log() if r["model"] == "mock/alpha"]
    assert len(sent) == 5 and len(set(sent)) == 5
    assert [t for t, _ in sent].count(0.0) == 1


@pytest.mark.local
def test_five_samples_of_the_embedded_model_are_five_different_texts() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENROUTER_")}
    args = ["--pool", "local/gemma-3-270m*5", "--judge", "likelihood:local/gemma-3-270m", "--mode", "best-of"]
    run = fusion(env, "run", "Once upon a time, in a small village by the sea,", *args, "--max-tokens", "16", "--json")
    assert run.returncode == 0, run.stderr
    texts = [c["text"] for c in json.loads(run.stdout)["candidates"]]
    # Seeds and temperatures are fixed, so this is reproducible; a hot sample may stop at once (""),
    # but no sample repeats another.
    assert len(texts) == 5 and len(set(texts)) == 5, texts


def test_models_local_lists_the_embedded_model_aliases_and_configured_files(tmp_path: Path) -> None:
    present = tmp_path / "mine.gguf"
    present.write_bytes(b"GGUF" + b"\0" * 4092)
    config = tmp_path / "fusion.toml"
    config.write_text(
        "[local]\n"
        f'cache_dir = "{tmp_path / "empty-cache"}"\n'
        "[local.models]\n"
        f'mine = "{present}"\n'
        f'gone = "{tmp_path / "gone.gguf"}"\n'
    )
    run = fusion(dict(os.environ), "--config", str(config), "models", "--local")
    assert run.returncode == 0, run.stderr
    header, *lines = run.stdout.splitlines()
    assert header.split() == ["model", "kind", "size", "present", "file"]
    rows = {line.split()[0]: line for line in lines}
    assert rows["local/mine"].split()[1:6] == ["configured", "4.1", "kB", "yes", str(present)]
    assert rows["local/gone"].split()[1:5] == ["configured", "-", "no", str(tmp_path / "gone.gguf")]
    embedded = rows["local/gemma-3-270m"].split()
    # Not yet assembled in this cache: listed with the size it will take and where it will go.
    assert embedded[1] == "embedded" and embedded[4] == "no" and embedded[3] == "MB"
    assert embedded[5] == str(tmp_path / "empty-cache" / "gemma-3-270m-q4_k_m.gguf")
    assert not (tmp_path / "empty-cache").exists()  # listing never assembles or downloads
    for alias in ("local/gemma-3-1b", "local/gemma-3-27b"):
        assert rows[alias].split()[1:4] == ["alias", "-", "no"] and "huggingface-cli download" in rows[alias]
