"""The SQLite run log: what the CLI records, `fusion logs` and `fusion costs`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fusion_core.errors import ConfigError
from fusion_core.runlog import RunLog, default_log_path
from fusion_core.testing.server import TestServer
from tests.conftest import TEST_KEY


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fusion_core", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_log_path_follows_the_environment(tmp_path: Path) -> None:
    assert default_log_path({"FUSION_NO_LOG": "1"}) is None
    assert default_log_path({"FUSION_LOG_DB": str(tmp_path / "x.db")}) == tmp_path / "x.db"
    assert default_log_path({"XDG_DATA_HOME": str(tmp_path)}) == tmp_path / "fusion" / "runs.db"


def test_cli_runs_are_logged_with_per_model_costs(
    server: TestServer, remote_env: dict[str, str], tmp_path: Path
) -> None:
    env = dict(remote_env, FUSION_LOG_DB=str(tmp_path / "runs.db"))
    results = []
    for prompt in ("first question", "second question"):
        run = cli(env, "run", prompt, "--pool", "mock/alpha,mock/no-credits-402", "--judge", "mock/judge", "--json")
        assert run.returncode == 0, run.stderr
        results.append(json.loads(run.stdout))
    skipped = cli(env, "run", "not logged", "--pool", "mock/alpha", "--judge", "mock/judge", "--no-log")
    assert skipped.returncode == 0

    logs = cli(env, "logs")
    lines = logs.stdout.splitlines()
    assert len(lines) == 2 and "second question" in lines[0] and "first question" in lines[1]
    assert "not logged" not in logs.stdout

    log = RunLog(tmp_path / "runs.db")
    totals = {row.model: row for row in log.totals()}
    alpha_cost = sum(c["usage"]["cost"] for r in results for c in r["candidates"] if c["model"] == "mock/alpha")
    assert totals["mock/alpha"].calls == 2 and totals["mock/alpha"].cost == pytest.approx(alpha_cost)
    assert totals["mock/no-credits-402"].failures == 2
    assert totals["mock/judge"].calls == 2
    costs = cli(env, "costs")
    assert "mock/alpha" in costs.stdout and "mock/judge" in costs.stdout
    latest = log.recent(1)[0]
    assert json.loads(cli(env, "logs", "--id", str(latest.id)).stdout)["answer"] == results[1]["answer"]
    for output in (logs.stdout, costs.stdout, (tmp_path / "runs.db").read_bytes().decode("latin-1")):
        assert TEST_KEY not in output


def test_a_broken_log_costs_a_warning_not_the_answer(
    server: TestServer, remote_env: dict[str, str], tmp_path: Path
) -> None:
    broken = tmp_path / "runs.db"
    broken.write_bytes(b"this is not a database" * 100)
    env = dict(remote_env, FUSION_LOG_DB=str(broken))
    run = cli(env, "run", "q", "--pool", "mock/alpha", "--judge", "mock/judge")
    assert run.returncode == 0 and run.stdout.strip()
    assert "run not logged" in run.stderr and "Traceback" not in run.stderr
    logs = cli(env, "logs")
    assert logs.returncode == 2 and "FUSION_NO_LOG" in logs.stderr and "Traceback" not in logs.stderr


def test_reading_an_absent_log_is_empty(tmp_path: Path) -> None:
    log = RunLog(tmp_path / "missing.db")
    assert log.recent(5) == [] and log.totals() == []
    assert not (tmp_path / "missing.db").exists()
    with pytest.raises(ConfigError):
        log.result_json(1)


def test_no_log_env_turns_logging_off(server: TestServer, remote_env: dict[str, str]) -> None:
    env = dict(remote_env, FUSION_NO_LOG="1")
    env.pop("FUSION_LOG_DB", None)
    run = cli(env, "logs")
    assert run.returncode == 2 and "off" in run.stderr
    assert os.environ.get("FUSION_LOG_DB")  # the autouse fixture isolates every test's log
