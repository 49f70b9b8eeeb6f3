"""The front door: Fusion.from_config, run/review/complete (sync and async), and the session's lifetime."""

from __future__ import annotations

import _thread
import asyncio
import json
import threading
import time
from pathlib import Path

import pytest

from fusion_core import Fusion, RunSettings
from fusion_core.completion import CompletionContext, CompletionSettings
from fusion_core.config import parse_config
from fusion_core.events import Notice, RunFinished
from fusion_core.options import EMBEDDED_MODEL, LOCAL_DEFAULT_POOL
from fusion_core.review import ReviewSettings, ReviewTarget
from fusion_core.runlog import RunLog
from fusion_core.testing.server import TestServer

SETTINGS = RunSettings(pool=("mock/alpha", "mock/beta"), judge="mock/judge")
CODE = "def average(values):\n    return sum(values) / len(values)\n"
FINDING = {
    "start_line": 2,
    "end_line": 2,
    "severity": "error",
    "category": "bug",
    "message": "an empty list divides by zero",
    "replacement": None,
}


def portal_threads() -> int:
    return threading.active_count()


def test_with_runs_reviews_and_completes_then_stops_its_loop(server: TestServer, remote_env: dict[str, str]) -> None:
    server.script("script/r1", replies=[json.dumps({"findings": [FINDING]})])
    server.script("script/r2", replies=[json.dumps({"findings": [FINDING]})])
    server.script("script/c1", replies=["len(values)"])
    before = portal_threads()
    with Fusion(env=remote_env) as fusion:
        result = fusion.run("Why is the sky blue?", SETTINGS)
        assert portal_threads() > before  # the session's own loop thread runs the sync calls
        review = fusion.review(ReviewTarget(CODE, path="stats.py"), ReviewSettings(pool=("script/r1", "script/r2")))
        completion = fusion.complete(
            CompletionContext(prefix="n = "), CompletionSettings(pool=("script/c1",), deadline_s=30)
        )
    assert result.ok and result.answer and {c.model for c in result.candidates} == {"mock/alpha", "mock/beta"}
    (finding,) = review.findings
    assert (
        finding.start_line == 2
        and finding.agreement == "2 of 2 models"
        and review.responders == ("script/r1", "script/r2")
    )
    assert [item.text for item in completion.items] == ["len(values)"]
    assert portal_threads() == before  # leaving `with` stopped it


def test_without_with_the_loop_starts_lazily_and_close_stops_it(server: TestServer, remote_env: dict[str, str]) -> None:
    before = portal_threads()
    fusion = Fusion(env=remote_env)
    assert portal_threads() == before  # nothing started until the first sync call
    assert fusion.run("q", SETTINGS).ok
    assert fusion.run("again", SETTINGS).ok  # the same loop serves the next call
    assert portal_threads() == before + 1
    fusion.close()
    assert portal_threads() == before
    fusion.close()  # closing twice is harmless


def test_ctrl_c_cancels_a_sync_review_and_closes_its_request(server: TestServer, remote_env: dict[str, str]) -> None:
    def interrupt_once_the_request_is_in_flight() -> None:
        for _ in range(400):
            if any(e["model"] == "mock/hang" for e in server.log()):
                _thread.interrupt_main()
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=interrupt_once_the_request_is_in_flight, daemon=True)
    with Fusion(env=remote_env) as fusion:
        watcher.start()
        with pytest.raises(KeyboardInterrupt):
            fusion.review(ReviewTarget(CODE), ReviewSettings(pool=("mock/hang",), timeout_s=600))
        watcher.join()
        # The session is still usable after the interrupt.
        assert fusion.run("q", SETTINGS).ok
    for _ in range(100):  # the server notices the hang-up a moment later
        if (hung := [e for e in server.log() if e["model"] == "mock/hang"])[0]["disconnected"]:
            break
        time.sleep(0.05)
    assert hung[0]["disconnected"] is True


async def test_async_with_and_the_async_twins(server: TestServer, remote_env: dict[str, str]) -> None:
    server.script("script/r", replies=[json.dumps({"findings": [FINDING]})])
    async with Fusion(env=remote_env) as fusion:
        result = await fusion.arun("q", SETTINGS)
        review = await fusion.areview(ReviewTarget(CODE), ReviewSettings(pool=("script/r",)))
        # A sync call from inside the running loop works too (what Jupyter and pygls do).
        again = await asyncio.to_thread(fusion.run, "q", SETTINGS)
    assert result.ok and again.ok and [f.message for f in review.findings] == [FINDING["message"]]


def test_from_config_reads_fusion_toml(server: TestServer, remote_env: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "fusion.toml"
    config.write_text(
        'default_pool = "pair"\n[pools.pair]\nmodels = ["mock/alpha", "mock/gamma"]\njudge = "mock/judge"\n'
        'mode = "best-of"\n',
        encoding="utf-8",
    )
    with Fusion.from_config(config, env=remote_env) as fusion:
        result = fusion.run("Which is best?")
    assert result.mode == "best-of" and [c.model for c in result.candidates] == ["mock/alpha", "mock/gamma"]


def test_from_config_finds_the_file_the_cli_finds(
    remote_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "fusion.toml").write_text('default_pool = "one"\n[pools.one]\nmodels = ["mock/alpha"]\n')
    monkeypatch.chdir(tmp_path)
    with Fusion.from_config(env=remote_env) as fusion:
        assert fusion.default_settings().pool == ("mock/alpha",)


def test_from_config_without_file_or_key_is_the_embedded_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("FUSION_CONFIG", raising=False)
    with Fusion.from_config(env={}) as fusion:
        settings = fusion.default_settings()
    assert fusion.config.path is None
    assert settings.pool == LOCAL_DEFAULT_POOL.models and EMBEDDED_MODEL in settings.judge


def test_the_run_log_is_a_sink_of_the_engine(server: TestServer, remote_env: dict[str, str], tmp_path: Path) -> None:
    log = RunLog(tmp_path / "runs.db", source="api")
    with Fusion(env=remote_env, run_log=log) as fusion:
        fusion.run("logged through the engine", SETTINGS)
    with Fusion(env=remote_env) as fusion:
        fusion.run("no sink, not logged", SETTINGS)
    (run,) = log.recent(5)
    assert run.prompt == "logged through the engine" and run.models == ("mock/alpha", "mock/beta")
    assert json.loads(log.result_json(run.id))["answer"] == run.answer


def test_a_broken_sink_is_a_notice_before_the_result(
    server: TestServer, remote_env: dict[str, str], tmp_path: Path
) -> None:
    broken = tmp_path / "runs.db"
    broken.write_bytes(b"this is not a database" * 100)
    with Fusion(env=remote_env, run_log=RunLog(broken)) as fusion:
        events = list(fusion.iter_events("q", SETTINGS))
    assert isinstance(events[-1], RunFinished) and events[-1].result.ok
    assert isinstance(events[-2], Notice) and events[-2].message.startswith("run not logged")


@pytest.mark.local
def test_the_default_front_door_runs_the_embedded_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    with Fusion.from_config(env={}) as fusion:
        result = fusion.run("def add(a, b):")
    assert result.ok and result.answer.strip()
    assert {c.model.split("#")[0] for c in result.candidates} == {EMBEDDED_MODEL}


@pytest.mark.local
def test_closing_unloads_the_local_models_no_other_open_session_holds() -> None:
    from fusion_core.backends.llama.backend import LlamaBackend

    # Its own [local] settings: a model instance no other test's session holds.
    config = parse_config("[local]\nn_ctx = 1536")
    settings = RunSettings(pool=(EMBEDDED_MODEL,), judge="", max_tokens=4)
    other = Fusion(config, env={})
    assert other.run("1 + 1 =", settings).ok
    backend, _ = other.resolver.resolve(EMBEDDED_MODEL)
    assert isinstance(backend, LlamaBackend)
    model = backend.model
    with Fusion(config, env={}) as fusion:
        assert fusion.run("2 + 2 =", settings).ok
    assert model.loaded  # the other session still uses it
    other.close()
    assert not model.loaded
    loads = model.load_count
    with Fusion(config, env={}) as again:  # a later session loads it again
        assert again.run("3 + 3 =", settings).ok
        assert model.loaded and model.load_count == loads + 1
    assert not model.loaded
