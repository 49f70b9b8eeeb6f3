"""Malformed frames and messages, sent as raw bytes to the real server: it answers, then answers again."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lsp_helpers import BASE_OPTIONS, RawLsp, frame, request

STATUS = {"command": "fusion.status"}


@pytest_asyncio.fixture
async def raw(lsp_env: dict[str, str], tmp_path: Path) -> AsyncIterator[RawLsp]:
    lsp = await RawLsp.spawn(lsp_env)
    await lsp.initialize(tmp_path, BASE_OPTIONS)
    yield lsp
    await lsp.close()
    # Bad input is answered and logged in one line, never with a traceback.
    assert not [line for line in lsp.stderr if "Traceback" in line], "".join(lsp.stderr)


def status_body(msg_id: int) -> bytes:
    return json.dumps(request(msg_id, "workspace/executeCommand", STATUS)).encode()


def with_length(length: bytes) -> Callable[[bytes], bytes]:
    return lambda body: b"Content-Length: " + length + b"\r\n\r\n" + body


BAD_LENGTHS: dict[str, Callable[[bytes], bytes]] = {
    "too short": lambda body: b"Content-Length: %d\r\n\r\n%s" % (len(body) // 2, body),
    "too long": lambda body: b"Content-Length: %d\r\n\r\n%s" % (len(body) + 500, body),
    "too long by less than a header": lambda body: b"Content-Length: %d\r\n\r\n%s" % (len(body) + 3, body),
    "non-numeric": with_length(b"lots"),
    "negative": with_length(b"-12"),
    "over the limit": with_length(b"99999999999999999"),
    "missing": lambda body: b"Content-Type: application/vscode-jsonrpc\r\n\r\n" + body,
}


@pytest.mark.parametrize("kind", BAD_LENGTHS)
async def test_a_bad_content_length_does_not_make_the_server_deaf(raw: RawLsp, kind: str) -> None:
    raw.send(BAD_LENGTHS[kind](status_body(1)) + frame(status_body(2)))

    seen: list[dict[str, Any]] = []
    while not any(m.get("id") == 2 for m in seen):
        seen.append(await raw.receive())
    assert "documents" in seen[-1]["result"]
    if kind.startswith("too long"):
        # The next frame's header showed where the body really ended: the request was read and answered.
        assert [m["id"] for m in seen] == [1, 2] and "documents" in seen[0]["result"]
    else:
        # The message was lost: the client hears why (id null), once.
        assert [(m["id"], m["error"]["code"]) for m in seen[:-1]] == [(None, -32700)]
    assert "documents" in (await raw.call(3, "workspace/executeCommand", STATUS))["result"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"this is not json", -32700),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "initialize", ', -32700),
        (b"[" * 100_000 + b"]" * 100_000, -32700),  # deeper than the JSON parser recurses
        (b'{"jsonrpc": "2.0", "method": "x", "id": 1, "params": {}}\xff', -32700),
        (b"[1, 2]", -32600),
        (b"{}", -32600),
        (b'{"jsonrpc": "1.0", "id": 7, "method": "fusion/x"}', -32600),
    ],
)
async def test_a_body_that_is_not_a_message_gets_an_error_reply(raw: RawLsp, body: bytes, code: int) -> None:
    raw.send(frame(body))
    reply = await raw.receive()
    expected_id = 7 if b'"id": 7' in body else None
    assert reply["id"] == expected_id and reply["error"]["code"] == code
    assert "documents" in (await raw.call(2, "workspace/executeCommand", STATUS))["result"]


async def test_every_request_gets_exactly_one_response(raw: RawLsp, tmp_path: Path) -> None:
    uri = (tmp_path / "a.py").as_uri()
    doc = {"textDocument": {"uri": uri}}
    raw.send(
        {
            "jsonrpc": "2.0",
            "method": "textDocument/didOpen",
            "params": {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": "x = 1\n"}},
        }
    )
    expected = {
        10: (request(10, "textDocument/completion", {**doc, "position": "here"}), -32602),
        11: (request(11, "textDocument/completion", {**doc, "position": {"line": -1, "character": 0}}), -32602),
        12: (request(12, "textDocument/completion"), -32602),
        13: (request(13, "textDocument/hover", "a string"), -32602),
        14: (request(14, "fusion/noSuchMethod", {}), -32601),
        15: (request(15, "textDocument/didClose", doc), -32600),  # a notification sent as a request
        16: ({"jsonrpc": "2.0", "id": 16, "method": 42}, -32600),
        17: ({"jsonrpc": "2.0", "id": 17, "method": "shutdown", "params": None, "extra": [1]}, None),
    }
    # Bad notifications get no reply at all (JSON-RPC forbids one); they must not disturb the rest.
    raw.send({"jsonrpc": "2.0", "method": "textDocument/didChange", "params": "nonsense"})
    raw.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": []}})
    for message, _ in expected.values():
        raw.send(message)
    answers: dict[int, list[dict[str, Any]]] = {}
    while set(answers) != set(expected):
        reply = await raw.receive()
        answers.setdefault(reply["id"], []).append(reply)
    for msg_id, (_, code) in expected.items():
        assert len(answers[msg_id]) == 1
        assert answers[msg_id][0].get("error", {}).get("code") == code, answers[msg_id]
    assert "position" in answers[10][0]["error"]["message"]

    # After shutdown (id 17), requests are refused, not ignored; exit still ends the process.
    after = await raw.call(18, "workspace/executeCommand", STATUS)
    assert after["error"]["code"] == -32600 and "shutdown" in after["error"]["message"]
    raw.send({"jsonrpc": "2.0", "method": "exit"})
    assert raw.process is not None
    assert await raw.process.wait() == 0
