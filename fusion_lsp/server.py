"""The Fusion language server: pygls plumbing, lifecycle, settings and shared state.

The features live in their own modules (:mod:`fusion_lsp.review_feature`,
:mod:`fusion_lsp.actions`, :mod:`fusion_lsp.completion_feature`, and the
document-sync handlers in :mod:`fusion_lsp.document_sync`); each is a set of
decorated handlers taking the injected server ``ls``, and imports
:class:`FusionServer` for type checking only, so no module imports this one
back. This module answers ``initialize`` without importing anything heavy (the
engine, httpx, llama.cpp load later) and makes sure bad input never kills the
process. Bytes off the wire go through :mod:`fusion_lsp.transport`
(framing that resynchronises, one answer per request) instead of pygls' reader.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.io_ import StdoutWriter
from pygls.lsp.server import LanguageServer
from pygls.protocol.json_rpc import JsonRPCNotification, JsonRPCRequestMessage, JsonRPCResponseMessage
from pygls.protocol.language_server import lsp_method
from pygls.uris import to_fs_path

from fusion_lsp import __version__, document_sync
from fusion_lsp.commands import STATUS_COMMAND
from fusion_lsp.document_sync import DocumentSync
from fusion_lsp.documents import ChangeLog, open_document
from fusion_lsp.findings import FindingStore, diagnostics_for
from fusion_lsp.tasks import TaskRegistry
from fusion_lsp.transport import READ_CHUNK_BYTES, serve_stream

if TYPE_CHECKING:
    from fusion_core.config import Config
    from fusion_core.engine import Fusion
    from fusion_lsp.settings import LspSettings

SERVER_NAME = "fusion-lsp"
EXPLANATION_CACHE_SIZE = 128
# The same failure is shown at most once in this many seconds (completions fire on every keystroke).
REPEAT_MESSAGE_S = 60.0
MAX_REMEMBERED_MESSAGES = 256
FUTURES_SWEEP_AT = 32

_log = logging.getLogger(__name__)


class FusionProtocol(DocumentSync):
    """pygls' protocol, hardened: unknown documents (see DocumentSync), cancellation of backend work, capabilities."""

    _server: FusionServer

    @lsp_method(types.INITIALIZE)
    def lsp_initialize(self, params: types.InitializeParams) -> Generator[Any, Any, types.InitializeResult]:
        result: types.InitializeResult = yield from super().lsp_initialize(params)
        text_document = params.capabilities.text_document
        if text_document is None or text_document.inline_completion is None:
            # Offer inline completion (LSP 3.18) only to clients that say they can use it.
            result.capabilities.inline_completion_provider = None
        return result

    @lsp_method(types.EXIT)
    def lsp_exit(self, *args: Any) -> Generator[Any, Any, None]:
        # Exit now: a worker thread still loading a local model or blocked reading stdin
        # must not keep the process alive after the client said goodbye.
        code = 0 if self._shutdown else 1
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
        yield  # never reached; pygls expects a generator here

    def structure_message(self, data: dict[str, Any]) -> Any:
        """A JSON-RPC message as pygls' typed object (pygls' rules, but errors are raised as they are).

        pygls logs a full traceback for every message whose params don't fit; here
        :func:`fusion_lsp.transport.dispatch` answers it with -32602 and one log line.
        """
        if "jsonrpc" not in data:
            return data
        if "id" not in data:
            kind = self.get_message_type(data.get("method", "")) or JsonRPCNotification
        elif "error" in data:
            kind = types.ResponseErrorMessage
        elif "method" in data:
            kind = self.get_message_type(data["method"]) or JsonRPCRequestMessage
        else:
            kind = self._result_types.pop(data["id"], None) or JsonRPCResponseMessage
        return self._converter.structure(data, kind)

    def handle_message(self, message: Any) -> None:
        super().handle_message(message)
        # pygls files the futures of notification handlers under random ids and never removes
        # them; a finished future there is garbage, so sweep them to keep memory bounded.
        if len(self._request_futures) > FUTURES_SWEEP_AT:
            for msg_id, future in list(self._request_futures.items()):
                if future.done():
                    del self._request_futures[msg_id]

    def _handle_cancel_notification(self, msg_id: Any) -> None:
        if isinstance(msg_id, bool) or not isinstance(msg_id, int | str):
            _log.warning("$/cancelRequest for an id that is neither a string nor an integer: ignored")
            return
        self._server.tasks.cancel_request(msg_id)
        if msg_id in self._request_futures:
            super()._handle_cancel_notification(msg_id)


class FusionServer(LanguageServer):
    """The server object every handler receives as ``ls``."""

    def __init__(self) -> None:
        super().__init__(SERVER_NAME, __version__, protocol_cls=FusionProtocol, max_workers=4)
        self.tasks = TaskRegistry()
        self.findings = FindingStore()
        self.change_logs: dict[str, ChangeLog] = {}
        self.explanations: OrderedDict[str, str] = OrderedDict()
        self.init_options: Any = None
        self.client_settings: Any = None
        self.root: Path | None = None
        self._settings: LspSettings | None = None
        self._config: Config | None = None
        self._fusion: Fusion | None = None
        self._shown: dict[str, float] = {}
        self._publish_pending: set[str] = set()

    # -- settings and the engine ------------------------------------------------------

    @property
    def settings(self) -> LspSettings:
        if self._settings is None:
            self.reload_settings()
        assert self._settings is not None
        return self._settings

    @property
    def config(self) -> Config:
        if self._config is None:
            self.reload_settings()
        assert self._config is not None
        return self._config

    @property
    def fusion(self) -> Fusion:
        """The engine session (created on first use, replaced when settings change)."""
        if self._fusion is None:
            from fusion_core.engine import Fusion
            from fusion_core.runlog import RunLog

            run_log = RunLog.from_env(os.environ, source="lsp") if self.settings.run_log else None
            self._fusion = Fusion(self.config, local_only=self.settings.local_only, run_log=run_log)
        return self._fusion

    def reload_settings(self) -> None:
        """Re-read fusion.toml and apply initializationOptions and the client's settings on top."""
        from fusion_core.config import CONFIG_FILENAME, Config, find_config_path, load_config
        from fusion_core.errors import ConfigError
        from fusion_lsp.settings import build_settings, server_config

        path = None
        if self.root is not None:
            path = self.root / CONFIG_FILENAME if (self.root / CONFIG_FILENAME).is_file() else None
            path = path or find_config_path(cwd=self.root)
        try:
            config = load_config(path) if path is not None else Config()
        except ConfigError as exc:
            self.show(f"Fusion: {exc.describe()}", types.MessageType.Error)
            config = Config()
        config = server_config(config)
        settings, problems = build_settings(config, [self.init_options, self.client_settings], os.environ)
        for problem in problems:
            self.show(f"Fusion: ignoring a setting: {problem}", types.MessageType.Warning)
        old = self._fusion
        self._config, self._settings, self._fusion = config, settings, None
        if old is not None:
            self.tasks.start(("close-engine", id(old)), old.aclose())

    # -- messages -------------------------------------------------------------------

    def show(self, message: str, kind: types.MessageType = types.MessageType.Info, *, once: bool = False) -> None:
        """One line in the editor's message area (``window/showMessage``), key-shaped text removed.

        With ``once``, the same line is shown at most once a minute.
        """
        if not once or self._fresh(message):
            self.window_show_message(types.ShowMessageParams(type=kind, message=_clean(message)))

    def log(self, message: str, kind: types.MessageType = types.MessageType.Info) -> None:
        """One line in the editor's LSP log (``window/logMessage``), key-shaped text removed."""
        self.window_log_message(types.LogMessageParams(type=kind, message=_clean(message)))

    def log_once(self, message: str, kind: types.MessageType = types.MessageType.Warning) -> None:
        """Like :meth:`log`, but the same line at most once a minute."""
        if self._fresh(message):
            self.log(message, kind)

    def _fresh(self, message: str) -> bool:
        now = time.monotonic()
        if now - self._shown.get(message, -REPEAT_MESSAGE_S) < REPEAT_MESSAGE_S:
            return False
        if len(self._shown) >= MAX_REMEMBERED_MESSAGES:
            self._shown = {m: t for m, t in self._shown.items() if now - t < REPEAT_MESSAGE_S}
            if len(self._shown) >= MAX_REMEMBERED_MESSAGES:
                self._shown.clear()
        self._shown[message] = now
        return True

    def report_server_error(self, error: Exception, source: Any) -> None:
        _log.error("internal error: %s", error)
        from pygls.exceptions import FeatureRequestError

        if source is not FeatureRequestError:
            self.show(f"Fusion: internal error: {type(error).__name__}: {error}", types.MessageType.Error, once=True)

    # -- documents --------------------------------------------------------------------

    def publish(self, uri: str) -> None:
        """Send a document's fusion diagnostics as they are now."""
        self._publish_pending.discard(uri)
        doc = open_document(self.workspace, uri)
        if doc is None:
            return
        diagnostics = diagnostics_for(self.findings.get_all(uri), doc)
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=doc.uri, diagnostics=diagnostics, version=doc.version)
        )

    def publish_soon(self, uri: str) -> None:
        """Publish once after a burst of edits instead of once per keystroke."""
        if uri not in self._publish_pending:
            self._publish_pending.add(uri)
            asyncio.get_running_loop().call_later(0.03, self.publish, uri)

    def remember_explanation(self, key: str, text: str) -> None:
        self.explanations[key] = text
        self.explanations.move_to_end(key)
        while len(self.explanations) > EXPLANATION_CACHE_SIZE:
            self.explanations.popitem(last=False)

    # -- transports -------------------------------------------------------------------

    def start_io(self, stdin: Any = None, stdout: Any = None) -> None:
        """Serve on stdin/stdout until the client says exit or goes away (``--tcp`` runs one of these per client)."""
        self._stop_event = stop = threading.Event()
        source: Any = stdin or sys.stdin.buffer
        self.protocol.set_writer(StdoutWriter(stdout or sys.stdout.buffer))

        async def read() -> bytes:
            # read1 returns whatever has arrived (up to a chunk) instead of waiting for a full chunk.
            data: bytes = await asyncio.get_running_loop().run_in_executor(
                self.thread_pool, source.read1, READ_CHUNK_BYTES
            )
            return data

        try:
            asyncio.run(serve_stream(read, self.protocol, stop))
        except BrokenPipeError:
            _log.error("the client went away")
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            self.shutdown()  # type: ignore[no-untyped-call]


def _clean(message: str) -> str:
    from fusion_core.secrets import redact

    return redact(" ".join(message.split()))


def create_server() -> FusionServer:
    """A server with every feature registered."""
    from fusion_lsp import actions, completion_feature, review_feature

    server = FusionServer()
    _register_lifecycle(server)
    document_sync.register(server)
    review_feature.register(server)
    actions.register(server)
    completion_feature.register(server)
    return server


async def _start_up(ls: FusionServer) -> None:
    """Read the settings, then load the completion pool's local models in the background."""
    # Import the engine in a thread: the client's next messages are handled meanwhile.
    await asyncio.to_thread(importlib.import_module, "fusion_core.engine")
    settings = ls.settings  # read fusion.toml and initializationOptions, unless a request already did
    if settings.preload_local and settings.completion_enabled:
        from fusion_lsp.completion_feature import preload_local_models

        await preload_local_models(ls)


def _register_lifecycle(server: FusionServer) -> None:
    @server.feature(types.INITIALIZE)
    def initialize(ls: FusionServer, params: types.InitializeParams) -> None:
        # Only remember things here: the answer must not wait for imports or file reads.
        ls.init_options = params.initialization_options
        root_uri = params.root_uri or (params.workspace_folders[0].uri if params.workspace_folders else None)
        root = to_fs_path(root_uri) if root_uri else params.root_path
        ls.root = Path(root) if root else None
        # Start loading the local completion model now. pygls sends the answer as this
        # handler returns, before the task first runs, so nothing here delays it.
        ls.tasks.start(("startup",), _start_up(ls))

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(ls: FusionServer, params: types.DidChangeConfigurationParams) -> None:
        settings = params.settings
        workspace = ls.client_capabilities.workspace
        if not settings and workspace is not None and workspace.configuration:
            try:
                async with asyncio.timeout(2.0):
                    pulled = await ls.workspace_configuration_async(
                        types.ConfigurationParams(items=[types.ConfigurationItem(section="fusion")])
                    )
                settings = pulled[0] if pulled else None
            except Exception as exc:  # noqa: BLE001 - keep the old settings
                _log.warning("could not fetch settings: %s", exc)
                return
        ls.client_settings = settings
        ls.reload_settings()

    @server.feature(types.SHUTDOWN)
    async def shutdown(ls: FusionServer, params: None) -> None:
        ls.tasks.cancel_all()
        if ls._fusion is not None:
            await ls._fusion.aclose()

    @server.command(STATUS_COMMAND)
    def status(ls: FusionServer, *args: Any) -> dict[str, Any]:
        """Sizes of the server's state, for debugging and the memory test."""
        rss_kb = 0
        try:
            with open("/proc/self/statm") as statm:
                rss_kb = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
        except (OSError, ValueError):
            pass
        return {
            "documents": len(ls.workspace.text_documents),
            "documents_with_findings": len(ls.findings),
            "findings": ls.findings.count(),
            "tasks": len(ls.tasks),
            "change_logs": len(ls.change_logs),
            "explanations": len(ls.explanations),
            "progress_tokens": len(ls.work_done_progress.tokens),
            "pending_requests": len(ls.protocol._request_futures),
            "rss_kb": rss_kb,
        }
