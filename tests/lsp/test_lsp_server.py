"""The server's lifecycle: capabilities, startup time, transports and configuration."""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path

import pytest
from lsp_helpers import (
    BASE_OPTIONS,
    EDITORS,
    REVIEW_POOL,
    capabilities,
    fusion_diagnostics,
    open_doc,
    review,
    script_review,
    wait_for,
)
from lsprotocol import types
from pygls.lsp.client import LanguageClient as PyglsClient
from pytest_lsp import ClientServerConfig

from fusion_core.testing.server import TestServer


@pytest.mark.parametrize("editor", EDITORS)
async def test_initialize_advertises_the_fusion_features(start_lsp, editor: str) -> None:
    client = await start_lsp(editor)
    result = client.initialize_result
    caps = result.capabilities

    assert result.server_info.name == "fusion-lsp"
    assert caps.text_document_sync.change == types.TextDocumentSyncKind.Incremental
    assert caps.text_document_sync.save
    actions = caps.code_action_provider
    assert types.CodeActionKind.Source in actions.code_action_kinds
    assert types.CodeActionKind.QuickFix in actions.code_action_kinds
    assert actions.resolve_provider is True
    assert set(caps.execute_command_provider.commands) >= {"fusion.review", "fusion.explain", "fusion.applyFix"}
    assert caps.completion_provider is not None
    assert caps.inline_completion_provider is None  # none of these editors advertises it
    if editor == "emacs":
        assert caps.position_encoding == types.PositionEncodingKind.Utf32  # eglot prefers it


async def test_llama_cpp_is_imported_only_when_a_local_model_is_used(
    lsp_env: dict[str, str], tmp_path: Path, server: TestServer, capfd: pytest.CaptureFixture[str]
) -> None:
    script_review(server)
    config = ClientServerConfig(
        server_command=[sys.executable, "-X", "importtime", "-m", "fusion_lsp"], server_env=lsp_env
    )
    client = await config.start()
    try:
        await client.initialize_session(
            types.InitializeParams(
                capabilities=capabilities("visual_studio_code"),
                root_uri=tmp_path.as_uri(),
                initialization_options=BASE_OPTIONS,
            )
        )
        uri = open_doc(client, tmp_path)
        assert (await review(client, uri))["findings"] == 2
        await client.shutdown_session()
    finally:
        await client.stop()
    imported = capfd.readouterr().err
    assert "fusion_lsp.server" in imported
    assert "llama_cpp" not in imported and "numpy" not in imported


async def test_tcp_transport(lsp_env: dict[str, str], tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fusion_lsp", "--tcp", f"127.0.0.1:{port}", env=lsp_env, stderr=asyncio.subprocess.PIPE
    )
    client = PyglsClient("tcp-test", "1")
    try:
        for _ in range(100):
            try:
                await client.start_tcp("127.0.0.1", port)
                break
            except OSError:
                await asyncio.sleep(0.05)
        result = await client.initialize_async(
            types.InitializeParams(capabilities=capabilities("neovim@v0.7.0"), root_uri=tmp_path.as_uri())
        )
        assert result.server_info.name == "fusion-lsp"
        await client.shutdown_async(None)
        client.exit(None)
        await asyncio.wait_for(client.stop(), 30)  # the server closes this connection ...
        assert process.returncode is None  # ... but one client's exit does not stop the listener
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await client.stop()


async def test_fusion_toml_supplies_the_pools_and_review_on_save(start_lsp, server: TestServer, tmp_path: Path) -> None:
    script_review(server)
    (tmp_path / "fusion.toml").write_text(
        f"[pools.review]\nmodels = {REVIEW_POOL!r}\n".replace("'", '"') + 'judge = "script/judge"\n\n'
        "[lsp]\nreview_on_save = true\npreload_local = false\n"
    )
    client = await start_lsp("neovim@v0.7.0", options={})
    uri = open_doc(client, tmp_path)

    client.text_document_did_save(types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri)))

    diags = await wait_for(lambda: fusion_diagnostics(client, uri))
    assert diags[0].message.endswith("(3 of 3 models)")


async def test_reviews_run_only_on_request_by_default(start_lsp, server: TestServer, tmp_path: Path) -> None:
    script_review(server)
    client = await start_lsp("visual_studio_code")
    uri = open_doc(client, tmp_path)
    client.text_document_did_save(types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri)))
    await asyncio.sleep(0.5)
    assert server.log() == [] and fusion_diagnostics(client, uri) == []


async def test_did_change_configuration_switches_pools(start_lsp, server: TestServer, tmp_path: Path) -> None:
    server.script(
        "script/other",
        replies=[
            '{"findings": [{"start_line": 1, "end_line": 1, "severity": "warning",'
            ' "category": "style", "message": "Name it mean", "replacement": null}]}'
        ],
    )
    client = await start_lsp("visual_studio_code")
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"fusion": {"reviewPool": ["script/other"], "costCapUsd": 1.0}})
    )
    uri = open_doc(client, tmp_path)

    await review(client, uri)

    assert [e["model"] for e in server.log()] == ["script/other"]
    diags = await wait_for(lambda: fusion_diagnostics(client, uri))
    assert diags[0].message == "Name it mean (1 of 1 model)"
    assert diags[0].severity == types.DiagnosticSeverity.Warning  # a pool of one keeps its severity


async def test_bad_settings_are_reported_and_ignored(start_lsp, server: TestServer, tmp_path: Path) -> None:
    script_review(server)
    client = await start_lsp("visual_studio_code", {**BASE_OPTIONS, "reviewOnSave": "yes", "colour": "blue"})
    shown = await wait_for(lambda: len(client.messages) >= 2 and client.messages)
    assert any("reviewOnSave: must be true or false" in m.message for m in shown)
    assert any("unknown setting 'colour'" in m.message for m in shown)
    uri = open_doc(client, tmp_path)
    assert (await review(client, uri))["findings"] == 2


async def test_cost_cap_refuses_a_review_before_any_request(start_lsp, server: TestServer, tmp_path: Path) -> None:
    script_review(server)
    client = await start_lsp("visual_studio_code", {**BASE_OPTIONS, "costCapUsd": 0.000001})
    uri = open_doc(client, tmp_path)

    result = await review(client, uri)

    assert result["findings"] == 0 and "over the cap" in result["error"]
    assert server.log() == []
    shown = await wait_for(lambda: client.messages)
    assert shown[0].type == types.MessageType.Error and "cost_cap_usd" in shown[0].message


async def test_a_broken_fusion_toml_is_reported_with_its_line(start_lsp, server: TestServer, tmp_path: Path) -> None:
    script_review(server)
    (tmp_path / "fusion.toml").write_text('[pools.review]\nmodels = ["a/b"]\nmode = "vote"\n')
    client = await start_lsp("visual_studio_code")
    shown = await wait_for(lambda: client.messages)
    assert shown[0].type == types.MessageType.Error
    assert (
        "fusion.toml:3" in shown[0].message
        and "mode must be one of best-of, merge, debate, not 'vote'" in shown[0].message
    )
    uri = open_doc(client, tmp_path)
    assert (await review(client, uri))["findings"] == 2  # the editor's settings still apply
