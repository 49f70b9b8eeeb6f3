"""Keeping documents in step with the editor: didOpen, didChange, didSave and didClose, together.

pygls keeps the open documents itself. :class:`DocumentSync` replaces its
didChange and didClose so that an edit to a document that is not open, or one
that cannot be applied, never kills the server, and so that each applied change
moves the findings below it (or drops the findings it touched) instead of
leaving them on the wrong lines. didOpen and didSave are ordinary features,
registered by :func:`register`; ``review_on_save`` starts a review on save.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

from fusion_lsp.documents import ChangeLog, change_of, open_document

if TYPE_CHECKING:
    from fusion_lsp.server import FusionServer

_log = logging.getLogger(__name__)


class DocumentSync(LanguageServerProtocol):
    """pygls' protocol with didChange and didClose that follow the findings and survive bad edits."""

    _server: FusionServer

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams) -> None:
        uri = params.text_document.uri
        if open_document(self.workspace, uri) is None:
            _log.warning("didChange for a document that is not open: %s", uri)
            return
        for change in params.content_changes:
            try:
                self.workspace.update_text_document(params.text_document, change)
            except Exception:  # noqa: BLE001 - a change we cannot apply must not kill the server
                _log.exception("could not apply a change to %s; dropping its findings", uri)
                document_changed(self._server, uri, None, params.text_document.version)
                continue
            document_changed(
                self._server, uri, change_of(change, params.text_document.version), params.text_document.version
            )

    @lsp_method(types.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(self, params: types.DidCloseTextDocumentParams) -> None:
        self.workspace.remove_text_document(params.text_document.uri)
        document_closed(self._server, params.text_document.uri)


def register(server: FusionServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: FusionServer, params: types.DidOpenTextDocumentParams) -> None:
        uri = params.text_document.uri
        ls.change_logs[uri] = ChangeLog()
        if ls.findings.forget(uri):
            ls.publish(uri)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: FusionServer, params: types.DidSaveTextDocumentParams) -> None:
        if ls.settings.review_on_save:
            from fusion_lsp.review_feature import start_review

            start_review(ls, params.text_document.uri, None, None, None)


def document_changed(ls: FusionServer, uri: str, change: Any, version: int | None) -> None:
    """Record an edit, move or drop findings, and republish soon if anything moved."""
    ls.change_logs.setdefault(uri, ChangeLog()).record(change, version)
    if change is None:
        if ls.findings.forget(uri):
            ls.publish_soon(uri)
    elif ls.findings.apply_change(uri, change):
        ls.publish_soon(uri)


def document_closed(ls: FusionServer, uri: str) -> None:
    """Forget a closed document: its work, its edit log, its findings (cleared in the editor) and explanations."""
    ls.tasks.cancel_matching(uri)
    ls.change_logs.pop(uri, None)
    if ls.findings.forget(uri):
        ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))
    for key in [k for k in ls.explanations if k.startswith(uri + "#")]:
        del ls.explanations[key]
