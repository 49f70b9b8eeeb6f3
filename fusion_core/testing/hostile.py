"""A hostile OpenAI-compatible server: endpoints that try to exhaust the client.

Fusion reads whatever an endpoint sends, so the tests need an endpoint that
sends the worst of it. Like the ordinary test server (whose mock models and
judge this one also serves, so a pool can mix healthy and hostile members),
each behaviour is chosen by the model name:

=========================  ====================================================
``hostile/endless-line``   ``data: {...`` with no newline, for ever
``hostile/huge-event``     one 100 MB event, then ``[DONE]``
``hostile/endless-content``  valid content chunks, for ever
``hostile/gzip-bomb``      gzip of endless SSE comment lines (~1000:1)
``hostile/error-endless``  HTTP 500 with an endless body
=========================  ====================================================

The ``/models`` catalogue is chosen by the first path segment of the base URL,
``http://127.0.0.1:PORT/<catalog>/api/v1``, one of :data:`CATALOGS`: ``ok``,
``non-objects``, ``deep`` (200k-deep JSON), ``huge-numbers`` (``1e400``),
``bad-prices``, ``not-a-list``, ``endless`` and ``hang`` (trickles a byte
every half second, so no read ever times out). It binds loopback only.

Run it with ``python -m fusion_core.testing.hostile --port 0``, or from
Python with :func:`run_hostile_server`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from fusion_core.testing.catalogue import BUILTIN_MODELS, HttpError, Playback, plan_request, scripted_info
from fusion_core.testing.catalogue import model_info as mock_info
from fusion_core.testing.server import (
    API_PREFIX,
    KEY_ENV,
    SHUTDOWN_TIMEOUT_S,
    STARTUP_TIMEOUT_S,
    _check_auth,
    _error_response,
    _parse_args,
    _QuietDrops,
    _read_banner,
    _serve,
)

__all__ = ["CATALOGS", "HOSTILE_MODELS", "HostileServer", "create_app", "main", "run_hostile_server"]

PIECE_BYTES = 64 * 1024
HUGE_EVENT_BYTES = 100 * 1024 * 1024
CONTENT_CHUNK_CHARS = 16 * 1024
# One block of the gzip bomb inflates to this much; the stream repeats it without end.
BOMB_BLOCK_BYTES = 1024 * 1024
TRICKLE_S = 0.5
DEEP_NESTING = 200_000

HOSTILE_MODELS = (
    "hostile/endless-line",
    "hostile/huge-event",
    "hostile/endless-content",
    "hostile/gzip-bomb",
    "hostile/error-endless",
)
CATALOGS = ("ok", "non-objects", "deep", "huge-numbers", "bad-prices", "not-a-list", "endless", "hang")

Body = Callable[[], AsyncIterator[bytes]]


def _event(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def _content(text: str) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}


async def _endless(prefix: bytes, piece: bytes) -> AsyncIterator[bytes]:
    yield prefix
    while True:
        yield piece
        await asyncio.sleep(0)  # let the server notice a client that hung up


async def _huge_event() -> AsyncIterator[bytes]:
    yield b'data: {"choices": [{"index": 0, "delta": {"content": "'
    piece = b"x" * PIECE_BYTES
    for _ in range(HUGE_EVENT_BYTES // PIECE_BYTES):
        yield piece
        await asyncio.sleep(0)
    yield b'"}, "finish_reason": null}]}\n\n' + b"data: [DONE]\n\n"


def _bomb_blocks() -> tuple[bytes, bytes]:
    """The gzip stream's first block (with the header) and the block it repeats for ever.

    A full flush resets the compressor, so compressing the same input again gives the same bytes.
    """
    line = b": " + b"x" * 1021 + b"\n"
    block = line * (BOMB_BLOCK_BYTES // len(line))
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    first = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    again = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    return first, again


def _stream(body: Body, status: int = 200, media_type: str = "text/event-stream", **headers: str) -> Response:
    # Keyword names use underscores; HTTP header names use hyphens.
    named = {name.replace("_", "-"): value for name, value in headers.items()}
    return StreamingResponse(body(), status_code=status, media_type=media_type, headers=named)


def chat_body(model: str) -> Response | None:
    """The hostile reply for ``model``, or None for a model of the ordinary test server."""
    if model == "hostile/endless-line":
        return _stream(lambda: _endless(b'data: {"choices": [{"delta": {"content": "', b"x" * PIECE_BYTES))
    if model == "hostile/huge-event":
        return _stream(_huge_event)
    if model == "hostile/endless-content":
        return _stream(lambda: _endless(b": hostile\n\n", _event(_content("y" * CONTENT_CHUNK_CHARS))))
    if model == "hostile/gzip-bomb":
        first, again = _bomb_blocks()
        return _stream(lambda: _endless(first, again), content_encoding="gzip")
    if model == "hostile/error-endless":
        return _stream(lambda: _endless(b"<html>", b"e" * PIECE_BYTES), 500, media_type="text/html")
    return None


def _catalog_entries() -> list[dict[str, Any]]:
    hostile = [scripted_info(m).to_json() for m in HOSTILE_MODELS]
    return [info.to_json() for info in BUILTIN_MODELS.values()] + hostile


def catalog_body(kind: str) -> Response:
    """The /models reply of catalogue ``kind``."""
    good = _catalog_entries()
    if kind == "non-objects":
        return JSONResponse({"data": [1, "mock/alpha", None, [], True, {"no": "id"}, {"id": 5}, *good]})
    if kind == "deep":
        return Response('{"data": ' + "[" * DEEP_NESTING + "]" * DEEP_NESTING + "}", media_type="application/json")
    if kind == "huge-numbers":
        entries = json.dumps([{**e, "context_length": 0} for e in good])
        # Numbers json.dumps cannot write: one overflows a float, one has 5000 digits.
        text = entries.replace('"context_length": 0', '"context_length": 1e400', 1)
        text = text.replace('"context_length": 0', '"context_length": ' + "9" * 5000, 1)
        text = text.replace('"context_length": 0', '"context_length": -1e400')
        return Response('{"data": ' + text + "}", media_type="application/json")
    if kind == "bad-prices":
        prices: list[Any] = ["abc", "-1", "NaN", "1e400", {}, [], None, True]
        bad = [{**e, "pricing": {"prompt": prices[i % len(prices)], "completion": "x"}} for i, e in enumerate(good)]
        return JSONResponse({"data": bad})
    if kind == "not-a-list":
        return JSONResponse({"data": {"mock/alpha": good[0]}})
    if kind == "endless":
        entry = json.dumps(good[0]).encode() + b", "
        return _stream(lambda: _endless(b'{"data": [', entry * 64), media_type="application/json")
    if kind == "hang":
        return _stream(_trickle, media_type="application/json")
    return JSONResponse({"data": good})


async def _trickle() -> AsyncIterator[bytes]:
    yield b'{"data": ['
    while True:
        await asyncio.sleep(TRICKLE_S)
        yield b" "


def create_app(key: str | None = None) -> Starlette:
    """The Starlette app; ``key`` (if set) is the only accepted bearer token."""
    calls: dict[str, int] = {}

    async def chat(request: Request) -> Response:
        t0 = time.monotonic()
        error = _check_auth(request, key)
        if error is not None:
            return _error_response(error)
        body = await request.json()
        model = body.get("model") if isinstance(body, dict) else None
        if not isinstance(model, str):
            return _error_response(HttpError(400, "'model' is required"))
        hostile = chat_body(model)
        if hostile is not None:
            return hostile
        info = mock_info(model)
        if info is None:
            return _error_response(HttpError(400, f"{model} is not a valid model ID"))
        index = calls.get(model, 0)
        calls[model] = index + 1
        plan = plan_request(model, body, index, 1.0)
        if isinstance(plan, HttpError):
            return _error_response(plan)
        entry = {"id": f"gen-{model}-{index}", "stream": body.get("stream") is True, "finish_reason": None}
        entry |= {"disconnected": False, "t_disconnect": None, "t_end": None}
        return Playback(plan, info, body["messages"], entry, {}, t0)  # type: ignore[return-value]

    async def models(request: Request) -> Response:
        return catalog_body(request.path_params["catalog"])

    routes = [
        Route("/{catalog}" + API_PREFIX + "/chat/completions", chat, methods=["POST"]),
        Route("/{catalog}" + API_PREFIX + "/models", models, methods=["GET"]),
    ]
    return Starlette(routes=routes)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the hostile server until interrupted (same options as the test server)."""
    args = _parse_args(argv)
    host = "127.0.0.1" if args.host == "localhost" else args.host
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, args.port))
    port = sock.getsockname()[1]
    app = create_app(key=args.key or os.environ.get(KEY_ENV) or None)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", http="h11", loop="asyncio")
    logging.getLogger("uvicorn.error").addFilter(_QuietDrops())
    shown = f"[{host}]" if ":" in host else host
    asyncio.run(_serve(uvicorn.Server(config), sock, f"http://{shown}:{port}/ok{API_PREFIX}"))
    return 0


@dataclass
class HostileServer:
    """A running hostile server; :meth:`base_url` picks the /models behaviour."""

    root_url: str

    def base_url(self, catalog: str = "ok") -> str:
        """OpenAI-style base URL whose /models answers as catalogue ``catalog``."""
        if catalog not in CATALOGS:
            raise ValueError(f"unknown catalogue {catalog!r}; use one of {', '.join(CATALOGS)}")
        return f"{self.root_url}/{catalog}{API_PREFIX}"


@contextlib.contextmanager
def run_hostile_server(*, key: str | None = None) -> Iterator[HostileServer]:
    """Start the hostile server as a subprocess on a free port; stop it on exit."""
    env = {k: v for k, v in os.environ.items() if k != KEY_ENV}
    if key:
        env[KEY_ENV] = key
    repo = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, env.get("PYTHONPATH")) if p)
    command = [sys.executable, "-m", "fusion_core.testing.hostile", "--port", "0"]
    # Leaving the Popen block closes its pipe and waits for the process.
    with (
        tempfile.TemporaryFile() as stderr,
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, env=env) as process,
    ):
        try:
            yield HostileServer(_read_banner(process, stderr, STARTUP_TIMEOUT_S).removesuffix("/ok"))
        finally:
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(SHUTDOWN_TIMEOUT_S)
            process.kill()  # does nothing once the process has exited


if __name__ == "__main__":
    sys.exit(main())
