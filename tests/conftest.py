"""Shared fixtures: the loopback OpenRouter-compatible server and a fake key."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from fusion_core.testing.server import TestServer, run_test_server

# Shaped like a real key so redaction is exercised; it is valid only on the test server.
TEST_KEY = "sk-or-v1-" + "5eC7e7" * 10 + "abcd"


@pytest.fixture(autouse=True)
def isolated_run_log(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """CLI runs in tests log to a throwaway database, never the user's own."""
    monkeypatch.setenv("FUSION_LOG_DB", str(tmp_path_factory.mktemp("runlog") / "runs.db"))


@pytest.fixture(scope="session")
def openrouter_server() -> Iterator[TestServer]:
    """One test server for the session; tests call ``.reset()`` when they need a clean log."""
    with run_test_server(key=TEST_KEY) as server:
        yield server


@pytest.fixture
def server(openrouter_server: TestServer) -> TestServer:
    """The session server, reset (log, counters, scripts) for this test."""
    openrouter_server.reset()
    return openrouter_server


@pytest.fixture
def remote_env(server: TestServer) -> dict[str, str]:
    """Environment that points OpenRouter specs at the test server with the test key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENROUTER_")}
    env.update({"OPENROUTER_API_KEY": TEST_KEY, "OPENROUTER_BASE_URL": server.base_url})
    return env
