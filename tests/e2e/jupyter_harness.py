"""Start a throwaway JupyterLab and find a Chromium for the notebook end-to-end test.

Everything JupyterLab writes (settings, workspaces, runtime files, the IPython
profile) goes to a temp dir; nothing in the venv or the home dir is changed.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

CHROMIUM_ENV = "FUSION_CHROMIUM"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
STARTUP_TIMEOUT_S = 45.0
SHUTDOWN_TIMEOUT_S = 10.0
# The news pop-up would cover the page.
USER_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
}


def unavailable(reason: str) -> None:
    """Skip the test, or fail it under CI, where a missing browser is a broken setup."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: install it, e.g. `apt-get install -y chromium`)", pytrace=False)
    pytest.skip(reason)


def chromium_path() -> str:
    """Debian's chromium (or $FUSION_CHROMIUM); `playwright install` cannot download browsers here."""
    path = os.environ.get(CHROMIUM_ENV) or DEFAULT_CHROMIUM
    found = shutil.which(path)
    if found is None:
        unavailable(f"no Chromium at {path}; install Debian's `chromium` or set {CHROMIUM_ENV}")
    assert found is not None
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Lab:
    url: str
    token: str
    root: Path

    def page_url(self, path: str) -> str:
        return f"{self.url}/lab/tree/{path}?token={self.token}"


@contextlib.contextmanager
def run_jupyterlab(root: Path, env: Mapping[str, str]) -> Iterator[Lab]:
    """JupyterLab serving ``root`` on 127.0.0.1 with a random token; kernels inherit ``env``."""
    token, port = secrets.token_hex(16), free_port()
    with tempfile.TemporaryDirectory(prefix="fusion-lab-") as state:
        state_dir = Path(state)
        settings = state_dir / "user-settings"
        for name, value in USER_SETTINGS.items():
            path = settings / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(value))
        lab_env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(state_dir / "config"),
            "JUPYTER_RUNTIME_DIR": str(state_dir / "runtime"),
            # Kernel specs and lab extensions are still found under sys.prefix.
            "JUPYTER_DATA_DIR": str(state_dir / "data"),
            "JUPYTERLAB_SETTINGS_DIR": str(settings),
            "JUPYTERLAB_WORKSPACES_DIR": str(state_dir / "workspaces"),
            "IPYTHONDIR": str(state_dir / "ipython"),
            **env,
        }
        command = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",
            f"--ServerApp.token={token}",
            "--ServerApp.ip=127.0.0.1",
            f"--port={port}",
            "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={root}",
            # Lets the test run JupyterLab commands (run all, change theme) through window.jupyterapp.
            "--LabApp.expose_app_in_browser=True",
        ]
        log = state_dir / "lab.log"
        with log.open("wb") as log_file:
            process = subprocess.Popen(command, env=lab_env, stdout=log_file, stderr=subprocess.STDOUT)
            lab = Lab(url=f"http://127.0.0.1:{port}", token=token, root=root)
            try:
                _wait_ready(lab, process, log)
                yield lab
            finally:
                _stop(lab, process)
                sys.stderr.write(log.read_text(errors="replace")[-4000:])


def _wait_ready(lab: Lab, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    with httpx.Client(trust_env=False, timeout=2) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if client.get(f"{lab.url}/api/status", params={"token": lab.token}).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
    raise RuntimeError(f"JupyterLab did not start within {STARTUP_TIMEOUT_S:.0f} s:\n{log.read_text()[-3000:]}")


def _stop(lab: Lab, process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(httpx.HTTPError), httpx.Client(trust_env=False, timeout=5) as client:
        client.post(f"{lab.url}/api/shutdown", params={"token": lab.token})
    try:
        process.wait(SHUTDOWN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            process.wait(SHUTDOWN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
