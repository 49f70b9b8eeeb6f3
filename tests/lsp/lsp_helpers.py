"""Helpers for the language server tests: scripted reviewers and completers, client shortcuts."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lsprotocol import types
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
