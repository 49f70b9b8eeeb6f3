"""`fusion run` against a hostile endpoint: bounded memory, bounded time, one failed candidate.

Each test runs the real CLI as a subprocess against
:mod:`fusion_core.testing.hostile`, which mixes hostile models with the
ordinary mock models, and measures the child's peak RSS from a small wrapper
process (see :data:`PEAK_RSS_WRAPPER`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fusion_core.engine import CATALOG_TIMEOUT_S
from fusion_core.testing.hostile import HostileServer, run_hostile_server
from tests.conftest import TEST_KEY

PEAK_RSS_LIMIT_MB = 300
# Python start-up and the judge's reply come on top of --timeout; on a loaded CI machine
# they take a few seconds. The defects this guards against ran for minutes.
WALL_MARGIN_S = 10.0
RUN_TIMEOUT_S = 30
HANG_TIMEOUT_S = 4
# The child is killed after this long, so a regression fails the test instead of hanging it.
CLI_DEADLINE_S = 180.0
CATALOG_NOTICE = "model catalogue unavailable"


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str
    peak_rss_mb: float
    wall_s: float

    def json(self) -> Any:
        return json.loads(self.stdout)


# Runs the command given after the file name, then writes the peak RSS of that child (KiB)
# into the file. Measuring from a small wrapper matters: a child forked straight from pytest
# counts pytest's own resident pages (a loaded local model, say) until it execs.
PEAK_RSS_WRAPPER = """
import resource, subprocess, sys
code = subprocess.run(sys.argv[2:]).returncode
with open(sys.argv[1], "w") as out:
    out.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(code)
"""


def run_cli(env: dict[str, str], *args: str, cwd: Path | None = None) -> Run:
    """Run ``fusion`` to the end and measure its peak RSS and wall time."""
    with tempfile.TemporaryDirectory() as scratch:
        out, err, rss = (Path(scratch) / name for name in ("out", "err", "rss"))
        command = [sys.executable, "-c", PEAK_RSS_WRAPPER, str(rss), sys.executable, "-m", "fusion_cli", *args]
        started = time.monotonic()
        with out.open("wb") as stdout, err.open("wb") as stderr:
            process = subprocess.Popen(
                command,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
            try:
                process.wait(CLI_DEADLINE_S)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # the wrapper and fusion under it
                process.wait()
        wall = time.monotonic() - started
        return Run(
            returncode=process.returncode,
            stdout=out.read_text(errors="replace"),
            stderr=err.read_text(errors="replace"),
            peak_rss_mb=int(rss.read_text() or 0) / 1024 if rss.exists() else float("inf"),
            wall_s=wall,
        )


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileServer]:
    with run_hostile_server(key=TEST_KEY) as server:
        yield server


def env_for(hostile: HostileServer, catalog: str = "ok") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENROUTER_")}
    env.update({"OPENROUTER_API_KEY": TEST_KEY, "OPENROUTER_BASE_URL": hostile.base_url(catalog)})
    return env


def assert_contained(run: Run, timeout_s: float) -> None:
    """Bounded memory and time, and the key in no output (stdout, stderr, run log)."""
    assert "Traceback" not in run.stderr, run.stderr
    assert run.peak_rss_mb < PEAK_RSS_LIMIT_MB, f"peak RSS {run.peak_rss_mb:.0f} MB"
    assert run.wall_s < timeout_s + WALL_MARGIN_S, f"wall {run.wall_s:.1f} s with --timeout {timeout_s}"
    assert TEST_KEY not in run.stdout and TEST_KEY not in run.stderr
    log = Path(os.environ["FUSION_LOG_DB"])
    if log.exists():
        assert TEST_KEY.encode() not in log.read_bytes()


def candidates(run: Run) -> dict[str, dict[str, Any]]:
    return {c["model"]: c for c in run.json()["candidates"]}


def fuse(hostile: HostileServer, pool: str, *, timeout_s: float = RUN_TIMEOUT_S, **kw: Any) -> Run:
    args = ("run", "q", "--pool", pool, "--judge", "mock/judge", "--json", "--timeout", str(timeout_s))
    return run_cli(env_for(hostile, kw.pop("catalog", "ok")), *args, **kw)


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("hostile/endless-line", "one line of the event stream exceeded 1 MiB"),
        ("hostile/huge-event", "exceeded 1 MiB"),
        ("hostile/endless-content", "the answer exceeded 4 MiB"),
        ("hostile/gzip-bomb", "exceeded 128 MiB after decompression"),
    ],
)
def test_an_oversized_candidate_fails_alone_as_too_large(hostile: HostileServer, model: str, message: str) -> None:
    run = fuse(hostile, f"mock/alpha,{model}")
    assert_contained(run, RUN_TIMEOUT_S)
    assert run.returncode == 0, run.stderr
    found = candidates(run)
    assert found["mock/alpha"]["status"] == "ok" and run.json()["status"] == "ok"
    failed = found[model]
    assert failed["status"] == "failed" and failed["error"]["kind"] == "too_large"
    assert message in failed["error"]["message"] and "[limits]" in failed["error"]["hint"]
    assert "too_large" in run.stderr


def test_an_endless_error_body_is_read_only_in_part(hostile: HostileServer) -> None:
    run = fuse(hostile, "mock/alpha,hostile/error-endless")
    assert_contained(run, RUN_TIMEOUT_S)
    assert run.returncode == 0, run.stderr
    failed = candidates(run)["hostile/error-endless"]
    assert failed["error"]["kind"] == "upstream" and failed["error"]["status"] == 500
    assert len(failed["error"]["message"]) < 1000


def test_limits_are_read_from_fusion_toml(hostile: HostileServer, tmp_path: Path) -> None:
    (tmp_path / "fusion.toml").write_text("[limits]\nanswer_bytes = 2097152\nresponse_bytes = 16777216\n")
    run = fuse(hostile, "mock/alpha,hostile/endless-content,hostile/gzip-bomb", cwd=tmp_path)
    assert_contained(run, RUN_TIMEOUT_S)
    found = candidates(run)
    assert found["mock/alpha"]["status"] == "ok"
    assert "the answer exceeded 2 MiB" in found["hostile/endless-content"]["error"]["message"]
    assert "exceeded 16 MiB after decompression" in found["hostile/gzip-bomb"]["error"]["message"]
    assert len(found["hostile/endless-content"]["text"].encode()) <= 2 * 1024 * 1024


def test_a_bad_limit_in_fusion_toml_is_a_usage_error(hostile: HostileServer, tmp_path: Path) -> None:
    (tmp_path / "fusion.toml").write_text('[limits]\nanswer_bytes = "lots"\n')
    run = fuse(hostile, "mock/alpha", cwd=tmp_path)
    assert run.returncode == 2 and "fusion.toml:2" in run.stderr and "answer_bytes" in run.stderr
    assert "Traceback" not in run.stderr


# -- /models ---------------------------------------------------------------------


@pytest.mark.parametrize("catalog", ["non-objects", "huge-numbers", "bad-prices"])
def test_malformed_catalogue_entries_are_skipped(hostile: HostileServer, catalog: str) -> None:
    run = fuse(hostile, "mock/alpha,mock/beta", catalog=catalog)
    assert_contained(run, RUN_TIMEOUT_S)
    assert run.returncode == 0 and run.json()["status"] == "ok", run.stderr
    models = run_cli(env_for(hostile, catalog), "models", "--filter", "mock/")
    assert models.returncode == 0 and "mock/alpha" in models.stdout, models.stderr
    assert "Traceback" not in models.stderr


def test_unknown_prices_are_shown_as_unknown(hostile: HostileServer) -> None:
    models = run_cli(env_for(hostile, "bad-prices"), "models", "--filter", "mock/alpha")
    line = next(row for row in models.stdout.splitlines() if row.startswith("mock/alpha"))
    assert line.split()[-2:] == ["-", "-"]


@pytest.mark.parametrize("catalog", ["deep", "not-a-list", "endless"])
def test_an_unusable_catalogue_costs_one_notice(hostile: HostileServer, catalog: str) -> None:
    run = fuse(hostile, "mock/alpha,mock/beta", catalog=catalog)
    assert_contained(run, RUN_TIMEOUT_S)
    assert run.returncode == 0 and run.json()["status"] == "ok", run.stderr
    assert run.stderr.count(CATALOG_NOTICE) == 1
    assert [w for w in run.json()["warnings"] if CATALOG_NOTICE in w]
    models = run_cli(env_for(hostile, catalog), "models")
    assert models.returncode != 0 and "/models" in models.stderr and "Traceback" not in models.stderr


@pytest.mark.parametrize(("timeout_s", "waited_s"), [(HANG_TIMEOUT_S, HANG_TIMEOUT_S), (60, CATALOG_TIMEOUT_S)])
def test_a_hanging_catalogue_does_not_hold_the_run(hostile: HostileServer, timeout_s: int, waited_s: float) -> None:
    run = fuse(hostile, "mock/alpha,mock/beta", catalog="hang", timeout_s=timeout_s)
    assert_contained(run, waited_s)
    assert run.returncode == 0 and run.json()["status"] == "ok", run.stderr
    assert run.stderr.count(CATALOG_NOTICE) == 1 and f"no answer within {waited_s:g} s" in run.stderr
