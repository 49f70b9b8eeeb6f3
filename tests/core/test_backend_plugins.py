"""Providers as plugins: a backend found through its ``fusion.backends`` entry point alone.

The plugin is a real package (tests/data/fusion-echo-backend) installed by pip into a
directory that only the subprocesses below see (PYTHONPATH), and driven through the
real ``fusion`` console script.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from fusion_core.backends.registry import BUILTIN_PROVIDERS, ENTRY_POINT_GROUP, installed_providers

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "tests" / "data" / "fusion-echo-backend"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The echo plugin, pip-installed (offline, with this venv's setuptools) into its own directory."""
    work = tmp_path_factory.mktemp("plugin")
    source = work / "source"  # pip builds in the source tree: build from a copy, not the checkout
    shutil.copytree(PLUGIN, source)
    target = work / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-build-isolation", "--no-deps"]
        + ["--target", str(target), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return target


def fusion(tmp_path: Path, *args: str, plugins: Path | None) -> subprocess.CompletedProcess[str]:
    """``fusion ARGS`` with no key and no user config, seeing the plugin directory when given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENROUTER_") and k != "FUSION_CONFIG"}
    env.update(HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "cache"), COLUMNS="200")
    env.pop("PYTHONPATH", None)
    if plugins is not None:
        env["PYTHONPATH"] = str(plugins)
    return subprocess.run([BIN / "fusion", *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_an_installed_plugin_serves_its_prefix(tmp_path: Path, plugin_path: Path) -> None:
    run = fusion(tmp_path, "run", "-m", "echo/parrot", "hi there", "--json", "--no-log", plugins=plugin_path)

    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["answer"] == "parrot heard: hi there"
    assert [c["model"] for c in result["candidates"]] == ["echo/parrot"]


def test_a_plugins_models_count_as_remote_under_local_only(tmp_path: Path, plugin_path: Path) -> None:
    run = fusion(tmp_path, "run", "--local-only", "-m", "echo/parrot", "hi", "--no-log", plugins=plugin_path)

    assert run.returncode != 0
    assert "local-only mode refused remote models: echo/parrot" in run.stderr
    assert "heard" not in run.stdout


def test_without_the_plugin_the_prefix_is_an_openrouter_vendor(tmp_path: Path) -> None:
    run = fusion(tmp_path, "run", "-m", "echo/parrot", "hi there", "--no-log", plugins=None)

    assert run.returncode != 0
    assert "OPENROUTER_API_KEY is not set" in run.stderr
    assert "heard" not in run.stdout


def test_an_unknown_prefix_lists_the_installed_providers(tmp_path: Path, plugin_path: Path) -> None:
    run = fusion(tmp_path, "run", "-m", "nosuch:x", "hi", "--no-log", plugins=plugin_path)

    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert "unknown provider or endpoint 'nosuch'" in run.stderr
    assert "Installed providers: broken, echo, gguf, local, openrouter, tool." in run.stderr


def test_a_plugin_that_fails_to_load_is_named_not_a_traceback(tmp_path: Path, plugin_path: Path) -> None:
    run = fusion(tmp_path, "run", "-m", "broken/x", "hi", "--no-log", plugins=plugin_path)

    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert "the 'broken' backend provider (fusion_echo_backend:NoSuchProvider) failed to load" in run.stderr
    assert "fusion-echo-backend" in run.stderr


def test_the_builtins_register_through_the_entry_point_group() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"][ENTRY_POINT_GROUP]

    assert declared == BUILTIN_PROVIDERS  # the fallback for an uninstalled checkout says the same
    installed = installed_providers()
    assert {name: installed[name].value for name in BUILTIN_PROVIDERS} == BUILTIN_PROVIDERS
    assert all(installed[name].dist is not None for name in BUILTIN_PROVIDERS), "read from metadata, not fallback"


def test_resolving_specs_imports_llama_cpp_only_for_a_local_model() -> None:
    code = (
        "import sys\n"
        "from fusion_core.engine import Fusion\n"
        "f = Fusion(env={'OPENROUTER_API_KEY': 'sk-or-v1-test'})\n"
        "f.resolver.resolve('openai/gpt-4o')\n"
        "try:\n"
        "    f.resolver.resolve('tool:ruff')\n"
        "except Exception:\n"
        "    pass\n"
        "print('llama_cpp' in sys.modules)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)

    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "False"
