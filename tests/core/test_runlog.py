"""The SQLite run log: what the CLI records, `fusion logs` and `fusion costs`."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from fusion_core.errors import ConfigError
from fusion_core.runlog import SCHEMA_VERSION, RunLog, default_log_path, migrate
from fusion_core.testing.server import TestServer
from tests.conftest import TEST_KEY


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fusion_cli", *args], env=env, capture_output=True, text=True, timeout=120
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
    header, *lines = logs.stdout.splitlines()
    assert header.split() == ["id", "finished", "mode", "status", "cost", "wall", "models", "prompt"]
    assert len(lines) == 2 and "second question" in lines[0] and "first question" in lines[1]
    assert "mock/alpha, mock/no-credits-402" in lines[0]
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
    shown = cli(env, "logs", "--id", str(latest.id)).stdout
    assert json.loads(shown)["answer"] == results[1]["answer"]
    assert shown.startswith('{\n  "mode": ') and len(shown.splitlines()) > 20  # indented, not one long line
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


def test_logs_search_by_text_and_by_model(server: TestServer, remote_env: dict[str, str], tmp_path: Path) -> None:
    env = dict(remote_env, FUSION_LOG_DB=str(tmp_path / "runs.db"))
    for prompt, pool in (("Why is the SKY blue?", "mock/alpha*2"), ("How do tides work?", "mock/beta,mock/gamma")):
        assert cli(env, "run", prompt, "--pool", pool, "--judge", "mock/judge").returncode == 0

    def rows(*args: str) -> list[str]:
        run = cli(env, "logs", *args)
        assert run.returncode == 0, run.stderr
        return run.stdout.splitlines()[1:]

    assert len(rows()) == 2
    sky = rows("-q", "sky")  # case-insensitive, in the prompt
    assert len(sky) == 1 and "Why is the SKY blue?" in sky[0] and "mock/alpha*2" in sky[0]
    assert len(rows("-q", "[gamma]")) == 1  # in the answer: the mock judge fuses the longest candidate
    assert len(rows("--model", "mock/beta")) == 1 and "tides" in rows("--model", "mock/beta")[0]
    assert len(rows("--model", "judge")) == 2
    assert len(rows("-q", "sky", "--model", "mock/beta")) == 0
    nothing = cli(env, "logs", "-q", "no such text")
    assert nothing.returncode == 0 and nothing.stdout.startswith("no logged run matches")


def test_costs_since_a_date_fold_samples_into_their_model(
    server: TestServer, remote_env: dict[str, str], tmp_path: Path
) -> None:
    db = tmp_path / "runs.db"
    env = dict(remote_env, FUSION_LOG_DB=str(db))
    run = cli(env, "run", "old run", "--pool", "mock/beta", "--judge", "mock/judge", "--json")
    old = json.loads(run.stdout)
    # Backdate the first run by a year, as if it had been logged then.
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE runs SET finished_at = finished_at - 366 * 86400")
    connection.close()
    run = cli(env, "run", "new run", "--pool", "mock/alpha*3,mock/beta", "--judge", "mock/judge", "--json")
    new = json.loads(run.stdout)
    assert {c["model"] for c in new["candidates"]} == {"mock/alpha#1", "mock/alpha#2", "mock/alpha#3", "mock/beta"}

    def table(*args: str) -> dict[str, list[str]]:
        costs = cli(env, "costs", *args)
        assert costs.returncode == 0, costs.stderr
        header, *lines = costs.stdout.splitlines()
        assert header.split()[:3] == ["model", "calls", "failed"]
        return {line.split()[0]: line.split()[1:] for line in lines}

    since = (datetime.now() - timedelta(days=1)).date().isoformat()
    recent = table("--since", since)
    assert set(recent) == {"mock/alpha", "mock/beta", "mock/judge"}  # no mock/alpha#k rows
    alpha_out = sum(c["usage"]["completion_tokens"] for c in new["candidates"] if c["model"].startswith("mock/alpha"))
    assert recent["mock/alpha"][:2] == ["3", "0"] and recent["mock/alpha"][3] == str(alpha_out)
    assert recent["mock/beta"][0] == "1" and recent["mock/judge"][0] == "1"
    everything = table()
    assert everything["mock/beta"][0] == "2" and everything["mock/judge"][0] == "2"
    beta_cost = sum(c["usage"]["cost"] for r in (old, new) for c in r["candidates"] if c["model"] == "mock/beta")
    assert everything["mock/beta"][4] == f"${beta_cost:.6f}"

    future = cli(env, "costs", "--since", "2999-01-01")
    assert future.returncode == 0 and future.stdout.startswith("no runs logged since 2999-01-01")
    bad = cli(env, "costs", "--since", "last tuesday")
    assert bad.returncode == 2 and "is not a date" in bad.stderr and "Traceback" not in bad.stderr


# The log as the first release wrote it: no version table, no source column.
FIRST_SCHEMA = """
CREATE TABLE runs (id INTEGER PRIMARY KEY, finished_at REAL NOT NULL, mode TEXT NOT NULL, status TEXT NOT NULL,
    prompt TEXT NOT NULL, answer TEXT NOT NULL, wall_s REAL NOT NULL, cost REAL, result_json TEXT NOT NULL);
CREATE TABLE calls (run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, model TEXT NOT NULL,
    role TEXT NOT NULL, status TEXT NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
    cost REAL, cost_estimated INTEGER NOT NULL, latency_s REAL);
CREATE INDEX calls_model ON calls(model);
INSERT INTO runs VALUES (1, 1700000000.0, 'merge', 'ok', 'an old question', 'an old answer', 1.5, 0.01, '{}');
INSERT INTO calls VALUES (1, 'mock/alpha', 'candidate', 'ok', 10, 20, 0.01, 0, 0.5);
"""


def test_an_old_log_is_migrated_and_keeps_its_runs(
    server: TestServer, remote_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(FIRST_SCHEMA)
    db.close()
    env = dict(remote_env, FUSION_LOG_DB=str(path))
    logs = cli(env, "logs")
    assert logs.returncode == 0 and "an old question" in logs.stdout
    run = cli(env, "run", "a new question", "--pool", "mock/alpha", "--judge", "mock/judge")
    assert run.returncode == 0, run.stderr
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        rows = db.execute("SELECT prompt, source FROM runs ORDER BY id").fetchall()
    finally:
        db.close()
    assert rows == [("an old question", ""), ("a new question", "cli")]
    assert [r.prompt for r in RunLog(path).recent(5)] == ["a new question", "an old question"]
    assert {t.model: t.calls for t in RunLog(path).totals()}["mock/alpha"] == 2


def test_migrating_twice_changes_nothing(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "new.db")
    try:
        assert migrate(db) == 0
        assert migrate(db) == SCHEMA_VERSION
        assert db.execute("SELECT COUNT(*) FROM schema_version").fetchone() == (1,)
    finally:
        db.close()
