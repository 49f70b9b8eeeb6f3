"""``fusion-lsp --tcp``: several clients at once, a client that leaves mid-request, and the bind address."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from lsp_helpers import BASE_OPTIONS, BUGGY, RawLsp, script_completion, wait_for

from fusion_core.testing.server import TestServer

LISTENING = re.compile(r"fusion-lsp listening on (\S+):(\d+)")


class Listener:
    """A running ``fusion-lsp --tcp`` process and everything it wrote to stderr."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.stderr: list[str] = []
        self.address: tuple[str, int] | None = None
        self._drain = asyncio.create_task(self._read_stderr())

    async def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        while line := await self.process.stderr.readline():
            text = line.decode(errors="replace")
            self.stderr.append(text)
            found = LISTENING.search(text)
            if found and self.address is None:
                self.address = (found.group(1), int(found.group(2)))


@contextlib.asynccontextmanager
async def listening(env: dict[str, str], host: str = "127.0.0.1") -> AsyncIterator[Listener]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fusion_lsp", "--tcp", f"{host}:0", env=env, stderr=asyncio.subprocess.PIPE
    )
    listener = Listener(process)
    try:
        await wait_for(lambda: listener.address or process.returncode is not None, timeout=30)
        assert listener.address is not None, "".join(listener.stderr)
        yield listener
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()
        await listener._drain


async def status(client: RawLsp, msg_id: int) -> dict[str, Any]:
    reply = await client.call(msg_id, "workspace/executeCommand", {"command": "fusion.status"})
    result: dict[str, Any] = reply["result"]
    return result


async def still_serving(listener: Listener, root: Path) -> None:
    """The listener is up and a new client gets a working session."""
    assert listener.process.returncode is None and listener.address is not None
    late = await RawLsp.connect(*listener.address)
    await late.initialize(root, BASE_OPTIONS)
    assert "documents" in await status(late, 1)
    await late.close()


def open_text(client: RawLsp, uri: str, text: str) -> None:
    client.send(
        {
            "jsonrpc": "2.0",
            "method": "textDocument/didOpen",
            "params": {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}},
        }
    )


def completion_at_end(uri: str, text: str) -> dict[str, Any]:
    lines = text.split("\n")
    return {"textDocument": {"uri": uri}, "position": {"line": len(lines) - 1, "character": len(lines[-1])}}


async def test_several_clients_each_get_their_own_session(lsp_env: dict[str, str], tmp_path: Path) -> None:
    async with listening(lsp_env) as listener:
        assert listener.address is not None
        first, second = await RawLsp.connect(*listener.address), await RawLsp.connect(*listener.address)
        await asyncio.gather(first.initialize(tmp_path, BASE_OPTIONS), second.initialize(tmp_path, BASE_OPTIONS))
        uri = (tmp_path / "a.py").as_uri()
        open_text(first, uri, BUGGY)
        # The second client never opened a document: its session does not see the first one's.
        assert (await status(first, 1))["documents"] == 1
        assert (await status(second, 1))["documents"] == 0

        # One client's shutdown and exit end its session only.
        assert (await first.call(2, "shutdown"))["result"] is None
        first.send({"jsonrpc": "2.0", "method": "exit"})
        assert await first.reader.read() == b""  # the server closed this connection
        await first.close()
        assert (await status(second, 3))["documents"] == 0
        await second.close()
        await still_serving(listener, tmp_path)


async def test_a_client_that_leaves_mid_request_harms_no_one(
    lsp_env: dict[str, str], tmp_path: Path, server: TestServer
) -> None:
    script_completion(server, latency_s=30.0)
    async with listening(lsp_env) as listener:
        assert listener.address is not None
        leaving, staying = await RawLsp.connect(*listener.address), await RawLsp.connect(*listener.address)
        await asyncio.gather(leaving.initialize(tmp_path, BASE_OPTIONS), staying.initialize(tmp_path, BASE_OPTIONS))
        text = "def add(a, b):\n    return "
        uri = (tmp_path / "add.py").as_uri()
        open_text(leaving, uri, text)
        leaving.send(
            {"jsonrpc": "2.0", "id": 1, "method": "textDocument/completion", "params": completion_at_end(uri, text)}
        )
        await wait_for(lambda: len(server.log()) == 3, timeout=30)  # the request is in flight upstream
        leaving.writer.transport.abort()  # gone, without shutdown or even a clean close

        # Its server process stopped its work (the upstream requests were cancelled) ...
        await wait_for(lambda: all(entry["disconnected"] for entry in server.log()), timeout=30)
        # ... while the other client and the listener carry on.
        script_completion(server)
        open_text(staying, uri, text)
        reply = await staying.call(2, "textDocument/completion", completion_at_end(uri, text))
        assert [item["label"] for item in reply["result"]["items"]] == ["a + b", "a - b"]
        await staying.close()
        await still_serving(listener, tmp_path)
    assert not [line for line in listener.stderr if "Traceback" in line]


def _other_local_address() -> str | None:
    """A non-loopback address of this machine, if it has one (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: only picks the outgoing interface
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else str(address)


async def test_it_listens_only_on_the_address_given(lsp_env: dict[str, str], tmp_path: Path) -> None:
    async with listening(lsp_env, "127.0.0.1") as listener:
        assert listener.address is not None
        host, port = listener.address
        assert host == "127.0.0.1"
        client = await RawLsp.connect(host, port)
        await client.initialize(tmp_path, BASE_OPTIONS)
        await client.close()
        # Another loopback address (all of 127/8 is this machine on Linux) and, if there is one,
        # the machine's network address: a socket bound to 127.0.0.1 is reachable at neither.
        others = ["127.0.0.2"] + [a for a in [_other_local_address()] if a]
        for other in others:
            with pytest.raises(ConnectionRefusedError):
                await asyncio.open_connection(other, port)
