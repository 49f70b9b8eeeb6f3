"""Fixtures for the notebook front end: a real IPython shell with the extension loaded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

from fusion_core.options import RunOptions
from fusion_core.testing.server import TestServer
from fusion_jupyter import FusionMagics


@pytest.fixture(scope="session")
def shell(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InteractiveShell]:
    """The process's one InteractiveShell, with its profile in a temp dir, and fusion_jupyter loaded."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("IPYTHONDIR", str(tmp_path_factory.mktemp("ipython")))
        ip = InteractiveShell.instance()
        ip.run_line_magic("load_ext", "fusion_jupyter")
        yield ip
        ip.run_line_magic("unload_ext", "fusion_jupyter")


@pytest.fixture
def magics(shell: InteractiveShell) -> FusionMagics:
    """The registered magics, reset to text output and no session defaults."""
    instance = shell.magics_manager.registry["FusionMagics"]
    assert isinstance(instance, FusionMagics)
    instance.view = "text"
    instance.session.defaults = RunOptions()
    instance.last_view = None
    return instance


@pytest.fixture
def ip(shell: InteractiveShell, magics: FusionMagics, fusion_env: dict[str, str]) -> InteractiveShell:
    """The shell, configured against the loopback test server."""
    return shell


@pytest.fixture
def fusion_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, remote_env: dict[str, str], server: TestServer
) -> dict[str, str]:
    """Point OpenRouter specs at the test server; no fusion.toml anywhere (the cwd and HOME are temp dirs)."""
    for name in ("OPENROUTER_API_KEY", "OPENROUTER_BASE_URL", "FUSION_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENROUTER_API_KEY", remote_env["OPENROUTER_API_KEY"])
    monkeypatch.setenv("OPENROUTER_BASE_URL", remote_env["OPENROUTER_BASE_URL"])
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return remote_env
