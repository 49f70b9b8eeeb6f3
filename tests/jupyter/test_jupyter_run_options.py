"""The run options the magic shares with the CLI: --max-cost, -m, --option, through a real InteractiveShell."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from fusion_core.result import FusionResult
from fusion_core.testing.server import TestServer
from fusion_jupyter import FusionMagicError, FusionMagics

POOL = "--pool mock/alpha,mock/beta --judge mock/judge --max-tokens 60"


def refused(ip: InteractiveShell, line: str, capsys: Any) -> str:
    outcome = ip.run_cell(f"%%fuse {line}\nWhy is the sky blue?")
    shown = "".join(capsys.readouterr())
    assert isinstance(outcome.error_in_exec, FusionMagicError), shown
    assert "Traceback" not in shown
    return shown


def test_max_cost_refuses_before_any_request(ip: InteractiveShell, server: TestServer, capsys: Any) -> None:
    shown = refused(ip, f"{POOL} --max-cost 0.000001", capsys)
    assert "over the cap of $0.000001" in shown and "could cost up to $" in shown
    assert server.log() == []
    result = ip.run_cell_magic("fuse", f"{POOL} --max-cost 1", cell="Why is the sky blue?")
    assert result.result.status == "ok"


def test_cost_cap_usd_in_fusion_toml_applies_to_the_magic(
    ip: InteractiveShell, server: TestServer, capsys: Any, tmp_path: Path
) -> None:
    (tmp_path / "fusion.toml").write_text("cost_cap_usd = 0.000001\n")  # the cwd of every jupyter test
    assert "over the cap" in refused(ip, POOL, capsys)
    assert server.log() == []
    assert ip.run_cell_magic("fuse", f"{POOL} --max-cost 1", cell="q").result.status == "ok"


def test_max_cost_as_a_session_default(
    ip: InteractiveShell, magics: FusionMagics, server: TestServer, capsys: Any
) -> None:
    ip.run_line_magic("fuse_config", "--max-cost 0.000001")
    assert magics.session.defaults.max_cost == 0.000001
    assert "over the cap" in refused(ip, POOL, capsys)
    assert server.log() == []
    with pytest.raises(UsageError, match="--max-cost: must be a finite number, not nan"):
        ip.run_line_magic("fuse_config", "--max-cost nan")


@pytest.mark.parametrize("view", ["text", "widget"])
def test_one_model_runs_alone(ip: InteractiveShell, magics: FusionMagics, server: TestServer, view: str) -> None:
    magics.view = view
    server.script("script/solo", default="the only answer")
    output = ip.run_cell_magic("fuse", "-m script/solo", cell="q")
    result: FusionResult = output.result
    assert result.status == "ok" and result.judge is None and result.answer == "the only answer"
    assert [entry["model"] for entry in server.log()] == ["script/solo"]


def test_provider_options_pass_through(ip: InteractiveShell, server: TestServer) -> None:
    ip.run_cell_magic("fuse", "-m mock/alpha --option top_p 0.5 -o out", cell="q")
    assert server.log()[0]["params"]["top_p"] == 0.5
    assert ip.user_ns["out"].status == "ok"  # -o stays the magic's output variable


def test_fuse_config_shows_session_defaults_as_the_flags_that_set_them(
    ip: InteractiveShell, magics: FusionMagics, server: TestServer, capsys: Any
) -> None:
    server.script("script/a", default="from a")
    server.script("script/b", default="from b")
    line = "-m script/a -m script/b --judge mock/judge --option top_p 0.5 --swap"
    ip.run_line_magic("fuse_config", line)
    out = capsys.readouterr().out
    # Typed back into %fuse_config, the line it shows sets the same defaults.
    shown = out.split("session defaults: ", 1)[1].splitlines()[0]
    assert shown == "--model script/a --model script/b --judge mock/judge --swap --option top_p 0.5"
    before = magics.session.defaults
    ip.run_line_magic("fuse_config", f"--reset {shown}")
    assert magics.session.defaults == before
    result = ip.run_cell_magic("fuse", "--mode best-of", cell="q").result
    assert [c.model for c in result.candidates] == ["script/a", "script/b"]
    pool_requests = [e for e in server.log() if e["model"] in ("script/a", "script/b")]
    assert len(pool_requests) == 2 and all(e["params"].get("top_p") == 0.5 for e in pool_requests)
