"""``%%fuse``, ``%fuse_config`` and ``%fuse_pools`` through a real InteractiveShell and the test server."""

from __future__ import annotations

import _thread
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from rendered import shown_text

from fusion_core.options import RunOptions
from fusion_core.result import FusionResult
from fusion_core.runlog import RunLog
from fusion_core.testing.server import TestServer
from fusion_core.verdicts import BestOfVerdict, MergeVerdict
from fusion_jupyter import FusionMagicError, FusionMagics, FusionOutput, interpolate
from fusion_jupyter.magic import LAST_RESULT_NAME

POOL = "--pool mock/alpha,mock/beta --judge mock/judge"


def fuse(ip: InteractiveShell, line: str, cell: str = "Why is the sky blue?") -> Any:
    return ip.run_cell_magic("fuse", line, cell=cell)


def chat_requests(server: TestServer, model: str) -> list[dict[str, Any]]:
    return [entry for entry in server.log() if entry["model"] == model]


# -- placeholders ------------------------------------------------------------------


def test_interpolate_fills_known_names_keeps_unknown_and_unescapes_braces() -> None:
    namespace = {"lib": "ijson", "n": 3}
    text = interpolate('Compare {lib} in {n} ways; keep {missing}, {{lib}}, {"json": 1} and }}', namespace)
    assert text == 'Compare ijson in 3 ways; keep {missing}, {lib}, {"json": 1} and }'


def test_the_prompt_is_interpolated_from_the_user_namespace(ip: InteractiveShell, server: TestServer) -> None:
    ip.user_ns.update(library_a="ijson", library_b="json-stream")
    fuse(ip, POOL + " --mode merge", "Compare {library_a} and {library_b}; {unknown} {{stays}}")
    sent = chat_requests(server, "mock/alpha")[0]["messages"][-1]["content"]
    assert sent == "Compare ijson and json-stream; {unknown} {stays}"


# -- results, -o and every mode --------------------------------------------------------


def test_o_stores_the_result_and_the_last_result_is_always_kept(ip: InteractiveShell) -> None:
    shown = fuse(ip, POOL + " --mode merge -o res")
    result = ip.user_ns["res"]
    assert isinstance(result, FusionResult) and result.ok
    assert ip.user_ns[LAST_RESULT_NAME] is result
    assert isinstance(shown, FusionOutput) and shown.result is result
    fuse(ip, POOL + " --mode best-of")
    assert ip.user_ns[LAST_RESULT_NAME] is not result
    assert ip.user_ns["res"] is result


def test_o_needs_a_variable_name(ip: InteractiveShell) -> None:
    with pytest.raises(UsageError, match="-o needs a variable name"):
        fuse(ip, POOL + " -o 'not a name'")


@pytest.mark.parametrize("mode", ["best-of", "merge", "debate"])
def test_every_mode(ip: InteractiveShell, server: TestServer, mode: str) -> None:
    fuse(ip, f"{POOL} --mode {mode} --rounds 2 -o res")
    result: FusionResult = ip.user_ns["res"]
    assert result.ok and result.mode == mode
    assert result.judge is not None
    verdict = result.judge.verdict
    if mode == "best-of":
        assert isinstance(verdict, BestOfVerdict)
        assert verdict.winner in {"mock/alpha", "mock/beta"}
        assert set(verdict.scores) == {"mock/alpha", "mock/beta"}
        assert result.answer in {c.text for c in result.candidates}
    else:
        assert result.answer.startswith("Fused: ")
        assert isinstance(verdict, MergeVerdict) and 0.0 <= verdict.confidence <= 1.0
    if mode == "debate":
        assert len(result.rounds) == 2
        assert len(chat_requests(server, "mock/alpha")) == 2


def test_session_defaults_from_fuse_config(ip: InteractiveShell, magics: FusionMagics, capsys: Any) -> None:
    ip.run_line_magic("fuse_config", "--pool mock/gamma,mock/delta --judge mock/judge --mode best-of")
    out = capsys.readouterr().out
    assert "session defaults: --pool mock/gamma,mock/delta --judge mock/judge --mode best-of" in out
    assert "pool mock/gamma, mock/delta" in out
    fuse(ip, "-o res")
    result = ip.user_ns["res"]
    assert result.mode == "best-of"
    assert [c.model for c in result.candidates] == ["mock/gamma", "mock/delta"]
    fuse(ip, "--mode merge -o res")  # the cell's flags win over the defaults
    assert ip.user_ns["res"].mode == "merge"
    ip.run_line_magic("fuse_config", "--reset")
    assert magics.session.defaults == RunOptions()


def test_fuse_config_refuses_unusable_defaults(ip: InteractiveShell, magics: FusionMagics) -> None:
    with pytest.raises(FusionMagicError, match="unknown pool @nope"):
        ip.run_line_magic("fuse_config", "--pool @nope")
    assert magics.session.defaults == RunOptions()


def test_fuse_pools_lists_configured_pools_and_builtin_defaults(ip: InteractiveShell, capsys: Any) -> None:
    Path("fusion.toml").write_text(
        '[pools.review]\nmodels = ["mock/alpha", "mock/beta"]\njudge = "mock/judge"\nmode = "debate"\n'
    )
    ip.run_line_magic("fuse_pools", "")
    out = capsys.readouterr().out
    assert "@review: mock/alpha, mock/beta" in out
    assert "judge mock/judge, mode debate" in out
    assert "local-default" in out and "openrouter-default" in out
    fuse(ip, "--pool @review --rounds 2 -o res")
    assert ip.user_ns["res"].mode == "debate"


def test_help_prints_the_shared_run_options(ip: InteractiveShell, capsys: Any) -> None:
    assert fuse(ip, "--help") is None
    out = capsys.readouterr().out
    for flag in (
        "--pool",
        "--judge",
        "--mode",
        "--rounds",
        "--quorum",
        "--swap",
        "--temperature",
        "--max-tokens",
        "--system",
        "-o NAME",
    ):
        assert flag in out


# -- failures --------------------------------------------------------------------------


def test_partial_failure_keeps_the_survivors(ip: InteractiveShell) -> None:
    shown = fuse(ip, "--pool mock/alpha,mock/no-credits-402,mock/beta --judge mock/judge --mode merge -o res")
    result: FusionResult = ip.user_ns["res"]
    assert result.ok
    failed = {c.model: c for c in result.candidates if not c.ok}
    assert list(failed) == ["mock/no-credits-402"]
    error = failed["mock/no-credits-402"].error
    assert error is not None and error.kind == "no_credits" and error.status == 402
    markdown = shown_text(shown._repr_mimebundle_()["text/markdown"])
    assert "no_credits" in markdown and "402" in markdown and result.answer in markdown


def test_notebook_runs_are_logged_like_the_cli(ip: InteractiveShell, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("FUSION_LOG_DB", str(tmp_path / "notebook.db"))
    fuse(ip, POOL + " -o res", cell="logged from a notebook")
    (run,) = RunLog(tmp_path / "notebook.db").recent(5)
    assert run.prompt == "logged from a notebook" and run.answer == ip.user_ns["res"].answer
    with sqlite3.connect(tmp_path / "notebook.db") as db:
        assert db.execute("SELECT source FROM runs").fetchall() == [("notebook",)]
    db.close()
    monkeypatch.setenv("FUSION_NO_LOG", "1")
    fuse(ip, POOL, cell="not logged")
    assert [r.prompt for r in RunLog(tmp_path / "notebook.db").recent(5)] == ["logged from a notebook"]


def test_all_fail_is_shown_not_raised(ip: InteractiveShell, capsys: Any) -> None:
    outcome = ip.run_cell("%%fuse --pool mock/no-credits-402,mock/auth-401 --judge mock/judge -o res\nHello?")
    captured = capsys.readouterr()
    assert outcome.success
    result: FusionResult = ip.user_ns["res"]
    assert result.status == "all_failed"
    assert "No answer: every candidate failed." in captured.out
    assert "Traceback" not in captured.out + captured.err
    markdown = shown_text(FusionOutput(result)._repr_mimebundle_()["text/markdown"])
    assert "every candidate failed" in markdown and "openrouter.ai/settings/credits" in markdown


def test_judge_failure_keeps_the_candidates(ip: InteractiveShell) -> None:
    shown = fuse(ip, "--pool mock/alpha,mock/beta --judge mock/judge-offformat --mode merge -o res")
    result: FusionResult = ip.user_ns["res"]
    assert result.status == "judge_failed"
    markdown = shown_text(shown._repr_mimebundle_()["text/markdown"])
    assert "the judge failed" in markdown
    assert all(c.text in markdown for c in result.candidates)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("--pool @nope", "fusion: unknown pool @nope"),
        ("--pool mock/alpha --judge mock/judge --quorum 2", "--quorum must be 1..1 for this pool"),
        ("--pool notaspec --judge mock/judge", "'notaspec' is not a model spec"),
    ],
)
def test_expected_errors_are_one_short_message(ip: InteractiveShell, capsys: Any, line: str, expected: str) -> None:
    outcome = ip.run_cell(f"%%fuse {line}\nHello?")
    captured = capsys.readouterr()
    assert isinstance(outcome.error_in_exec, FusionMagicError)
    shown = captured.out + captured.err
    assert expected in shown
    assert "Traceback" not in shown and "File " not in shown
    assert len(shown.strip().splitlines()) <= 3


def test_missing_key_is_one_short_message(
    ip: InteractiveShell, magics: FusionMagics, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.delenv("OPENROUTER_API_KEY")
    magics.view = "widget"
    outcome = ip.run_cell("%%fuse --pool mock/alpha --judge mock/judge\nHello?")
    shown = "".join(capsys.readouterr())
    assert isinstance(outcome.error_in_exec, FusionMagicError)
    assert "OPENROUTER_API_KEY is not set" in shown
    assert "Traceback" not in shown
    assert magics.last_view.widget.layout.display == "none"  # the run never started: no empty view


def test_bad_options_are_usage_errors(ip: InteractiveShell) -> None:
    with pytest.raises(UsageError, match="invalid choice"):
        fuse(ip, "--mode nope")
    with pytest.raises(UsageError, match="--rounds: must be a whole number from 1 to 6, not 0"):
        fuse(ip, "--rounds 0")
    with pytest.raises(UsageError, match="empty"):
        fuse(ip, POOL, cell="   \n")


# -- interruption ------------------------------------------------------------------------


def _interrupt_when(condition: Any, timeout_s: float = 10.0) -> threading.Thread:
    """Raise KeyboardInterrupt in the main (kernel) thread once ``condition()`` holds."""

    def watch() -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                _thread.interrupt_main()
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_interrupt_cancels_every_request_and_keeps_the_panes(
    ip: InteractiveShell, magics: FusionMagics, server: TestServer
) -> None:
    magics.view = "widget"

    def alpha_shown_done_and_hang_in_flight() -> bool:
        view = magics.last_view
        alpha = view is not None and "mock/alpha" in view.panes and view.panes["mock/alpha"].status == "done"
        return alpha and any(e["model"] == "mock/hang" for e in server.log())

    watcher = _interrupt_when(alpha_shown_done_and_hang_in_flight)
    started = time.monotonic()
    with pytest.raises(FusionMagicError, match="interrupted; every in-flight request was cancelled"):
        fuse(ip, "--pool mock/alpha,mock/hang --judge mock/judge -o res")
    watcher.join()
    assert time.monotonic() - started < 10  # mock/hang would hang for 60 s
    deadline = time.monotonic() + 5
    while not (hang := chat_requests(server, "mock/hang"))[0]["disconnected"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hang[0]["disconnected"] is True
    assert "res" not in ip.user_ns or ip.user_ns["res"] is not None
    view = magics.last_view
    assert view is not None and view.state.cancelled
    assert view.panes["mock/hang"].status == "cancelled"
    assert "cancelled" in view.panes["mock/hang"].head.value
    assert view.panes["mock/alpha"].status == "done"
    assert "[alpha]" in view.panes["mock/alpha"].body.value
    assert "cancelled" in view.header.value


def test_interrupt_shows_one_line_and_no_traceback(ip: InteractiveShell, server: TestServer, capsys: Any) -> None:
    watcher = _interrupt_when(lambda: bool(chat_requests(server, "mock/hang")))
    outcome = ip.run_cell("%%fuse --pool mock/hang,mock/slow --judge mock/judge\nHello?")
    watcher.join()
    shown = "".join(capsys.readouterr())
    assert isinstance(outcome.error_in_exec, FusionMagicError)
    assert "fusion: interrupted" in shown
    assert "Traceback" not in shown and "KeyboardInterrupt" not in shown


# -- the fallback MIME bundle and the key ---------------------------------------------------


def test_fallback_bundle_has_plain_text_and_markdown_with_the_answer(ip: InteractiveShell) -> None:
    shown = fuse(ip, POOL + " --mode merge -o res")
    result: FusionResult = ip.user_ns["res"]
    bundle = shown._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/markdown"}
    markdown = shown_text(bundle["text/markdown"])
    assert result.answer in bundle["text/plain"] and result.answer in markdown
    assert "Consensus" not in bundle["text/plain"]  # the verdict analysis is in the markdown
    assert "consensus: All 2 candidates address the question." in markdown
    assert "judge's rationale: Candidate" in markdown
    assert "mock/alpha done" in markdown
    formatted, _ = ip.display_formatter.format(shown)
    assert formatted["text/markdown"] == bundle["text/markdown"]


def test_fallback_bundle_includes_the_widget_view_when_attached(ip: InteractiveShell, magics: FusionMagics) -> None:
    magics.view = "widget"
    fuse(ip, POOL + " --mode best-of -o res")
    bundle = FusionOutput(ip.user_ns["res"], view=magics.last_view)._repr_mimebundle_()
    assert {"text/plain", "text/markdown", "application/vnd.jupyter.widget-view+json"} <= set(bundle)


def test_the_key_never_appears_in_output(
    ip: InteractiveShell, magics: FusionMagics, capfd: Any, fusion_env: dict[str, str]
) -> None:
    key = fusion_env["OPENROUTER_API_KEY"]
    shown = [fuse(ip, "--pool mock/alpha,mock/auth-401,mock/no-credits-402 --judge mock/judge -o res")]
    ip.run_line_magic("fuse_config", "")
    ip.run_line_magic("fuse_pools", "")
    magics.view = "widget"
    shown.append(fuse(ip, "--pool mock/alpha,mock/forbidden-403 --judge mock/auth-401 --mode merge"))
    ip.run_cell("%%fuse --pool openai:gpt-4o\nHi")
    captured = capfd.readouterr()
    everything = captured.out + captured.err + "".join(str(s._repr_mimebundle_()) for s in shown)
    everything += "".join(str(p.head.value) + str(p.body.value) for p in magics.last_view.panes.values())
    assert "OPENROUTER_API_KEY: set" in captured.out
    assert key not in everything
    assert key[:20] not in everything
