"""Helpers for the language server tests: scripted reviewers and completers, client shortcuts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lsprotocol import converters, types
from pytest_lsp import LanguageClient, client_capabilities

from fusion_core.testing.server import TestServer

SERVER_COMMAND = [sys.executable, "-m", "fusion_lsp"]
EDITORS = ["neovim@v0.7.0", "visual_studio_code", "emacs"]
REVIEW_POOL = ["script/rev-a", "script/rev-b", "script/rev-c"]
COMPLETION_POOL = ["script/cmp-a", "script/cmp-b", "script/cmp-c"]
# Remote pools on the test server; no local model loads unless a test asks for one.
BASE_OPTIONS: dict[str, Any] = {
    "reviewPool": REVIEW_POOL,
    "completionPool": COMPLETION_POOL,
    "preloadLocal": False,
    "debounceS": 0.0,
}

BUGGY = """def average(values):
    total = 0
    for i in range(len(values) + 1):
        total += values[i]
    return total / len(values)


def main():
    print(average([1, 2, 3]))
"""
FIXED_LINE = "    for i in range(len(values)):"


def finding(
    line: int,
    message: str,
    *,
    severity: str = "error",
    category: str = "bug",
    replacement: str | None = None,
    end: int | None = None,
) -> dict[str, Any]:
    return {
        "start_line": line,
        "end_line": end or line,
        "severity": severity,
        "category": category,
        "message": message,
        "replacement": replacement,
    }


def findings_reply(*items: dict[str, Any]) -> str:
    return json.dumps({"findings": list(items)})


def script_review(server: TestServer, *, latency_s: float = 0.0) -> None:
    """Three reviewers agree on the off-by-one (with the same fix); one adds a lone remark."""
    off_by_one = [
        "Off-by-one: range(len(values) + 1) reads past the end of the list",
        "The loop runs one index past the end of the list and raises IndexError",
        "Off by one in the loop bound: the last iteration indexes past the end",
    ]
    for name, message in zip(["rev-a", "rev-b", "rev-c"], off_by_one, strict=True):
        items = [finding(3, message, replacement=FIXED_LINE)]
        if name == "rev-c":
            items.append(finding(5, "Division by zero when values is empty", severity="warning"))
        server.script(f"script/{name}", replies=[findings_reply(*items)], latency_s=latency_s)


def script_completion(server: TestServer, *, latency_s: float = 0.0) -> None:
    """Two models agree on `a + b`, one says `a - b`."""
    replies = {"cmp-a": "a + b", "cmp-b": "a + b", "cmp-c": "a - b"}
    for name, reply in replies.items():
        server.script(f"script/{name}", replies=[reply], latency_s=latency_s)


def capabilities(editor: str, *, inline: bool = False) -> types.ClientCapabilities:
    caps = client_capabilities(editor)
    if inline:
        assert caps.text_document is not None
        caps.text_document.inline_completion = types.InlineCompletionClientCapabilities()
    return caps


def open_doc(
    client: LanguageClient, tmp_path: Path, text: str = BUGGY, name: str = "stats.py", language: str = "python"
) -> str:
    uri = (tmp_path / name).as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id=language, version=1, text=text)
        )
    )
    return uri


async def review(client: LanguageClient, uri: str, *args: Any) -> Any:
    return await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="fusion.review", arguments=[uri, *args])
    )


async def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll until ``predicate()`` is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {predicate}")
        await asyncio.sleep(interval)


def fusion_diagnostics(client: LanguageClient, uri: str) -> list[types.Diagnostic]:
    return [d for d in client.diagnostics.get(uri, []) if d.source == "fusion"]


def all_text_seen(client: LanguageClient) -> str:
    """Every message, log line and diagnostic the client received, as one string."""
    parts = [m.message for m in client.messages] + [m.message for m in client.log_messages]
    for diags in client.diagnostics.values():
        parts += [d.message + json.dumps(d.data) for d in diags]
    return "\n".join(parts)


async def code_actions(
    client: LanguageClient, uri: str, rng: types.Range, diagnostics: list[types.Diagnostic]
) -> list[types.CodeAction | types.Command]:
    result = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=rng,
            context=types.CodeActionContext(diagnostics=diagnostics),
        )
    )
    return list(result or [])


def _offset(lines: list[str], position: types.Position) -> int:
    return sum(len(line) for line in lines[: position.line]) + position.character


def apply_text_edits(text: str, edits: list[types.TextEdit]) -> str:
    """Apply TextEdits (ASCII text, so any position encoding works) the way an editor does."""
    lines = text.splitlines(keepends=True) + [""]
    spans = sorted(
        ((_offset(lines, e.range.start), _offset(lines, e.range.end), e.new_text) for e in edits), reverse=True
    )
    for start, end, new in spans:
        text = text[:start] + new + text[end:]
    return text


def apply_edit(text: str, edit: types.WorkspaceEdit, uri: str) -> str:
    edits: list[types.TextEdit] = []
    for change in edit.document_changes or []:
        assert isinstance(change, types.TextDocumentEdit) and change.text_document.uri == uri
        edits += [e for e in change.edits if isinstance(e, types.TextEdit)]
    edits += list((edit.changes or {}).get(uri, []))
    assert edits, "the workspace edit changes nothing in the document"
    return apply_text_edits(text, edits)


# -- raw frames: what pytest-lsp cannot send (malformed headers, broken bodies, bad params) --------

RAW_TIMEOUT_S = 20.0


def frame(message: dict[str, Any] | bytes) -> bytes:
    """One LSP frame with a correct Content-Length."""
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


def request(msg_id: int, method: str, params: Any = None) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id, "method": method}
    if params is not None:
        message["params"] = params
    return message


class RawLsp:
    """The real server over raw byte streams (its pipes, or a TCP socket), read with a minimal parser."""

    def __init__(self, reader: asyncio.StreamReader, writer: Any, process: asyncio.subprocess.Process | None) -> None:
        self.reader, self.writer, self.process = reader, writer, process
        self.stderr: list[str] = []  # the spawned server's log lines
        self._drain: asyncio.Task[None] | None = None
        if process is not None and process.stderr is not None:
            self._drain = asyncio.create_task(self._read_stderr(process.stderr))

    async def _read_stderr(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.stderr.append(line.decode(errors="replace"))

    @classmethod
    async def spawn(cls, env: dict[str, str], *extra: str) -> RawLsp:
        process = await asyncio.create_subprocess_exec(
            *SERVER_COMMAND,
            *extra,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        assert process.stdout is not None
        return cls(process.stdout, process.stdin, process)

    @classmethod
    async def connect(cls, host: str, port: int) -> RawLsp:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, None)

    def send(self, data: bytes | dict[str, Any]) -> None:
        self.writer.write(data if isinstance(data, bytes) else frame(data))

    async def receive(self) -> dict[str, Any]:
        """The next response from the server (skipping notifications, answering its requests with null)."""
        while True:
            async with asyncio.timeout(RAW_TIMEOUT_S):
                head = await self.reader.readuntil(b"\r\n\r\n")
                length = int(head.split(b"Content-Length:")[1].split(b"\r\n")[0])
                message: dict[str, Any] = json.loads(await self.reader.readexactly(length))
            if "method" not in message:
                return message
            if "id" in message:
                self.send({"jsonrpc": "2.0", "id": message["id"], "result": None})

    async def response(self, msg_id: int | None) -> dict[str, Any]:
        """The next response with this id (None: an error response with a null id)."""
        while True:
            message = await self.receive()
            if message.get("id") == msg_id:
                return message

    async def call(self, msg_id: int, method: str, params: Any = None) -> dict[str, Any]:
        self.send(request(msg_id, method, params))
        return await self.response(msg_id)

    async def initialize(self, root: Path, options: dict[str, Any] | None = None) -> dict[str, Any]:
        caps = converters.get_converter().unstructure(capabilities("visual_studio_code"))
        result = await self.call(
            0,
            "initialize",
            {"processId": None, "rootUri": root.as_uri(), "capabilities": caps, "initializationOptions": options},
        )
        self.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
        return result

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()
        if self.process is not None:
            try:
                async with asyncio.timeout(10):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._drain is not None:
            await self._drain
