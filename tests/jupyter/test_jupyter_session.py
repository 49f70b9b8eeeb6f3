"""One fusion session per shell: the engine is reused, and the no-key default runs the local model."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

from fusion_core.options import LOCAL_DEFAULT_POOL, LOCAL_NOTICE, RunOptions
from fusion_jupyter import FusionMagics, FusionSession


def options(**given: Any) -> RunOptions:
    return RunOptions(**given)


@pytest.fixture
def session() -> Iterator[FusionSession]:
    fresh = FusionSession()
    yield fresh
    fresh.close()


def test_the_engine_is_reused_until_the_key_changes(
    fusion_env: dict[str, str], session: FusionSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = session.prepare(options(pool="mock/alpha", judge="mock/judge"))
    again = session.prepare(options(pool="mock/beta", judge="mock/judge", mode="best-of"))
    assert again.fusion is first.fusion
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-v1-another-key-0000000000")
    assert session.prepare(options(pool="mock/alpha", judge="mock/judge")).fusion is not first.fusion


def test_the_magic_keeps_one_engine_across_cells(ip: InteractiveShell, magics: FusionMagics) -> None:
    ip.run_cell_magic("fuse", "--pool mock/alpha --judge mock/judge", cell="One?")
    engine = magics.session._fusion
    ip.run_cell_magic("fuse", "--pool mock/beta --judge mock/judge --mode best-of", cell="Two?")
    assert engine is not None and magics.session._fusion is engine


def test_no_key_and_no_config_choose_the_local_model_and_say_so_once(
    fusion_env: dict[str, str], session: FusionSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENROUTER_API_KEY")
    first = session.prepare(options())
    assert first.resolved.settings.pool == LOCAL_DEFAULT_POOL.models
    assert first.resolved.settings.judge == LOCAL_DEFAULT_POOL.judge
    assert first.notice == LOCAL_NOTICE
    assert session.prepare(options()).notice is None


@pytest.mark.local
def test_no_key_runs_the_embedded_model_like_the_cli(
    ip: InteractiveShell, magics: FusionMagics, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.delenv("OPENROUTER_API_KEY")
    shared, magics.session = magics.session, FusionSession()  # a fresh session has not shown the notice
    try:
        ip.run_cell_magic("fuse", "--max-tokens 8 -o res", cell="The capital of France is")
        ip.run_cell_magic("fuse", "--max-tokens 8", cell="The capital of Italy is")
    finally:
        magics.session.close()
        magics.session = shared
    result = ip.user_ns["res"]
    assert result.ok and result.mode == "best-of"
    assert [c.model for c in result.candidates] == [f"local/gemma-3-270m#{i}" for i in (1, 2, 3)]
    assert capsys.readouterr().err.count(LOCAL_NOTICE) == 1
