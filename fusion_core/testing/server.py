"""An OpenRouter-compatible HTTP server for tests, benchmarks and demos.

Run it with ``python -m fusion_core.testing.server --port 0``; it prints one line,
``fusion test server listening on http://127.0.0.1:PORT/api/v1``, and serves
the mock models of :mod:`fusion_core.testing.catalogue` in OpenRouter's wire
format: SSE with ``:`` comments, in-band errors, usage with cost in the last
event, ``X-Generation-Id``, ``/models`` and ``/generation``. It binds loopback only.

Test-control endpoints live under ``/_test/`` (no auth): ``GET /_test/log``,
``POST /_test/reset`` and ``POST /_test/script``. In Python, use
:func:`run_test_server`, which runs the server as a subprocess::

    with run_test_server(key="sk-test") as server:
        httpx.post(server.base_url + "/chat/completions", ...)
        assert server.log()[0]["model"] == "mock/alpha"
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import logging
import os
import queue
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import anyio
import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fusion_core.testing.catalogue import (
    BUILTIN_MODELS,
    ConnectionDropped,
    HttpError,
    ModelInfo,
    Plan,
    Playback,
    model_info,
    plan_request,
    scripted_info,
)
from fusion_core.testing.replies import ScriptedModel

__all__ = ["TestServer", "TestServerError", "create_app", "main", "run_test_server"]

API_PREFIX = "/api/v1"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 0
# A test server has no real auth by default, so it must never be reachable off-host.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# The key travels by environment so it never shows up in a process listing.
KEY_ENV = "FUSION_TEST_SERVER_KEY"
BANNER = "fusion test server listening on "
STARTUP_TIMEOUT_S = 15.0
SHUTDOWN_TIMEOUT_S = 5.0
CONTROL_TIMEOUT_S = 10.0


class TestServerError(RuntimeError):
    """The test server subprocess could not be started or controlled."""

    __test__ = False


class _QuietDrops(logging.Filter):
    """Keep deliberate connection drops out of the server's error log."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ConnectionDropped)


@dataclass
class _State:
    key: str | None
    latency_scale: float
    log: list[dict[str, Any]] = field(default_factory=list)
    generations: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    scripts: dict[str, ScriptedModel] = field(default_factory=dict)
    counter: int = 0

    def reset(self) -> None:
        self.log.clear()
        self.generations.clear()
        self.calls.clear()
        self.scripts.clear()
        self.counter = 0

    def info(self, model: str) -> ModelInfo | None:
        return scripted_info(model) if model in self.scripts else model_info(model)


def _error_response(error: HttpError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers={**error.headers, **(headers or {})})


def _check_auth(request: Request, key: str | None) -> HttpError | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return HttpError(401, "No auth credentials found")
    if key is not None and not hmac.compare_digest(token.strip().encode(), key.encode()):
        return HttpError(401, "Invalid API key")
    return None


def _validate(body: Any) -> HttpError | None:
    if not isinstance(body, dict):
        return HttpError(400, "Request body must be a JSON object")
    if not isinstance(body.get("model"), str) or not body["model"]:
        return HttpError(400, "'model' is required")
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        return HttpError(400, "'messages' must be a non-empty array")
    return None


class _Api:
    """Route handlers sharing one server state."""

    def __init__(self, state: _State) -> None:
        self.state = state

    async def chat(self, request: Request) -> Response:
        """POST /chat/completions."""
        state, t0 = self.state, time.monotonic()
        state.counter += 1
        gen_id = f"gen-{state.counter}"
        entry: dict[str, Any] = {
            "id": gen_id,
            "model": None,
            "stream": False,
            "t_start": time.time(),
            "t_end": None,
            "t_disconnect": None,
            "disconnected": False,
            "status": 200,
            "finish_reason": None,
            "headers": {
                "http-referer": request.headers.get("http-referer"),
                "x-title": request.headers.get("x-title"),
                "authorization_present": "authorization" in request.headers,
            },
            "messages": [],
            "response_format": None,
            "temperature": None,
            "max_tokens": None,
            "seed": None,
            "params": {},
        }
        state.log.append(entry)
        state.generations[gen_id] = {
            "id": gen_id,
            "model": None,
            "total_cost": 0.0,
            "tokens_prompt": 0,
            "tokens_completion": 0,
        }
        body: Any = None
        info: ModelInfo | None = None
        error = _check_auth(request, state.key)
        if error is None:
            try:
                body = await request.json()
            except ValueError:
                error = HttpError(400, "Request body is not valid JSON")
        error = error or _validate(body)
        if error is None:
            core = ("model", "messages", "stream", "response_format", "temperature", "max_tokens", "seed")
            entry.update({k: body.get(k) for k in core}, stream=body.get("stream") is True)
            entry["params"] = {k: v for k, v in body.items() if k not in core}
            state.generations[gen_id]["model"] = body["model"]
            info = state.info(body["model"])
            if info is None:
                error = HttpError(400, f"{body['model']} is not a valid model ID")
        if error is None:
            model = body["model"]
            index = state.calls.get(model, 0)
            state.calls[model] = index + 1
            bearer = request.headers.get("authorization", "").partition(" ")[2].strip()
            script = state.scripts.get(model)
            outcome = plan_request(model, body, index, state.latency_scale, script, bearer=bearer)
            if isinstance(outcome, Plan):
                assert info is not None
                return Playback(outcome, info, body["messages"], entry, state.generations[gen_id], t0)  # type: ignore[return-value]
            error = outcome
        entry.update(status=error.status, t_end=time.time())
        return _error_response(error, {"X-Generation-Id": gen_id})

    async def models(self, request: Request) -> Response:
        """GET /models: the built-in catalogue plus scripted models."""
        infos = list(BUILTIN_MODELS.values()) + [scripted_info(m) for m in self.state.scripts]
        return JSONResponse({"data": [info.to_json() for info in infos]})

    async def generation(self, request: Request) -> Response:
        """GET /generation?id=gen-N."""
        error = _check_auth(request, self.state.key)
        gen_id = request.query_params.get("id")
        if error is None and not gen_id:
            error = HttpError(400, "Missing 'id' query parameter")
        if error is None and gen_id not in self.state.generations:
            error = HttpError(404, f"Generation {gen_id} not found")
        if error is not None:
            return _error_response(error)
        return JSONResponse({"data": self.state.generations[str(gen_id)]})

    async def log(self, request: Request) -> Response:
        """GET /_test/log."""
        return JSONResponse(self.state.log)

    async def reset(self, request: Request) -> Response:
        """POST /_test/reset."""
        self.state.reset()
        return JSONResponse({"ok": True})

    async def script(self, request: Request) -> Response:
        """POST /_test/script."""
        try:
            script = ScriptedModel.from_json(await request.json())
        except ValueError as exc:
            return _error_response(HttpError(400, f"Invalid script: {exc}"))
        self.state.scripts[script.model] = script
        self.state.calls.pop(script.model, None)
        return JSONResponse({"ok": True, "model": script.model})


async def _http_exception(request: Request, exc: Exception) -> Response:
    # Unknown routes and methods get the same error envelope as everything else.
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "Internal error"
    return _error_response(HttpError(status, detail))


def create_app(key: str | None = None, latency_scale: float = 1.0) -> Starlette:
    """The Starlette app; ``key`` (if set) is the only accepted bearer token."""
    api = _Api(_State(key=key, latency_scale=latency_scale))
    routes = [
        Route(f"{API_PREFIX}/chat/completions", api.chat, methods=["POST"]),
        Route(f"{API_PREFIX}/models", api.models, methods=["GET"]),
        Route(f"{API_PREFIX}/generation", api.generation, methods=["GET"]),
        Route("/_test/log", api.log, methods=["GET"]),
        Route("/_test/reset", api.reset, methods=["POST"]),
        Route("/_test/script", api.script, methods=["POST"]),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: _http_exception})


# ---------------------------------------------------------------------------
# Command line


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fusion_core.testing.server", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    parser.add_argument("--host", default=DEFAULT_HOST, choices=LOOPBACK_HOSTS)
    parser.add_argument("--key", default=None, help=f"the only accepted API key (or ${KEY_ENV})")
    parser.add_argument("--latency-scale", type=float, default=1.0, help="multiplies mock delays")
    args = parser.parse_args(argv)
    if args.latency_scale < 0:
        parser.error("--latency-scale must be >= 0")
    return args


async def _serve(server: uvicorn.Server, sock: socket.socket, url: str) -> None:
    # anyio loads its backend on first use; do it now so the first request's timing is exact.
    async with anyio.create_task_group():
        await anyio.sleep(0)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            await task
            raise TestServerError("server stopped during startup")
        await asyncio.sleep(0.005)
    print(BANNER + url, flush=True)
    await task


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until interrupted."""
    args = _parse_args(argv)
    host = "127.0.0.1" if args.host == "localhost" else args.host
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, args.port))
    port = sock.getsockname()[1]
    app = create_app(key=args.key or os.environ.get(KEY_ENV) or None, latency_scale=args.latency_scale)
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        # Pinned so behaviour does not change with whatever extras are installed.
        http="h11",
        loop="asyncio",
        timeout_graceful_shutdown=1,
    )
    logging.getLogger("uvicorn.error").addFilter(_QuietDrops())
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    asyncio.run(_serve(uvicorn.Server(config), sock, f"http://{shown}:{port}{API_PREFIX}"))
    return 0


# ---------------------------------------------------------------------------
# Python harness


@dataclass
class TestServer:
    """A running test server subprocess and sync helpers for its /_test/ endpoints."""

    __test__ = False  # a class named Test* would otherwise be collected by pytest

    root_url: str
    process: subprocess.Popen[bytes] = field(repr=False)
    key: str | None = field(default=None, repr=False)
    http: httpx.Client = field(
        default_factory=lambda: httpx.Client(timeout=CONTROL_TIMEOUT_S, trust_env=False), repr=False
    )

    @property
    def base_url(self) -> str:
        """OpenAI-style base URL, ending in /api/v1."""
        return self.root_url + API_PREFIX

    def log(self) -> list[dict[str, Any]]:
        """Every chat request since the last reset, in order."""
        response = self.http.get(f"{self.root_url}/_test/log")
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()
        return result

    def reset(self) -> None:
        """Clear the log, per-model counters and scripts."""
        self.http.post(f"{self.root_url}/_test/reset").raise_for_status()

    def script(
        self,
        model: str,
        *,
        replies: Sequence[str] = (),
        rules: Sequence[dict[str, str]] = (),
        default: str | None = None,
        latency_s: float = 0.0,
        chunk_delay_s: float = 0.0,
    ) -> None:
        """Register a scripted model: matching ``rules`` first, then ``replies`` in order, then ``default``."""
        body = {
            "model": model,
            "replies": list(replies),
            "rules": list(rules),
            "default": default,
            "latency_s": latency_s,
            "chunk_delay_s": chunk_delay_s,
        }
        response = self.http.post(f"{self.root_url}/_test/script", json=body)
        if response.status_code != 200:
            raise TestServerError(response.json()["error"]["message"])


def _read_banner(process: subprocess.Popen[bytes], stderr: IO[bytes], timeout: float) -> str:
    lines: queue.Queue[bytes] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=timeout).decode(errors="replace")
    except queue.Empty:
        line = ""
    match = re.match(re.escape(BANNER) + r"(http://\S+?)" + re.escape(API_PREFIX), line)
    if match is None:
        process.kill()
        process.wait()
        stderr.seek(0)
        tail = stderr.read().decode(errors="replace")[-2000:]
        raise TestServerError(
            f"test server did not report 'listening on' within {timeout:.0f}s "
            f"(exit code {process.returncode}); stdout: {line!r}; stderr:\n{tail}"
        )
    return match.group(1)


@contextlib.contextmanager
def run_test_server(*, key: str | None = None, latency_scale: float = 1.0) -> Iterator[TestServer]:
    """Start the server as a subprocess on a free port; stop it on exit."""
    env = dict(os.environ)
    env.pop(KEY_ENV, None)
    if key:
        env[KEY_ENV] = key
    # The subprocess must import this very package, wherever the caller's cwd is.
    repo = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, env.get("PYTHONPATH")) if p)
    command = [
        sys.executable,
        "-m",
        "fusion_core.testing.server",
        "--port",
        "0",
        "--latency-scale",
        repr(latency_scale),
    ]
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, env=env)
        try:
            server = TestServer(_read_banner(process, stderr, STARTUP_TIMEOUT_S), process, key)
            with server.http:
                yield server
        finally:
            process.terminate()
            try:
                process.wait(SHUTDOWN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
            stderr.seek(0)
            # Surface server-side tracebacks in the test's captured output.
            sys.stderr.write(stderr.read().decode(errors="replace"))


if __name__ == "__main__":
    sys.exit(main())
