"""API keys never leave by any output path: errors, results, the run log, logging, the CLI.

The CLI tests run ``fusion run`` as a subprocess against the loopback test server,
whose ``mock/echo-key-*`` models echo the request's bearer key back: inside a stream
event that is not JSON (quoted by the client's error), and inside a usage value that
makes the client's parser raise (an internal error quoting the exception).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fuzzing import fuzz
from hypothesis import given
from hypothesis import strategies as st

from fusion_core.errors import BadResponse, InternalError
from fusion_core.result import Candidate, ErrorInfo, FusionResult, JudgeOutcome
from fusion_core.secrets import MASK, Secret, register_env_keys, register_key, scrub, scrub_known
from fusion_core.testing.server import TestServer, run_test_server
from fusion_core.usage import Usage
from fusion_core.verdicts import MergeVerdict
from tests.conftest import TEST_KEY

# Not shaped like any provider's key, so no pattern can catch it: only the registry can.
CUSTOM_KEY = "lab-Quokka7" + "Zq9xW4" * 6
ECHO_POOL = ("mock/echo-key-event", "mock/echo-key-usage", "mock/alpha")


def cli(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fusion_cli", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def custom_key_server() -> Iterator[TestServer]:
    """A second endpoint (a self-hosted vLLM, say) that only accepts CUSTOM_KEY."""
    with run_test_server(key=CUSTOM_KEY) as server:
        yield server


# -- the scrubber ---------------------------------------------------------------------


def test_a_registered_key_is_masked_whole_and_cut_off_at_either_end() -> None:
    key = "zz-unit-" + "Mb3kQ9" * 6
    register_key(key)
    assert scrub(f"error: {key}!") == f"error: {MASK}!"
    # A quote that cuts the key (``data[:80]``) or starts inside it still masks what is left.
    assert scrub(f"sent 'prefix {key[:20]}'") == f"sent 'prefix {MASK}'"
    assert scrub(f"'{key[-19:]} suffix'") == f"'{MASK} suffix'"
    assert key[:10] not in scrub(f"x{key[:25]}")
    # Content keeps key-shaped text that is not a registered key; the key itself goes.
    example = "sk-proj-EXAMPLEexample1234"
    assert scrub_known(f"keys look like {example}; yours is {key}") == f"keys look like {example}; yours is {MASK}"
    assert example not in scrub(f"keys look like {example}")


def test_too_short_values_are_not_registered() -> None:
    register_key("abc")
    assert scrub_known("abc abcabc") == "abc abcabc"


def test_environment_keys_are_registered_by_name() -> None:
    value = "env-Pq8sV3" * 3
    register_env_keys({"MY_ENDPOINT_KEY": value, "OTHER": "not-a-key-value"}, ["MY_ENDPOINT_KEY", None, "UNSET"])
    assert scrub_known(f"[{value}]") == f"[{MASK}]"
    assert scrub_known("not-a-key-value") == "not-a-key-value"


def test_a_secret_registers_itself() -> None:
    value = "secret-obj-" + "Hh2Jj5" * 4
    Secret(value)
    assert value not in scrub_known(f"echo {value}")


def test_errors_and_results_are_scrubbed_when_made() -> None:
    key = "zz-result-" + "Tt6Yy1" * 5
    register_key(key)
    assert key not in BadResponse(f"not JSON: {key!r}").message
    assert key not in str(InternalError(f"ValueError: invalid literal for int(): {key!r}"))
    info = ErrorInfo(kind="internal", message=f"boom {key}", hint=f"try {key}")
    assert key not in info.message + info.hint
    candidate = Candidate(model="m", label="A", status="ok", text=f"echo {key}")
    judge = JudgeOutcome(
        model="j", rationale=f"A said {key}", verdict=MergeVerdict(consensus=(f"{key}",)), raw_replies=(key,)
    )
    result = FusionResult(
        mode="merge",
        status="ok",
        answer=f"answer {key}",
        candidates=(candidate,),
        judge=judge,
        usage=Usage(),
        wall_s=0.1,
        warnings=(f"note {key}",),
    )
    assert key not in result.to_json() and key not in result.answer and key not in candidate.text
    assert MASK in result.to_json()


def test_logging_records_are_scrubbed_in_every_logger_and_handler(caplog: pytest.LogCaptureFixture) -> None:
    key = "zz-log-" + "Ww4Ee7" * 5
    register_key(key)
    caplog.set_level(logging.DEBUG)
    logging.getLogger("some.third.party").warning("request failed: %s", key)
    try:
        raise ValueError(f"bad value {key}")
    except ValueError:
        logging.getLogger("fusion_lsp.server").exception("review failed")
    assert key not in caplog.text
    assert "request failed: ********" in caplog.text and "bad value ********" in caplog.text


@pytest.mark.timeout(20)
def test_scrubbing_is_linear_on_a_huge_text() -> None:
    register_key("zz-big-" + "Rr5Ss8" * 5)
    huge = ("sk-" + "a" * 7 + " ") * 200_000 + "zz-big-Rr5Ss8" * 80_000
    scrub(huge)
    scrub_known(huge)


# -- through the real CLI -------------------------------------------------------------


def _outputs(env: dict[str, str], cwd: Path, pool: str, judge: str) -> tuple[str, dict[str, object]]:
    """Everything a user can see of one run: stdout and stderr (plain and --json), the log."""
    plain = cli(env, "run", "why is the sky blue?", "--pool", pool, "--judge", judge, cwd=cwd)
    as_json = cli(env, "run", "why is the sky blue?", "--pool", pool, "--judge", judge, "--json", cwd=cwd)
    assert plain.returncode == 0 and as_json.returncode == 0, plain.stderr + as_json.stderr
    result = json.loads(as_json.stdout)
    logs = cli(env, "logs", cwd=cwd).stdout
    logged = "\n".join(cli(env, "logs", "--id", str(n), cwd=cwd).stdout for n in (1, 2))
    db = sqlite3.connect(env["FUSION_LOG_DB"])
    rows = "\n".join(str(row) for row in db.execute("SELECT * FROM runs"))
    db.close()
    seen = "\n".join([plain.stdout, plain.stderr, as_json.stdout, as_json.stderr, logs, logged, rows])
    return seen, result


def _assert_echoes_failed_without_the_key(seen: str, result: dict[str, object], key: str) -> None:
    candidates = {c["model"].split(":")[-1]: c for c in result["candidates"]}  # type: ignore[attr-defined]
    # The non-JSON event fails that candidate; the usage echo is rejected at the boundary
    # (a token count that is not a number is dropped), so that candidate keeps its answer.
    event = candidates["mock/echo-key-event"]
    assert event["error"] and event["error"]["kind"] == "bad_response", event
    assert "not JSON" in event["error"]["message"]
    assert candidates["mock/echo-key-usage"]["status"] == "ok", candidates["mock/echo-key-usage"]
    assert key not in seen
    assert key[:16] not in seen and key[-16:] not in seen  # nor a cut-off piece of it


def test_openrouter_key_echoed_by_the_endpoint_never_reaches_any_output(
    server: TestServer, remote_env: dict[str, str], tmp_path: Path
) -> None:
    env = dict(remote_env, FUSION_LOG_DB=str(tmp_path / "runs.db"))
    seen, result = _outputs(env, tmp_path, ",".join(ECHO_POOL), "mock/judge")
    _assert_echoes_failed_without_the_key(seen, result, TEST_KEY)


def test_a_custom_endpoint_key_that_looks_like_nothing_is_scrubbed_too(
    custom_key_server: TestServer, tmp_path: Path
) -> None:
    custom_key_server.reset()
    (tmp_path / "fusion.toml").write_text(
        f'[endpoints.lab]\nbase_url = "{custom_key_server.base_url}"\napi_key_env = "LAB_KEY"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENROUTER_")}
    env.update(LAB_KEY=CUSTOM_KEY, FUSION_LOG_DB=str(tmp_path / "runs.db"), HOME=str(tmp_path))
    pool = ",".join(f"lab:{m}" for m in ECHO_POOL)
    seen, result = _outputs(env, tmp_path, pool, "lab:mock/judge")
    _assert_echoes_failed_without_the_key(seen, result, CUSTOM_KEY)


@fuzz
@given(st.text(max_size=200), st.integers(min_value=0, max_value=60), st.text(max_size=200))
def test_fuzz_a_registered_key_never_survives_scrubbing(before: str, cut: int, after: str) -> None:
    key = "zz-fuzz-" + "Nn8Mm2" * 7
    register_key(key)
    whole, head, tail = (scrub(before + piece + after) for piece in (key, key[: 16 + cut], key[-16 - cut :]))
    for text in (whole, head, tail):
        assert key[:16] not in text and key[-16:] not in text
    assert key not in scrub_known(before + key + after)
