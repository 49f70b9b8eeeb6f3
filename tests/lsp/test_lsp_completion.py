"""Fused completion through the real server: ranking, inline completion, deadline, cancellation."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from lsp_helpers import (
    BASE_OPTIONS,
    EDITORS,
    SERVER_COMMAND,
    apply_text_edits,
    capabilities,
    open_doc,
    script_completion,
    wait_for,
)
from lsprotocol import types
from pytest_lsp import ClientServerConfig

from fusion_core.testing.server import TestServer

CODE = "def add(a, b):\n    return \n\n\nprint(add(1, 2))\n"
CURSOR = types.Position(line=1, character=11)


def completion_params(uri: str, position: types.Position = CURSOR) -> types.CompletionParams:
    return types.CompletionParams(text_document=types.TextDocumentIdentifier(uri=uri), position=position)


def inline_params(uri: str, position: types.Position = CURSOR) -> types.InlineCompletionParams:
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=position,
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
    )


@pytest.mark.parametrize("editor", EDITORS)
async def test_completion_ranks_candidates_by_agreement(
    start_lsp, server: TestServer, tmp_path: Path, editor: str
) -> None:
    script_completion(server)
    client = await start_lsp(editor)
    uri = open_doc(client, tmp_path, CODE, "add.py")

    result = await client.text_document_completion_async(completion_params(uri))

    assert isinstance(result, types.CompletionList) and not result.is_incomplete
    first, second = result.items
    assert first.label == "a + b" and first.detail == "Fusion · 2 of 3 models"
    assert second.label == "a - b" and second.detail == "Fusion · 1 of 3 models"
    assert first.sort_text < second.sort_text
    assert apply_text_edits(CODE, [first.text_edit]) == CODE.replace("return \n", "return a + b\n")
    # Chat models see the code around the cursor, framed, with the cursor marked.
    prompt = server.log()[0]["messages"][-1]["content"]
    assert "    return <|cursor|>\n" in prompt and "print(add(1, 2))" in prompt


async def test_completion_extends_the_word_being_typed(start_lsp, server: TestServer, tmp_path: Path) -> None:
    for name in ("cmp-a", "cmp-b", "cmp-c"):
        server.script(f"script/{name}", replies=["urn a + b"])
    client = await start_lsp("neovim@v0.7.0")
    text = "def add(a, b):\n    ret\n"
    uri = open_doc(client, tmp_path, text, "add.py")

    result = await client.text_document_completion_async(completion_params(uri, types.Position(line=1, character=7)))

    (item,) = result.items
    assert item.label == "return a + b" and item.detail == "Fusion · 3 of 3 models"
    assert apply_text_edits(text, [item.text_edit]) == "def add(a, b):\n    return a + b\n"


async def test_inline_completion_when_the_client_advertises_it(start_lsp, server: TestServer, tmp_path: Path) -> None:
    script_completion(server)
    client = await start_lsp("visual_studio_code", inline=True)
    assert client.initialize_result.capabilities.inline_completion_provider is not None
    uri = open_doc(client, tmp_path, CODE, "add.py")

    result = await client.text_document_inline_completion_async(inline_params(uri))

    assert [item.insert_text for item in result.items] == ["a + b", "a - b"]
    assert result.items[0].range == types.Range(start=CURSOR, end=CURSOR)


async def test_inline_completion_is_not_offered_to_clients_without_it(start_lsp) -> None:
    client = await start_lsp("visual_studio_code")
    assert client.initialize_result.capabilities.inline_completion_provider is None


async def test_completion_triggers_on_code_punctuation(start_lsp) -> None:
    client = await start_lsp("neovim@v0.7.0")
    provider = client.initialize_result.capabilities.completion_provider
    assert provider is not None and list(provider.trigger_characters or []) == [".", "(", "["]


async def test_deadline_cuts_off_a_slow_model(start_lsp, server: TestServer, tmp_path: Path) -> None:
    script_completion(server)
    server.script("script/cmp-c", replies=["a - b"], latency_s=20)
    options = {**BASE_OPTIONS, "completionDeadlineS": 1.5}
    client = await start_lsp("visual_studio_code", options)
    uri = open_doc(client, tmp_path, CODE, "add.py")

    started = time.perf_counter()
    result = await client.text_document_completion_async(completion_params(uri))
    elapsed = time.perf_counter() - started

    assert elapsed < 6.0  # the deadline, not the slow model's 20 s (generous for a loaded CI machine)
    assert [i.label for i in result.items] == ["a + b"] and result.items[0].detail == "Fusion · 2 of 2 models"
    slow = await wait_for(lambda: [e for e in server.log() if e["model"] == "script/cmp-c" and e["disconnected"]])
    assert slow


async def test_at_the_deadline_a_model_still_writing_gives_its_complete_lines(
    start_lsp, server: TestServer, tmp_path: Path
) -> None:
    # The first line arrives within 0.4 s; the rest would take 10 s more.
    reply = "a + b\n" + " ".join(["    # and so on"] * 50)
    server.script("script/streamer", replies=[reply], chunk_delay_s=0.2)
    options = {**BASE_OPTIONS, "completionPool": ["script/streamer"], "completionDeadlineS": 2.5}
    client = await start_lsp("visual_studio_code", options)
    uri = open_doc(client, tmp_path, CODE, "add.py")

    result = await client.text_document_completion_async(completion_params(uri))

    assert [i.label for i in result.items] == ["a + b"]
    assert await wait_for(lambda: server.log()[0]["disconnected"])  # the rest was not waited for


async def test_a_deadline_with_nothing_to_show_is_logged_once(start_lsp, server: TestServer, tmp_path: Path) -> None:
    server.script("script/sleeper", replies=["a + b"] * 2, latency_s=20)
    options = {**BASE_OPTIONS, "completionPool": ["script/sleeper"], "completionDeadlineS": 0.3}
    client = await start_lsp("visual_studio_code", options)
    uri = open_doc(client, tmp_path, CODE, "add.py")

    first = await client.text_document_completion_async(completion_params(uri))
    second = await client.text_document_completion_async(completion_params(uri))

    assert not first.items and not second.items
    logged = [m.message for m in client.log_messages if "deadline passed" in m.message]
    assert logged == [
        "Fusion completion: the 0.3 s deadline passed before any model had a usable suggestion; "
        "raise completionDeadlineS, or use a faster completion pool"
    ]


async def test_quorum_stops_waiting_for_stragglers(start_lsp, server: TestServer, tmp_path: Path) -> None:
    script_completion(server)
    server.script("script/cmp-c", replies=["a - b"], latency_s=20)
    client = await start_lsp("visual_studio_code", {**BASE_OPTIONS, "completionQuorum": 2})
    uri = open_doc(client, tmp_path, CODE, "add.py")

    started = time.perf_counter()
    result = await client.text_document_completion_async(completion_params(uri))

    assert time.perf_counter() - started < 3.0  # not the straggler's 20 s
    assert [i.label for i in result.items] == ["a + b"]


async def test_cancel_request_closes_the_upstream_connections(start_lsp, server: TestServer, tmp_path: Path) -> None:
    script_completion(server, latency_s=20)
    client = await start_lsp("visual_studio_code", {**BASE_OPTIONS, "completionDeadlineS": 30.0})
    uri = open_doc(client, tmp_path, CODE, "add.py")
    future = client.protocol.send_request(types.TEXT_DOCUMENT_COMPLETION, completion_params(uri), msg_id="cmp-1")
    await wait_for(lambda: len(server.log()) == 3)

    cancelled_at = time.time()
    client.cancel_request(types.CancelParams(id="cmp-1"))

    log = await wait_for(
        lambda: (entries := server.log()) and all(e["disconnected"] for e in entries) and entries, timeout=5
    )
    assert max(e["t_disconnect"] for e in log) - cancelled_at < 1.0
    with pytest.raises(Exception, match="cancel"):
        await asyncio.wait_for(asyncio.wrap_future(future), 5)


async def test_a_newer_request_supersedes_the_older_one(start_lsp, server: TestServer, tmp_path: Path) -> None:
    server.script("script/typer", default="never sent", latency_s=20)
    client = await start_lsp(
        "visual_studio_code", {**BASE_OPTIONS, "completionDeadlineS": 30.0, "completionPool": ["script/typer"]}
    )
    uri = open_doc(client, tmp_path, CODE, "add.py")
    first = asyncio.ensure_future(client.text_document_completion_async(completion_params(uri)))
    await wait_for(lambda: len(server.log()) == 1)
    # The user typed on; the editor asks again for the new text.
    change = types.TextDocumentContentChangePartial(range=types.Range(start=CURSOR, end=CURSOR), text="x")
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2), content_changes=[change]
        )
    )
    server.script(
        "script/typer",
        rules=[{"if_contains": "return x<|cursor|>", "reply": " + 1"}],
        default="wrong prompt",
        latency_s=0.1,
    )

    second = await client.text_document_completion_async(completion_params(uri, types.Position(line=1, character=12)))

    old = await asyncio.wait_for(first, 5)
    assert not old.items and old.is_incomplete  # the superseded request gets nothing, never an old answer
    assert [i.label for i in second.items] == ["x + 1"]
    await wait_for(lambda: server.log()[0]["disconnected"], timeout=2)  # its upstream request was cut off


async def test_a_result_for_an_old_version_is_never_sent(start_lsp, server: TestServer, tmp_path: Path) -> None:
    script_completion(server, latency_s=0.4)
    client = await start_lsp("emacs")
    uri = open_doc(client, tmp_path, CODE, "add.py")
    pending = asyncio.ensure_future(client.text_document_completion_async(completion_params(uri)))
    await wait_for(lambda: len(server.log()) == 3)
    change = types.TextDocumentContentChangePartial(
        range=types.Range(start=types.Position(line=4, character=0), end=types.Position(line=4, character=0)),
        text="# later\n",
    )
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2), content_changes=[change]
        )
    )

    result = await pending

    assert not result.items


async def test_debounce_drops_a_burst_before_any_backend_call(start_lsp, server: TestServer, tmp_path: Path) -> None:
    script_completion(server)
    client = await start_lsp("visual_studio_code", {**BASE_OPTIONS, "debounceS": 0.2})
    uri = open_doc(client, tmp_path, CODE, "add.py")

    results = await asyncio.gather(*[client.text_document_completion_async(completion_params(uri)) for _ in range(5)])

    assert [len(r.items) for r in results] == [0, 0, 0, 0, 2]
    assert len(server.log()) == 3  # one round for the last request only


async def test_secrets_are_redacted_before_a_remote_completion(start_lsp, server: TestServer, tmp_path: Path) -> None:
    script_completion(server)
    client = await start_lsp("visual_studio_code")
    secret = "sk-proj-" + "Zq3" * 12
    text = f'OPENAI_KEY = "{secret}"\ndef add(a, b):\n    return \n'
    uri = open_doc(client, tmp_path, text, "add.py")

    result = await client.text_document_completion_async(completion_params(uri, types.Position(line=2, character=11)))

    assert result.items
    prompts = [e["messages"][-1]["content"] for e in server.log()]
    assert all(secret not in p and 'OPENAI_KEY = "REDACTED_SECRET_1"' in p for p in prompts)
    await wait_for(lambda: [m for m in client.log_messages if "redacted 1 secret" in m.message])


@pytest.mark.local
async def test_completion_with_the_embedded_local_model(start_lsp, tmp_path: Path) -> None:
    options = {
        "completionPool": ["local/gemma-3-270m"],
        "reviewPool": ["local/gemma-3-270m"],
        "completionDeadlineS": 20.0,
        "completionMaxTokens": 24,
        "debounceS": 0.0,
    }
    client = await start_lsp("neovim@v0.7.0", options)
    text = "def fibonacci(n):\n    if n < 2:\n        return n\n    return "
    uri = open_doc(client, tmp_path, text, "fib.py")
    # The first request also loads the model (preloaded in the background after initialize).
    result = await client.text_document_completion_async(completion_params(uri, types.Position(line=3, character=11)))

    assert result.items, "the local model suggested nothing"
    assert result.items[0].detail == "Fusion · 1 of 1 models"
    assert result.items[0].text_edit.new_text.strip()


@pytest.mark.local
async def test_completion_with_no_config_and_no_key(start_lsp, lsp_env: dict[str, str], tmp_path: Path) -> None:
    """A first user: an empty folder, no fusion.toml, no key, no settings. The embedded model completes."""
    env = {k: v for k, v in lsp_env.items() if not k.startswith("OPENROUTER_")}
    root = tmp_path / "empty"
    root.mkdir()
    client = await start_lsp("neovim@v0.7.0", {}, root=root, env=env)
    text = "def fibonacci(n):\n    if n < 2:\n        return n\n    return "
    uri = open_doc(client, root, text, "fib.py")
    params = completion_params(uri, types.Position(line=3, character=11))

    # The model started loading at initialize; a request that arrives while it loads may come back empty.
    result = None
    for _ in range(20):
        result = await client.text_document_completion_async(params)
        if result.items:
            break
    else:
        pytest.fail(f"20 completions, no items; the server logged: {[m.message for m in client.log_messages]}")

    item = result.items[0]
    assert item.detail == "Fusion · 1 of 1 models" and "gemma-3-270m" in item.documentation
    assert item.text_edit.new_text.strip()


@pytest.mark.local
async def test_the_local_model_starts_loading_at_initialize(lsp_env: dict[str, str], tmp_path: Path) -> None:
    env = {k: v for k, v in lsp_env.items() if not k.startswith("OPENROUTER_")}
    client = await ClientServerConfig(server_command=SERVER_COMMAND, server_env=env).start()
    params = types.InitializeParams(capabilities=capabilities("neovim@v0.7.0"), root_uri=tmp_path.as_uri())
    # initialize_session would send `initialized` at once; send only `initialize`, as an editor does first.
    client.capabilities = params.capabilities
    try:
        result = await client.initialize_async(params)
        assert result.capabilities.completion_provider is not None
        # No `initialized` yet: the answer came first, and the model loads on its own.
        loaded = await wait_for(
            lambda: [m for m in client.log_messages if m.message == "Fusion: loaded local/gemma-3-270m for completion"],
            timeout=120,
        )
        assert loaded
    finally:
        client.initialized(types.InitializedParams())
        async with asyncio.timeout(10):
            await client.shutdown_session()
        await client.stop()
