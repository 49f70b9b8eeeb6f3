"""Bad input never kills the server: it answers with an LSP error or an empty result."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from lsp_helpers import (
    BASE_OPTIONS,
    BUGGY,
    EDITORS,
    all_text_seen,
    code_actions,
    fusion_diagnostics,
    open_doc,
    review,
    script_completion,
    script_review,
    wait_for,
)
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from fusion_core.testing.server import TestServer

HERE = types.Position(line=0, character=0)


def completion(uri: str, position: types.Position = HERE) -> types.CompletionParams:
    return types.CompletionParams(text_document=types.TextDocumentIdentifier(uri=uri), position=position)


async def alive(client) -> None:
    """The server still answers requests."""
    status = await client.workspace_execute_command_async(types.ExecuteCommandParams(command="fusion.status"))
    assert "documents" in status


@pytest.mark.parametrize("editor", EDITORS)
async def test_unknown_document(start_lsp, server: TestServer, tmp_path: Path, editor: str) -> None:
    script_completion(server)
    client = await start_lsp(editor, inline=True)
    uri = (tmp_path / "never-opened.py").as_uri()
    (tmp_path / "never-opened.py").write_text("x = 1\n")  # on disk, but not open: still unknown

    result = await client.text_document_completion_async(completion(uri))
    assert not result.items
    inline = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=HERE,
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
        )
    )
    assert inline is None
    assert await code_actions(client, uri, types.Range(start=HERE, end=HERE), []) == []
    with pytest.raises(JsonRpcException, match="not open"):
        await review(client, uri)
    with pytest.raises(JsonRpcException, match="finding is gone"):
        await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="fusion.explain", arguments=[uri, "nope"])
        )
    with pytest.raises(JsonRpcException, match="document URI"):
        await client.workspace_execute_command_async(types.ExecuteCommandParams(command="fusion.review"))
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=5),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text="y = 2\n")],
        )
    )
    client.text_document_did_close(types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri)))
    await alive(client)
    assert server.log() == [] and client.messages == []


async def test_out_of_range_positions(start_lsp, server: TestServer, tmp_path: Path) -> None:
    script_completion(server)
    client = await start_lsp("visual_studio_code", inline=True)
    uri = open_doc(client, tmp_path, "x = 1\n", "small.py")

    far = types.Position(line=10_000, character=3)
    assert not (await client.text_document_completion_async(completion(uri, far))).items
    wide = types.Position(line=0, character=10_000)  # past the end of a line: the end of that line
    assert (await client.text_document_completion_async(completion(uri, wide))).items
    actions = await code_actions(client, uri, types.Range(start=far, end=types.Position(line=20_000, character=0)), [])
    assert [a.title for a in actions] == ["Fusion: review file", "Fusion: review selection"]
    with pytest.raises(JsonRpcException, match="range"):
        await review(client, uri, {"start": {"line": 5}, "end": "nowhere"})
    await alive(client)


async def test_a_5_mb_file(start_lsp, server: TestServer, tmp_path: Path) -> None:
    script_completion(server)
    script_review(server)
    client = await start_lsp("neovim@v0.7.0")
    big = "def f(x):\n    return x * 2  # padding padding padding padding padding\n" * 80_000
    assert len(big) > 5_000_000
    uri = open_doc(client, tmp_path, big + "def add(a, b):\n    return ", "big.py")

    last = types.Position(line=160_001, character=11)
    result = await client.text_document_completion_async(completion(uri, last))
    assert [i.label for i in result.items] == ["a + b", "a - b"]
    sent = server.log()[0]["messages"][-1]["content"]
    assert len(sent) < 10_000  # only the code around the cursor goes out

    with pytest.raises(JsonRpcException, match="too large to review"):
        await review(client, uri)
    assert len(server.log()) == 3  # no review request was sent
    await alive(client)


async def test_binary_content(start_lsp, server: TestServer, tmp_path: Path) -> None:
    script_completion(server)
    client = await start_lsp("visual_studio_code")
    blob = "".join(chr(i) for i in range(256)) * 40
    uri = open_doc(client, tmp_path, blob, "blob.bin", "plaintext")

    assert not (await client.text_document_completion_async(completion(uri))).items
    with pytest.raises(JsonRpcException, match="binary"):
        await review(client, uri)
    assert await code_actions(client, uri, types.Range(start=HERE, end=HERE), [])
    await alive(client)
    assert server.log() == []


async def test_invalid_utf8_from_a_file_and_on_the_wire(start_lsp, server: TestServer, tmp_path: Path) -> None:
    script_completion(server)
    script_review(server)
    client = await start_lsp("visual_studio_code")
    # An editor that read undecodable bytes may pass them on as lone surrogates ("surrogateescape").
    text = "name = 'caf\udce9'\n" + BUGGY
    uri = open_doc(client, tmp_path, text, "latin1.py")
    result = await review(client, uri)
    assert result["findings"] == 2
    assert "caf?" in server.log()[0]["messages"][-1]["content"]

    # Raw bytes that are not UTF-8 inside a message body: repaired, not fatal.
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "method": "textDocument/didOpen",
            "params": {
                "textDocument": {
                    "uri": (tmp_path / "raw.py").as_uri(),
                    "languageId": "python",
                    "version": 1,
                    "text": "RAW",
                }
            },
        }
    ).encode()
    body = body.replace(b"RAW", b"x = '\xff\xfe'\\ndef add(a, b):\\n    return ")
    client.protocol.writer.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    raw_uri = (tmp_path / "raw.py").as_uri()
    items = await client.text_document_completion_async(completion(raw_uri, types.Position(line=2, character=11)))
    assert [i.label for i in items.items] == ["a + b", "a - b"]
    await alive(client)


async def test_a_storm_of_200_changes(start_lsp, server: TestServer, tmp_path: Path) -> None:
    script_review(server)
    client = await start_lsp("visual_studio_code")
    uri = open_doc(client, tmp_path)
    await review(client, uri)
    await wait_for(lambda: len(fusion_diagnostics(client, uri)) == 2)

    version = 1
    for i in range(200):
        version += 1
        # Typing at the top of the file; every tenth keystroke is Enter at the start of the line.
        text, column = ("\n", 0) if i % 10 == 9 else ("x", i % 10)
        pos = types.Position(line=0, character=column)
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[
                    types.TextDocumentContentChangePartial(range=types.Range(start=pos, end=pos), text=text)
                ],
            )
        )

    await alive(client)
    # Twenty new lines above both findings: they moved down by twenty.
    await wait_for(lambda: sorted(d.range.start.line for d in fusion_diagnostics(client, uri)) == [22, 24])
    assert not [m for m in client.messages if m.type == types.MessageType.Error]
    # The server's copy of the text is exactly what the editor has.
    await review(client, uri)
    prompt = server.log()[-1]["messages"][-1]["content"]
    assert "21| xxxxxxxxxdef average(values):\n22|     total = 0\n23|     for i in range(len(values) + 1):" in prompt


async def test_a_hanging_backend(start_lsp, server: TestServer, tmp_path: Path) -> None:
    client = await start_lsp(
        "visual_studio_code",
        {
            **BASE_OPTIONS,
            "reviewPool": ["mock/hang"],
            "reviewTimeoutS": 1.0,
            "completionPool": ["mock/hang"],
            "completionDeadlineS": 0.5,
        },
    )
    uri = open_doc(client, tmp_path)

    result = await asyncio.wait_for(review(client, uri), 10)
    assert result["findings"] == 0
    shown = await wait_for(lambda: client.messages)
    assert len(shown) == 1 and "no model answered" in shown[0].message and "1 s" in shown[0].message

    items = await asyncio.wait_for(client.text_document_completion_async(completion(uri)), 5)
    assert not items.items
    await wait_for(lambda: all(e["disconnected"] for e in server.log()))


async def test_failing_backends_give_one_clear_line_and_never_the_key(
    start_lsp, server: TestServer, tmp_path: Path, lsp_env: dict[str, str], capfd: pytest.CaptureFixture[str]
) -> None:
    key = lsp_env["OPENROUTER_API_KEY"]
    client = await start_lsp(
        "neovim@v0.7.0",
        {**BASE_OPTIONS, "reviewPool": ["mock/down-502", "mock/auth-401"], "completionPool": ["mock/no-credits-402"]},
    )
    uri = open_doc(client, tmp_path)

    await review(client, uri)
    shown = await wait_for(lambda: client.messages)
    assert len(shown) == 1 and "\n" not in shown[0].message
    assert "502" in shown[0].message and "401" in shown[0].message
    for _ in range(3):
        await client.text_document_completion_async(completion(uri))
    failures = [m for m in client.log_messages if "Fusion completion" in m.message]
    assert len(failures) == 1 and "402" in failures[0].message  # once, not once per keystroke

    seen = all_text_seen(client) + capfd.readouterr().err
    assert key not in seen and key[:20] not in seen


async def test_memory_stays_bounded(start_lsp, server: TestServer, tmp_path: Path) -> None:
    script_completion(server)
    script_review(server)
    client = await start_lsp("visual_studio_code")
    before = await client.workspace_execute_command_async(types.ExecuteCommandParams(command="fusion.status"))
    for i in range(150):
        uri = open_doc(client, tmp_path, BUGGY + f"# {i}\n" + "x = 1\n" * 2000, f"f{i}.py")
        if i % 15 == 0:
            await review(client, uri)
        await client.text_document_completion_async(completion(uri, types.Position(line=1, character=4)))
        client.text_document_did_close(types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri)))
    after = await client.workspace_execute_command_async(types.ExecuteCommandParams(command="fusion.status"))

    assert after["documents"] == 0 and after["documents_with_findings"] == 0 and after["findings"] == 0
    assert after["tasks"] == 0 and after["change_logs"] == 0 and after["progress_tokens"] == 0
    assert after["explanations"] == 0 and after["pending_requests"] <= 40
    assert after["rss_kb"] - before["rss_kb"] < 60_000


@pytest.mark.timeout(120)
@pytest.mark.parametrize("size", [64 * 1024, 128 * 1024, 5 * 1024 * 1024])
async def test_a_long_minified_line_gets_a_completion(start_lsp, server: TestServer, tmp_path: Path, size: int) -> None:
    # One long run of word characters then a non-word one: what made r"\w*$" quadratic
    # (64 kB took 17 s, 128 kB 64 s, and 5 MB never answered).
    script_completion(server)
    # A deadline far above the backend's latency, so only the server's own work is measured.
    client = await start_lsp("neovim@v0.7.0", {**BASE_OPTIONS, "completionDeadlineS": 30.0})
    head = 'var blob="' + "QUJD" * (size // 4) + '";function add(a,b){return '
    uri = open_doc(client, tmp_path, head + "\n", "bundle.min.js", "javascript")

    result = await client.text_document_completion_async(completion(uri, types.Position(line=0, character=len(head))))
    assert [i.label for i in result.items] == ["a + b", "a - b"]
    edit = result.items[0].text_edit
    assert edit.range.start == edit.range.end == types.Position(line=0, character=len(head))
    typing = head + "ret"  # a word being typed at the end of the line is kept in the edit
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=typing + "\n")],
        )
    )
    script_completion(server)
    result = await client.text_document_completion_async(completion(uri, types.Position(line=0, character=len(typing))))
    assert result.items[0].text_edit.new_text == "reta + b"
    assert result.items[0].text_edit.range.start.character == len(head)
    await alive(client)
