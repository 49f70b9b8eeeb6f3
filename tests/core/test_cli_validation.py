"""Issue #8, input validation: one rule per option for flags and fusion.toml, through the real ``fusion``.

Every refusal here must come before any request reaches the loopback server,
exit 2 with one message and no traceback.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fusion_core.testing.server import TestServer
from tests.conftest import TEST_KEY
from tests.core.cli_run import CliRun, fusion

POOL = ("-m", "mock/alpha", "-m", "mock/beta", "--judge", "mock/judge")


def refused(run: CliRun, server: TestServer, *expected: str) -> None:
    """Exit 2, one clear message naming ``expected``, no traceback, nothing sent."""
    assert run.returncode == 2, run.shown
    for text in expected:
        assert text in run.stderr, run.stderr
    assert "Traceback" not in run.shown and TEST_KEY not in run.shown
    assert server.log() == []


def pool_toml(tmp_path: Path, line: str) -> None:
    (tmp_path / "fusion.toml").write_text(
        f'default_pool = "p"\n[pools.p]\nmodels = ["mock/alpha", "mock/beta"]\njudge = "mock/judge"\n{line}\n'
    )


@pytest.mark.parametrize(
    ("flag", "value", "reason"),
    [
        ("--timeout", "nan", "must be a finite number, not nan"),
        ("--timeout", "inf", "must be a finite number, not inf"),
        ("--temperature", "nan", "must be a finite number, not nan"),
        ("--temperature", "-inf", "must be a finite number, not -inf"),
        ("--max-cost", "nan", "must be a finite number, not nan"),
    ],
)
def test_nan_and_infinity_are_refused_as_flags(
    server: TestServer, remote_env: dict[str, str], tmp_path: Path, flag: str, value: str, reason: str
) -> None:
    refused(fusion(remote_env, "run", "q", *POOL, f"{flag}={value}", cwd=tmp_path), server, f"{flag}: {reason}")


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("timeout = nan", "timeout must be a finite number, not nan"),
        ("temperature = inf", "temperature must be a finite number, not inf"),
    ],
)
def test_nan_and_infinity_are_refused_in_fusion_toml(
    server: TestServer, remote_env: dict[str, str], tmp_path: Path, line: str, reason: str
) -> None:
    pool_toml(tmp_path, line)
    refused(fusion(remote_env, "run", "q", cwd=tmp_path), server, "fusion.toml:5", reason)


def test_temperature_is_0_to_2_in_flags_and_config(
    server: TestServer, remote_env: dict[str, str], tmp_path: Path
) -> None:
    reason = "must be a number from 0 to 2, not 5"
    refused(fusion(remote_env, "run", "q", *POOL, "--temperature", "5", cwd=tmp_path), server, reason)
    refused(fusion(remote_env, "run", "q", *POOL, "--temperature", "-0.5", cwd=tmp_path), server, "from 0 to 2")
    pool_toml(tmp_path, "temperature = 5")
    refused(fusion(remote_env, "run", "q", cwd=tmp_path), server, "fusion.toml:5", reason)
    pool_toml(tmp_path, "temperature = 2")
    edge = fusion(remote_env, "run", "q", "--json", cwd=tmp_path)
    assert edge.returncode == 0, edge.stderr
    assert {r["temperature"] for r in server.log() if r["model"] in ("mock/alpha", "mock/beta")} == {2.0}


@pytest.mark.parametrize(
    ("key", "flag", "value", "reason"),
    [
        ("max_tokens", "--max-tokens", "-5", "must be a whole number of at least 1, not -5"),
        ("max_concurrency", "--max-concurrency", "0", "must be a whole number of at least 1, not 0"),
        ("cost_cap_usd", "--max-cost", "-1", "must be a number of at least 0, not -1"),
        ("rounds", "--rounds", "7", "must be a whole number from 1 to 6, not 7"),
        ("quorum", "--quorum", "0", "must be a whole number of at least 1, not 0"),
    ],
)
def test_a_config_key_is_checked_exactly_like_its_flag(
    server: TestServer, remote_env: dict[str, str], tmp_path: Path, key: str, flag: str, value: str, reason: str
) -> None:
    as_flag = fusion(remote_env, "run", "q", *POOL, flag, value, cwd=tmp_path)
    refused(as_flag, server, f"{flag}: {reason}")
    # Top-level keys go above the pool table, pool keys inside it.
    top = key in ("max_concurrency", "cost_cap_usd")
    toml = f"{key} = {value}\n" if top else ""
    toml += '[pools.p]\nmodels = ["mock/alpha", "mock/beta"]\njudge = "mock/judge"\n'
    toml += "" if top else f"{key} = {value}\n"
    (tmp_path / "fusion.toml").write_text(toml)
    in_config = fusion(remote_env, "run", "q", "--pool", "@p", cwd=tmp_path)
    line = 1 if top else 4
    refused(in_config, server, f"fusion.toml:{line}", f"{key} {reason}")


def test_empty_pool_or_judge_is_a_usage_error_not_the_paid_default(
    server: TestServer, remote_env: dict[str, str], tmp_path: Path
) -> None:
    refused(fusion(remote_env, "run", "q", "--pool", "", cwd=tmp_path), server, "--pool: must not be empty")
    refused(fusion(remote_env, "run", "q", "--pool", "  ", cwd=tmp_path), server, "must not be empty")
    judge = fusion(remote_env, "run", "q", "--pool", "mock/alpha,mock/beta", "--judge", "", cwd=tmp_path)
    refused(judge, server, "--judge: must not be empty")
    refused(fusion(remote_env, "run", "q", "-m", "", cwd=tmp_path), server, "must not be empty")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "stdin looks binary"),
        ("café latin-1".encode("latin-1"), "stdin is not UTF-8 text (byte 0xe9 at offset 3)"),
    ],
)
def test_binary_or_non_utf8_stdin_is_one_message_and_exit_2(
    server: TestServer, remote_env: dict[str, str], tmp_path: Path, data: bytes, expected: str
) -> None:
    dash = fusion(remote_env, "run", "-", *POOL, cwd=tmp_path, stdin=data)
    refused(dash, server, expected)
    assert len(dash.stderr.strip().splitlines()) == 2  # the message and the hint
    piped = fusion(remote_env, "run", "explain this", *POOL, "--json", cwd=tmp_path, stdin=data)
    refused(piped, server, expected)
    assert json.loads(piped.stdout)["error"]["kind"] == "config"


def test_cost_cap_in_fusion_toml_refuses_a_big_prompt_before_any_request(
    server: TestServer, remote_env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "fusion.toml").write_text("cost_cap_usd = 0.01\n")
    big = "word " * 200_000  # ~1 MB: about 250k prompt tokens per candidate
    run = fusion(remote_env, "run", "-", *POOL, "--max-tokens", "50", cwd=tmp_path, stdin=big)
    refused(run, server, "over the cap of $0.0100", "--max-cost")


def test_max_cost_is_the_worst_case_and_a_bound_on_what_is_spent(
    server: TestServer, remote_env: dict[str, str], tmp_path: Path
) -> None:
    args = ("run", "Why is the sky blue?", *POOL, "--max-tokens", "60")
    tiny = fusion(remote_env, *args, "--max-cost", "0.000001", cwd=tmp_path)
    refused(tiny, server, "over the cap of $0.000001")
    match = re.search(r"could cost up to \$([0-9.]+)", tiny.stderr)
    assert match, tiny.stderr
    worst = float(match.group(1))
    # A cap just under the stated worst case refuses; the worst case itself runs.
    refused(fusion(remote_env, *args, "--max-cost", f"{worst * 0.97:.6f}", cwd=tmp_path), server, "over the cap")
    ran = fusion(remote_env, *args, "--max-cost", f"{worst}", "--json", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    spent = json.loads(ran.stdout)["usage"]["cost"]
    assert 0 < spent <= worst
    # The flag overrides a stricter cap from fusion.toml.
    (tmp_path / "fusion.toml").write_text("cost_cap_usd = 0.000001\n")
    assert fusion(remote_env, *args, "--max-cost", "1", cwd=tmp_path).returncode == 0


def test_unknown_prices_are_said_not_pretended(server: TestServer, remote_env: dict[str, str], tmp_path: Path) -> None:
    # An endpoint whose catalogue cannot be read (nothing listens on port 9): no prices at all.
    (tmp_path / "fusion.toml").write_text('cost_cap_usd = 1.0\n[endpoints.dark]\nbase_url = "http://127.0.0.1:9/v1"\n')
    run = fusion(remote_env, "run", "q", "-m", "mock/alpha", "-m", "dark:m", "--judge", "mock/judge", cwd=tmp_path)
    refused(run, server, "cannot check dark:m against the cost cap", "no price is listed")
    # Without a cap the run goes on and says what it could not check.
    (tmp_path / "fusion.toml").write_text('[endpoints.dark]\nbase_url = "http://127.0.0.1:9/v1"\n')
    uncapped = fusion(remote_env, "run", "q", "-m", "mock/alpha", "-m", "dark:m", "--judge", "mock/judge", cwd=tmp_path)
    assert uncapped.returncode == 0, uncapped.stderr
    assert "model catalogue unavailable (dark: " in uncapped.stderr


def test_model_names_are_text_not_rich_markup(server: TestServer, remote_env: dict[str, str], tmp_path: Path) -> None:
    # ":m:" is rich's emoji code for Ⓜ; "[bold]" would be markup.
    model = "script/x:m:y"
    server.script(model, default="an answer that says :m: and [bold]x[/bold] literally")
    run = fusion(remote_env, "run", "q", "-m", model, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "Ⓜ" not in run.shown
    assert f"answered (1/1): {model}" in run.stderr
    assert run.stdout.strip() == "an answer that says :m: and [bold]x[/bold] literally"
    bad_spec = fusion(remote_env, "run", "q", "-m", "x:m:y", cwd=tmp_path)
    assert bad_spec.returncode == 2 and "'x:m:y'" in bad_spec.stderr and "Ⓜ" not in bad_spec.stderr


def test_the_live_view_on_a_terminal_shows_names_as_text(
    server: TestServer, remote_env: dict[str, str], tmp_path: Path
) -> None:
    # stderr is a pseudo-terminal here, so rich draws its live table of models.
    model = "script/[bold]x:m:y"
    server.script(model, default="fine")
    primary, secondary = os.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "fusion_cli", "run", "q", "-m", model],
            env={**remote_env, "HOME": str(tmp_path), "FUSION_NO_LOG": "1", "COLUMNS": "200"},
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=secondary,
            timeout=120,
        )
        os.close(secondary)
        screen = _drain(primary)
    finally:
        os.close(primary)
    assert done.returncode == 0 and done.stdout.decode().strip() == "fine"
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)
    assert "Ⓜ" not in plain
    # The table's row for the model (the summary line below it escapes names on its own).
    assert any(model in line and "done" in line for line in plain.splitlines()), plain


def _drain(fd: int) -> str:
    chunks = []
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the terminal's other end is closed and everything was read
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks).decode("utf-8", errors="replace")
