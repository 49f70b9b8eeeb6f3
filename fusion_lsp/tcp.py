"""``fusion-lsp --tcp HOST:PORT``: several clients at once, one language-server process each.

pygls 2's TCP server (``JsonRPCServer.start_tcp``) serves one protocol object: a
second connection takes over the first one's writer, they share documents and the
``shutdown`` state, and the first client to disconnect stops the whole server. An LSP
session is one client's conversation (initialize … exit), so the honest way to serve
several is to give each its own session. This listener accepts connections on the
address given, and only there, and pipes each one to a fresh ``fusion-lsp --stdio``
child. A client that disconnects, mid-request or not, ends only its own child; the
listener and the other clients carry on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Sequence

MAX_CLIENTS = 16
CHUNK_BYTES = 64 * 1024
# How long a child may take to exit after its client left before it is killed.
CHILD_EXIT_GRACE_S = 5.0

_log = logging.getLogger(__name__)


def child_command(log_level: str) -> list[str]:
    """The command that serves one connection: this package's server on stdin/stdout."""
    return [sys.executable, "-m", "fusion_lsp", "--stdio", "--log-level", log_level]


def serve_tcp(host: str, port: int, command: Sequence[str]) -> None:
    """Listen on ``host:port`` until interrupted, one ``command`` process per client."""
    try:
        asyncio.run(_listen(host, port, list(command)))
    except KeyboardInterrupt:
        pass


async def _listen(host: str, port: int, command: list[str]) -> None:
    active: set[asyncio.Task[None]] = set()

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(active) >= MAX_CLIENTS:
            _log.warning("refusing a client: %d are connected already", MAX_CLIENTS)
            writer.close()
            return
        active.add(task)
        try:
            await _serve_client(reader, writer, command)
        finally:
            active.discard(task)

    server = await asyncio.start_server(connection, host, port)
    addresses = ", ".join(_address(sock.getsockname()) for sock in server.sockets)
    # The address actually bound (the port if 0 was asked for): editors and tests read this line.
    _log.warning("fusion-lsp listening on %s", addresses)
    async with server:
        await server.serve_forever()


async def _serve_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, command: list[str]) -> None:
    peer = _address(writer.get_extra_info("peername"))
    _log.info("client %s connected", peer)
    child = await asyncio.create_subprocess_exec(
        *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    assert child.stdin is not None and child.stdout is not None
    to_child = asyncio.create_task(_pipe(reader, child.stdin))
    to_client = asyncio.create_task(_pipe(child.stdout, writer))
    try:
        # Either side ending ends the session: the client left, or the server exited.
        await asyncio.wait({to_child, to_client}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        to_child.cancel()
        with contextlib.suppress(Exception):
            child.stdin.close()  # end of input: the child's server stops reading and exits
        try:
            await asyncio.wait_for(child.wait(), CHILD_EXIT_GRACE_S)
        except TimeoutError:
            _log.warning("the server for %s did not exit; killing it", peer)
            child.kill()
            await child.wait()
        to_client.cancel()
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
        _log.info("client %s disconnected", peer)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy bytes until the source ends or the sink goes away."""
    with contextlib.suppress(ConnectionError, OSError):
        while data := await source.read(CHUNK_BYTES):
            sink.write(data)
            await sink.drain()


def _address(sockname: object) -> str:
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        host, port = sockname[0], sockname[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(sockname)
