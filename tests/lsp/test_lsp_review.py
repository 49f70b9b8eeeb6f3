"""Fused code review through the real server: diagnostics, quick fixes, explain, progress, edits."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from lsp_helpers import (
    BASE_OPTIONS,
    BUGGY,
    EDITORS,
    FIXED_LINE,
    apply_edit,
    code_actions,
    finding,
    findings_reply,
    fusion_diagnostics,
    open_doc,
    review,
    script_review,
    wait_for,
)
from lsprotocol import types

from fusion_core.testing.server import TestServer


@pytest.mark.parametrize("editor", EDITORS)
async def test_review_publishes_fused_diagnostics_with_agreement(
    start_lsp, server: TestServer, tmp_path: Path, editor: str
) -> None:
    script_review(server)
    client = await start_lsp(editor)
    uri = open_doc(client, tmp_path)

    result = await review(client, uri)

    assert result["findings"] == 2 and result["agreed"] == 1
    diags = await wait_for(lambda: fusion_diagnostics(client, uri))
    agreed, lone = diags
    assert agreed.range.start.line == 2 and agreed.range.end.line == 2
    assert agreed.range.start.character == 4  # from the first non-blank character
    assert agreed.severity == types.DiagnosticSeverity.Error
    assert agreed.message.endswith("(3 of 3 models)")
    assert agreed.data["models"] == ["script/rev-a", "script/rev-b", "script/rev-c"]
    assert agreed.data["agreement"] == [3, 3]
    assert agreed.code == "bug" and agreed.source == "fusion"
    # One model alone, not severe: a hint.
    assert lone.range.start.line == 4 and lone.severity == types.DiagnosticSeverity.Hint
    assert lone.message.endswith("(1 of 3 models)") and lone.data["models"] == ["script/rev-c"]
    # Every reviewer saw numbered code and was asked for findings JSON.
    requests = [e for e in server.log() if e["model"].startswith("script/rev")]
    assert len(requests) == 3
    assert all(" 3|     for i in range(len(values) + 1):" in e["messages"][-1]["content"] for e in requests)


@pytest.mark.parametrize("editor", EDITORS)
async def test_quick_fix_produces_the_right_edit(start_lsp, server: TestServer, tmp_path: Path, editor: str) -> None:
    script_review(server)
    client = await start_lsp(editor)
    uri = open_doc(client, tmp_path)
    await review(client, uri)
    diags = await wait_for(lambda: fusion_diagnostics(client, uri))

    actions = await code_actions(client, uri, diags[0].range, diags)
    fixes = [a for a in actions if isinstance(a, types.CodeAction) and a.kind == types.CodeActionKind.QuickFix]
    assert len(fixes) == 1
    fix = fixes[0]
    assert "3 of 3 models" in fix.title
    lazy = editor != "emacs"  # Neovim 0.7 and VS Code resolve edits lazily; Emacs 29 does not
    assert (fix.edit is None) == lazy
    if lazy:
        fix = await client.code_action_resolve_async(fix)
    assert fix.edit is not None
    assert apply_edit(BUGGY, fix.edit, uri) == BUGGY.replace("    for i in range(len(values) + 1):", FIXED_LINE)
    titles = [a.title for a in actions]
    assert "Fusion: review file" in titles
    assert any(t.startswith("Fusion: explain finding") for t in titles)


async def test_apply_fix_command_and_review_selection(start_lsp, server: TestServer, tmp_path: Path) -> None:
    script_review(server)
    client = await start_lsp("visual_studio_code")
    uri = open_doc(client, tmp_path)
    selection = {"start": {"line": 0, "character": 0}, "end": {"line": 3, "character": 0}}

    result = await review(client, uri, selection)

    assert result["findings"] == 1  # line 5's remark is outside lines 1-3
    diags = await wait_for(lambda: fusion_diagnostics(client, uri))
    assert [d.range.start.line for d in diags] == [2]
    prompt = server.log()[0]["messages"][-1]["content"]
    assert "Review only lines 1-3" in prompt
    applied = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="fusion.applyFix", arguments=[uri, diags[0].data["id"]])
    )
    assert applied == {"applied": True}
    edit = client.applied_edits[0].edit
    assert apply_edit(BUGGY, edit, uri) == BUGGY.replace("    for i in range(len(values) + 1):", FIXED_LINE)


async def test_explain_finding_shows_the_judges_rationale(start_lsp, server: TestServer, tmp_path: Path) -> None:
    script_review(server)
    server.script("script/judge", replies=["Real bug: the loop reads values[len(values)], which does not exist."])
    client = await start_lsp("neovim@v0.7.0", {**BASE_OPTIONS, "reviewJudge": "script/judge"})
    uri = open_doc(client, tmp_path)
    await review(client, uri)
    diags = await wait_for(lambda: fusion_diagnostics(client, uri))

    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="fusion.explain", arguments=[uri, diags[0].data["id"]])
    )

    assert "Real bug: the loop reads values[len(values)]" in result["explanation"]
    assert result["agreement"] == [3, 3]
    shown = await wait_for(lambda: [m for m in client.messages if "Judge (script/judge)" in m.message])
    assert "3 of 3 models" in shown[0].message
    judge_prompt = [e for e in server.log() if e["model"] == "script/judge"][0]["messages"][-1]["content"]
    assert "Off-by-one" in judge_prompt and "for i in range(len(values) + 1)" in judge_prompt
    # Asked again: answered from the cache, no second judge call.
    await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="fusion.explain", arguments=[uri, diags[0].data["id"]])
    )
    assert len([e for e in server.log() if e["model"] == "script/judge"]) == 1


async def test_diagnostics_shift_with_edits_and_clear_on_edited_lines(
    start_lsp, server: TestServer, tmp_path: Path
) -> None:
    script_review(server)
    client = await start_lsp("visual_studio_code")
    uri = open_doc(client, tmp_path)
    await review(client, uri)
    await wait_for(lambda: len(fusion_diagnostics(client, uri)) == 2)

    # Two lines inserted above everything: both findings move down by two.
    insert = types.TextDocumentContentChangePartial(
        range=types.Range(start=types.Position(line=0, character=0), end=types.Position(line=0, character=0)),
        text="import math\n\n",
    )
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2), content_changes=[insert]
        )
    )
    await wait_for(lambda: sorted(d.range.start.line for d in fusion_diagnostics(client, uri)) == [4, 6])

    # Editing the line of the off-by-one clears that finding only.
    edit = types.TextDocumentContentChangePartial(
        range=types.Range(start=types.Position(line=4, character=27), end=types.Position(line=4, character=31)), text=""
    )
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=3), content_changes=[edit]
        )
    )
    await wait_for(lambda: [d.range.start.line for d in fusion_diagnostics(client, uri)] == [6])
    # Its quick fix is gone too: a stale finding never offers an edit.
    actions = await code_actions(
        client, uri, types.Range(start=types.Position(line=4, character=0), end=types.Position(line=4, character=0)), []
    )
    assert not [a for a in actions if getattr(a, "kind", None) == types.CodeActionKind.QuickFix]


async def test_results_of_an_old_version_are_mapped_to_the_new_text(
    start_lsp, server: TestServer, tmp_path: Path
) -> None:
    script_review(server, latency_s=0.5)
    client = await start_lsp("visual_studio_code")
    uri = open_doc(client, tmp_path)
    pending = asyncio.ensure_future(review(client, uri))
    await wait_for(lambda: len(server.log()) == 3)
    insert = types.TextDocumentContentChangePartial(
        range=types.Range(start=types.Position(line=0, character=0), end=types.Position(line=0, character=0)),
        text="# header\n",
    )
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2), content_changes=[insert]
        )
    )
    await pending
    diags = await wait_for(lambda: fusion_diagnostics(client, uri))
    assert sorted(d.range.start.line for d in diags) == [3, 5]


async def test_progress_reports_each_models_state(start_lsp, server: TestServer, tmp_path: Path) -> None:
    script_review(server)
    server.script("script/rev-a", replies=[findings_reply(finding(3, "off by one", replacement=FIXED_LINE))])
    client = await start_lsp("neovim@v0.7.0", {**BASE_OPTIONS, "reviewPool": ["script/rev-a", "mock/down-502"]})
    uri = open_doc(client, tmp_path)

    await review(client, uri)

    ((token, reports),) = client.progress_reports.items()
    begin, *middle, end = reports
    assert isinstance(begin, types.WorkDoneProgressBegin) and begin.cancellable
    assert begin.message == "script/rev-a: waiting, mock/down-502: waiting"
    # The run state's words, shared with the CLI and the notebook: streaming, then done.
    assert any("script/rev-a: streaming" in r.message for r in middle)
    assert any("script/rev-a: done" in r.message for r in middle)
    assert "mock/down-502: failed" in middle[-1].message and middle[-1].percentage == 100
    assert isinstance(end, types.WorkDoneProgressEnd) and end.message.startswith("1 finding")
    warning = [m for m in client.log_messages if "1 of 2 models failed" in m.message]
    assert len(warning) == 1 and "502" in warning[0].message


async def test_cancelling_progress_in_the_editor_stops_the_review(
    start_lsp, server: TestServer, tmp_path: Path
) -> None:
    script_review(server, latency_s=30)
    client = await start_lsp("visual_studio_code")
    uri = open_doc(client, tmp_path)
    pending = asyncio.ensure_future(review(client, uri))
    await wait_for(lambda: len(server.log()) == 3 and client.progress_reports)
    (token,) = client.progress_reports

    client.window_work_done_progress_cancel(types.WorkDoneProgressCancelParams(token=token))

    assert await asyncio.wait_for(pending, 5) == {"cancelled": True, "findings": 0}
    log = await wait_for(lambda: (entries := server.log()) and all(e["disconnected"] for e in entries) and entries)
    assert len(log) == 3
    assert isinstance(client.progress_reports[token][-1], types.WorkDoneProgressEnd)
    assert fusion_diagnostics(client, uri) == []


async def test_cancel_request_closes_every_upstream_connection(start_lsp, server: TestServer, tmp_path: Path) -> None:
    script_review(server, latency_s=30)
    client = await start_lsp("emacs")
    uri = open_doc(client, tmp_path)
    future = client.protocol.send_request(
        types.WORKSPACE_EXECUTE_COMMAND,
        types.ExecuteCommandParams(command="fusion.review", arguments=[uri]),
        msg_id="review-1",
    )
    await wait_for(lambda: len(server.log()) == 3)

    client.cancel_request(types.CancelParams(id="review-1"))

    entries = await wait_for(lambda: (log := server.log()) and all(e["disconnected"] for e in log) and log, timeout=5)
    assert len(entries) == 3
    with pytest.raises(Exception, match="cancel"):
        await asyncio.wait_for(asyncio.wrap_future(future), 5)


async def test_a_failed_review_keeps_the_earlier_findings(start_lsp, server: TestServer, tmp_path: Path) -> None:
    script_review(server)
    client = await start_lsp("visual_studio_code")
    uri = open_doc(client, tmp_path)
    await review(client, uri)
    await wait_for(lambda: len(fusion_diagnostics(client, uri)) == 2)
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"fusion": {"reviewPool": ["mock/auth-401"]}})
    )

    result = await review(client, uri)

    assert result["error"] == "no model answered" and result["failed"] == {"mock/auth-401": "auth"}
    await asyncio.sleep(0.2)
    assert len(fusion_diagnostics(client, uri)) == 2


async def test_answers_cut_at_max_tokens_are_marked_truncated(start_lsp, server: TestServer, tmp_path: Path) -> None:
    script_review(server)
    client = await start_lsp("visual_studio_code", {**BASE_OPTIONS, "reviewMaxTokens": 5})
    uri = open_doc(client, tmp_path)

    result = await review(client, uri)

    assert result["error"] == "no model answered"
    shown = await wait_for(lambda: [m.message for m in client.messages if "no model answered" in m.message])
    assert "script/rev-a: script/rev-a did not reply with findings JSON [truncated at max_tokens]" in shown[0]


async def test_an_explanation_cut_at_max_tokens_is_marked_truncated(
    start_lsp, server: TestServer, tmp_path: Path
) -> None:
    script_review(server)
    server.script("script/judge", replies=["Real bug, because " + "the loop goes too far " * 200])
    client = await start_lsp("neovim@v0.7.0", {**BASE_OPTIONS, "reviewJudge": "script/judge"})
    uri = open_doc(client, tmp_path)
    await review(client, uri)
    diags = await wait_for(lambda: fusion_diagnostics(client, uri))

    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="fusion.explain", arguments=[uri, diags[0].data["id"]])
    )

    assert "Judge (script/judge): Real bug, because the loop" in result["explanation"]
    assert result["explanation"].endswith(" [truncated at max_tokens]")
    assert [m for m in client.messages if m.message.endswith("[truncated at max_tokens]")]


@pytest.mark.local
async def test_review_with_no_key_and_only_a_base_model_says_what_it_needs(
    start_lsp, lsp_env: dict[str, str], tmp_path: Path
) -> None:
    env = {k: v for k, v in lsp_env.items() if not k.startswith("OPENROUTER_")}
    root = tmp_path / "empty"
    root.mkdir()
    # With no pool configured the analysers review (#13); a pool of base models only still says what it needs.
    client = await start_lsp("neovim@v0.7.0", {"reviewPool": ["local/gemma-3-270m"]}, root=root, env=env)
    uri = open_doc(client, root)

    result = await review(client, uri)

    assert result["findings"] == 0 and result["base_models"] == ["local/gemma-3-270m"]
    (needs,) = [m for m in client.messages if "needs a model that follows instructions" in m.message]
    assert "OPENROUTER_API_KEY" in needs.message and "[endpoints]" in needs.message and "gguf:" in needs.message
    assert not client.progress_reports  # the base model never started reviewing


@pytest.mark.local
async def test_base_models_are_left_out_of_a_mixed_review_pool(start_lsp, server: TestServer, tmp_path: Path) -> None:
    script_review(server)
    client = await start_lsp(
        "visual_studio_code", {**BASE_OPTIONS, "reviewPool": ["script/rev-a", "local/gemma-3-270m*3"]}
    )
    uri = open_doc(client, tmp_path)

    result = await review(client, uri)

    assert result["responders"] == ["script/rev-a"] and result["findings"] == 1
    assert [m for m in client.log_messages if "left out local/gemma-3-270m" in m.message]
