"""The editor's review with no key and no configuration: ruff and bandit, fixes as quick fixes."""

from __future__ import annotations

from pathlib import Path

from lsp_helpers import BASE_OPTIONS, apply_edit, code_actions, fusion_diagnostics, open_doc, review, wait_for
from lsprotocol import types

ACCOUNTS = (Path(__file__).parent.parent / "data" / "review" / "accounts.py").read_text()


async def test_offline_default_review_runs_the_analysers(start_lsp, lsp_env: dict[str, str], tmp_path: Path) -> None:
    env = {k: v for k, v in lsp_env.items() if not k.startswith("OPENROUTER_")}
    options = {k: v for k, v in BASE_OPTIONS.items() if k != "reviewPool"}
    client = await start_lsp(options=options, env=env)
    text = ACCOUNTS + '\n\ndef banner():\n    return f"accounts"\n'
    uri = open_doc(client, tmp_path, text=text, name="accounts.py")

    result = await review(client, uri)

    assert sorted(result["responders"]) == ["tool:bandit", "tool:ruff"]
    diags = await wait_for(lambda: fusion_diagnostics(client, uri))
    by_line = {d.range.start.line + 1: d.message for d in diags}
    assert "SQL injection" in by_line[13] and "(2 of 2 reviewers)" in by_line[13]
    assert "hardcoded password" in by_line[5]
    assert any("No LLM reviewer is configured" in m.message for m in client.log_messages)

    fstring = next(d for d in diags if "F541" in d.message)
    actions = await code_actions(client, uri, fstring.range, [fstring])
    fixes = [a for a in actions if isinstance(a, types.CodeAction) and a.kind == types.CodeActionKind.QuickFix]
    assert len(fixes) == 1
    fix = fixes[0] if fixes[0].edit is not None else await client.code_action_resolve_async(fixes[0])
    assert fix.edit is not None
    assert apply_edit(text, fix.edit, uri).endswith('    return "accounts"\n')
