"""Interrupting a real ipykernel (SIGINT, as JupyterLab's stop button does) while ``%%fuse`` streams."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from fusion_core.testing.server import TestServer

jupyter_client = pytest.importorskip("jupyter_client.manager")

TIMEOUT_S = 30


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, remote_env: dict[str, str]) -> Any:
    for name in ("OPENROUTER_API_KEY", "OPENROUTER_BASE_URL", "FUSION_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENROUTER_API_KEY", remote_env["OPENROUTER_API_KEY"])
    monkeypatch.setenv("OPENROUTER_BASE_URL", remote_env["OPENROUTER_BASE_URL"])
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    manager, client = jupyter_client.start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    try:
        yield manager, client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def _execute(client: Any, code: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run ``code``; return the execute reply and the iopub messages it caused."""
    msg_id = client.execute(code)
    reply = client.get_shell_msg(timeout=TIMEOUT_S)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = client.get_shell_msg(timeout=TIMEOUT_S)
    messages = []
    while True:
        message = client.get_iopub_msg(timeout=TIMEOUT_S)
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        messages.append(message)
        if message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
            return reply["content"], messages


@pytest.mark.timeout(90)
def test_interrupting_the_kernel_cancels_the_run(kernel: Any, server: TestServer) -> None:
    manager, client = kernel
    reply, _ = _execute(client, "%load_ext fusion_jupyter")
    assert reply["status"] == "ok"

    msg_id = client.execute("%%fuse --pool mock/alpha,mock/hang --judge mock/judge -o res\nHello?")
    # Interrupt once the front end was told mock/alpha is done (a pane's class update), so the
    # outcome does not depend on timing; mock/hang is in flight for another minute.
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        message = client.get_iopub_msg(timeout=TIMEOUT_S)
        state = message["content"].get("data", {}).get("state", {}) if message["msg_type"] == "comm_msg" else {}
        if "fusion-status-done" in state.get("_dom_classes", ()):
            break
    assert any(e["model"] == "mock/hang" for e in server.log())
    manager.interrupt_kernel()

    reply = client.get_shell_msg(timeout=TIMEOUT_S)
    assert reply["parent_header"]["msg_id"] == msg_id
    content = reply["content"]
    assert content["status"] == "error" and content["ename"] == "FusionMagicError"
    traceback = "\n".join(content["traceback"])
    assert "interrupted; every in-flight request was cancelled" in traceback
    assert "Traceback" not in traceback and "KeyboardInterrupt" not in traceback

    hang = next(e for e in server.log() if e["model"] == "mock/hang")
    deadline = time.monotonic() + 5
    while not hang["disconnected"] and time.monotonic() < deadline:
        time.sleep(0.05)
        hang = next(e for e in server.log() if e["model"] == "mock/hang")
    assert hang["disconnected"] is True

    # The panes were told they are cancelled (comm updates), and the kernel carries on.
    reply, messages = _execute(
        client,
        "print(sorted(p.status for p in "
        "get_ipython().magics_manager.registry['FusionMagics'].last_view.panes.values()))",
    )
    assert reply["status"] == "ok"
    printed = "".join(m["content"].get("text", "") for m in messages if m["msg_type"] == "stream")
    assert printed.strip() == json.dumps(["cancelled", "done"]).replace('"', "'")
