"""Code actions: "Fusion: review file/selection", quick fixes for findings, "Fusion: explain finding".

Quick fixes carry their ``WorkspaceEdit`` directly, or, when the client can
resolve code actions lazily (``codeAction/resolve`` with ``edit``), only a
reference that is turned into the edit when the user picks the action. Clients
without code action literals get plain commands instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from fusion_lsp.commands import APPLY_FIX_COMMAND, EXPLAIN_COMMAND, REVIEW_COMMAND
from fusion_lsp.documents import open_document, split_lines
from fusion_lsp.findings import LiveFinding, diagnostic, fix_edit
from fusion_lsp.review_feature import supports_document_changes

if TYPE_CHECKING:
    from fusion_lsp.server import FusionServer

TITLE_CHARS = 70
KINDS = [types.CodeActionKind.Source, types.CodeActionKind.QuickFix, types.CodeActionKind.Empty]


def register(server: FusionServer) -> None:
    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION, types.CodeActionOptions(code_action_kinds=KINDS, resolve_provider=True)
    )
    def code_action(ls: FusionServer, params: types.CodeActionParams) -> list[types.CodeAction | types.Command] | None:
        doc = open_document(ls.workspace, params.text_document.uri)
        if doc is None:
            return None
        literal = _caps(ls).code_action_literal_support is not None
        lazy = _lazy_edits(ls)
        only = params.context.only
        actions: list[types.CodeAction | types.Command] = []
        uri = doc.uri
        rng = params.range
        if _wanted(types.CodeActionKind.Source, only):
            actions.append(
                _action(
                    literal,
                    "Fusion: review file",
                    types.CodeActionKind.Source,
                    types.Command(title="Fusion: review file", command=REVIEW_COMMAND, arguments=[uri]),
                )
            )
            if rng.end.line > rng.start.line or rng.end.character > rng.start.character:
                selection = types.Command(
                    title="Fusion: review selection", command=REVIEW_COMMAND, arguments=[uri, _range_json(rng)]
                )
                actions.append(_action(literal, "Fusion: review selection", types.CodeActionKind.Source, selection))
        lines = split_lines(doc.source)
        for live in ls.findings.get_all(uri):
            if live.last < rng.start.line or live.first > rng.end.line or live.last >= len(lines):
                continue
            diag = diagnostic(live, lines, doc)
            if live.fix is not None and _wanted(types.CodeActionKind.QuickFix, only):
                actions.append(_fix_action(ls, uri, live, diag, literal, lazy))
            if _wanted(types.CodeActionKind.Empty, only):
                title = f"Fusion: explain finding ({_short(live.finding.message)})"
                explain = types.Command(title=title, command=EXPLAIN_COMMAND, arguments=[uri, live.id])
                actions.append(_action(literal, title, types.CodeActionKind.Empty, explain, [diag]))
        return actions or None

    @server.feature(types.CODE_ACTION_RESOLVE)
    def resolve(ls: FusionServer, action: types.CodeAction) -> types.CodeAction:
        data = action.data if isinstance(action.data, dict) else {}
        uri, finding_id = data.get("uri"), data.get("id")
        if not isinstance(uri, str) or not isinstance(finding_id, str):
            return action  # not one of ours, or already complete
        doc = open_document(ls.workspace, uri)
        live = ls.findings.get(uri, finding_id)
        edit = fix_edit(live, doc, supports_document_changes(ls)) if live is not None and doc is not None else None
        if edit is None:
            raise JsonRpcInvalidParams("that finding is gone (the code changed); run Fusion: review again")
        action.edit = edit
        return action


def _fix_action(
    ls: FusionServer, uri: str, live: LiveFinding, diag: types.Diagnostic, literal: bool, lazy: bool
) -> types.CodeAction | types.Command:
    finding = live.finding
    title = f"Fusion: fix {_short(finding.message)} ({finding.agreement})"
    if not literal:
        return types.Command(title=title, command=APPLY_FIX_COMMAND, arguments=[uri, live.id])
    action = types.CodeAction(title=title, kind=types.CodeActionKind.QuickFix, diagnostics=[diag])
    if _caps(ls).is_preferred_support and len(finding.models) == finding.responders > 1:
        action.is_preferred = True
    if lazy:
        action.data = {"uri": uri, "id": live.id}
    else:
        doc = open_document(ls.workspace, uri)
        action.edit = fix_edit(live, doc, supports_document_changes(ls)) if doc is not None else None
    return action


def _action(
    literal: bool,
    title: str,
    kind: types.CodeActionKind,
    command: types.Command,
    diagnostics: list[types.Diagnostic] | None = None,
) -> types.CodeAction | types.Command:
    if not literal:
        return command
    return types.CodeAction(title=title, kind=kind, command=command, diagnostics=diagnostics)


def _caps(ls: FusionServer) -> types.CodeActionClientCapabilities:
    text_document = ls.client_capabilities.text_document
    caps = text_document.code_action if text_document is not None else None
    return caps or types.CodeActionClientCapabilities()


def _lazy_edits(ls: FusionServer) -> bool:
    caps = _caps(ls)
    support = caps.resolve_support
    return bool(caps.data_support and support is not None and "edit" in support.properties)


def _wanted(kind: types.CodeActionKind, only: Sequence[types.CodeActionKind | str] | None) -> bool:
    if not only:
        return True
    if kind == types.CodeActionKind.Empty:
        return False
    return any(kind == o or str(kind.value).startswith(f"{getattr(o, 'value', o)}.") for o in only)


def _short(message: str) -> str:
    return message if len(message) <= TITLE_CHARS else message[: TITLE_CHARS - 1].rstrip() + "…"


def _range_json(rng: types.Range) -> dict[str, Any]:
    return {
        "start": {"line": rng.start.line, "character": rng.start.character},
        "end": {"line": rng.end.line, "character": rng.end.character},
    }
