"""Fused completion: ``textDocument/completion`` and ``textDocument/inlineCompletion`` (LSP 3.18).

Each request waits a short debounce, then asks the completion pool through
:func:`fusion_core.completion.fused_completion` (deadline or quorum, ranked by
agreement). A newer request for the same document supersedes the older one and
``$/cancelRequest`` cancels it: either way the backend work stops at once and
the old request gets an empty answer. A result computed for an older version of
the document is never sent.

The deadline counts from the request's arrival (the debounce is part of it). At
the deadline the suggestions that have arrived are returned, including the
complete lines of a model still writing; when there is nothing at all, one line
in the editor's LSP log says so (at most once a minute: completions come with
every keystroke).

Trigger characters: ``.`` (a member), ``(`` (call arguments) and ``[`` (an index or
a list), where a model's guess helps most and word completion knows least. Not
space or newline: every keystroke would start a model run.
"""

from __future__ import annotations

import asyncio
import logging

from lsprotocol import types

from fusion_core.backends.base import Preloadable
from fusion_core.completion import (
    DEFAULT_COMPLETION_TEMPERATURE,
    MAX_PREFIX_CHARS,
    MAX_SUFFIX_CHARS,
    CompletionContext,
    CompletionOutcome,
    CompletionSettings,
    fused_completion,
)
from fusion_core.errors import FusionError
from fusion_core.events import Event, Notice
from fusion_core.models import expand_pool, is_local_spec
from fusion_lsp.documents import column_index, is_binary, line_units, open_document, split_lines, text_around
from fusion_lsp.server import FusionServer
from fusion_lsp.tasks import await_work

LABEL_CHARS = 80
TRIGGER_CHARACTERS = [".", "(", "["]
# The shortest time left for the models once the debounce has been taken from the deadline.
MIN_MODEL_TIME_S = 0.1
LOCAL_EXTRA_HINT = (
    'local models need llama-cpp-python: pip install -e ".[local]" in the Fusion checkout, '
    "or set completionPool to remote models"
)
# The word being typed is found by scanning back at most this many characters: a regex such as
# r"\w*$" searched over the line is quadratic in its length (a 5 MB minified line never answered).
MAX_WORD_CHARS = 256
_log = logging.getLogger(__name__)


def register(server: FusionServer) -> None:
    @server.feature(
        types.TEXT_DOCUMENT_COMPLETION,
        types.CompletionOptions(resolve_provider=False, trigger_characters=TRIGGER_CHARACTERS),
    )
    async def completion(ls: FusionServer, params: types.CompletionParams) -> types.CompletionList:
        found = await _complete(ls, params.text_document.uri, params.position, "completion")
        if found is None:
            return types.CompletionList(is_incomplete=True, items=[])
        outcome, line, index = found
        return types.CompletionList(is_incomplete=False, items=_items(ls, outcome, params.position, line, index))

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(
        ls: FusionServer, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList | None:
        found = await _complete(ls, params.text_document.uri, params.position, "inline")
        if found is None:
            return None
        outcome, line, index = found
        doc = open_document(ls.workspace, params.text_document.uri)
        assert doc is not None
        at = types.Position(line=params.position.line, character=line_units(line[:index], doc.position_codec))
        return types.InlineCompletionList(
            items=[
                types.InlineCompletionItem(insert_text=item.text, range=types.Range(start=at, end=at))
                for item in outcome.items
            ]
        )


async def _complete(
    ls: FusionServer, uri: str, position: types.Position, kind: str
) -> tuple[CompletionOutcome, str, int] | None:
    """The ranked completions at ``position``, or None (no document, bad position, superseded, stale)."""
    if not ls.settings.completion_enabled:
        return None
    doc = open_document(ls.workspace, uri)
    if doc is None:
        return None
    text = doc.source
    if is_binary(text):
        return None
    lines = split_lines(text)
    around = text_around(lines, position, doc.position_codec, before=MAX_PREFIX_CHARS, after=MAX_SUFFIX_CHARS)
    if around is None:
        return None
    line = lines[position.line]
    index = column_index(line, position.character, doc.position_codec)
    context = CompletionContext(prefix=around[0], suffix=around[1], path=doc.path, language=doc.language_id or "")
    version = doc.version
    task = ls.tasks.start((kind, doc.uri), _work(ls, context), ls.protocol.msg_id)
    finished, outcome = await await_work(task)
    current = open_document(ls.workspace, uri)
    if not finished or outcome is None or current is None or current.version != version:
        return None  # superseded, failed, or the document moved on: an old answer would be wrong
    return outcome, line, index


async def _work(ls: FusionServer, context: CompletionContext) -> CompletionOutcome | None:
    settings = ls.settings
    if settings.debounce_s > 0:
        await asyncio.sleep(settings.debounce_s)
    config = CompletionSettings(
        pool=settings.completion_pool,
        deadline_s=max(settings.completion_deadline_s - settings.debounce_s, MIN_MODEL_TIME_S),
        quorum=settings.completion_quorum,
        max_tokens=settings.completion_max_tokens,
        temperature=settings.completion_temperature
        if settings.completion_temperature is not None
        else DEFAULT_COMPLETION_TEMPERATURE,
        judge=settings.completion_judge,
        cost_cap_usd=settings.cost_cap_usd,
        max_concurrency=ls.config.max_concurrency or 8,
    )

    def emit(event: Event) -> None:
        if isinstance(event, Notice):
            ls.log_once(f"Fusion completion: {event.message}", types.MessageType.Info)

    try:
        outcome = await fused_completion(ls.fusion, context, config, emit=emit)
    except FusionError as exc:
        ls.log_once(f"Fusion completion: {exc.describe()}", types.MessageType.Warning)
        return None
    except ImportError as exc:
        ls.log_once(f"Fusion completion: {LOCAL_EXTRA_HINT} ({exc})", types.MessageType.Warning)
        return None
    except Exception as exc:  # a bug must cost this completion, not the server
        _log.exception("completion failed")
        ls.log_once(f"Fusion completion: internal error: {type(exc).__name__}: {exc}", types.MessageType.Error)
        return None
    if outcome.failures and not outcome.items:
        details = "; ".join(f"{m}: {msg}" for m, msg in outcome.failures.items())
        ls.log_once(f"Fusion completion: no model answered ({details})", types.MessageType.Warning)
    elif not outcome.items and any(c.error is not None and c.error.kind == "timeout" for c in outcome.candidates):
        ls.log_once(
            f"Fusion completion: the {settings.completion_deadline_s:g} s deadline passed before any model "
            "had a usable suggestion; raise completionDeadlineS, or use a faster completion pool",
            types.MessageType.Info,
        )
    return outcome


def _items(
    ls: FusionServer, outcome: CompletionOutcome, position: types.Position, line: str, index: int
) -> list[types.CompletionItem]:
    doc_codec = ls.workspace.position_codec
    typed = word_before(line, index)
    end = types.Position(line=position.line, character=line_units(line[:index], doc_codec))
    start = types.Position(line=position.line, character=line_units(line[: index - len(typed)], doc_codec))
    caps = ls.client_capabilities.text_document
    completion_caps = caps.completion if caps is not None else None
    item_caps = completion_caps.completion_item if completion_caps is not None else None
    preselect = bool(item_caps and item_caps.preselect_support)
    items = []
    for rank, suggestion in enumerate(outcome.items):
        joined = typed + suggestion.text
        label = next((part for part in joined.split("\n") if part.strip()), joined).strip()[:LABEL_CHARS]
        agreement = f"{suggestion.agreement} of {max(outcome.responders, suggestion.agreement)} models"
        items.append(
            types.CompletionItem(
                label=label,
                kind=types.CompletionItemKind.Text,
                detail=f"Fusion · {agreement}",
                documentation=f"Suggested by {', '.join(suggestion.models)}.\n\n{typed}{suggestion.text}",
                sort_text=f"{rank:04d}",
                filter_text=None if label.startswith(typed) else f"{typed} {label}",
                insert_text_format=types.InsertTextFormat.PlainText,
                text_edit=types.TextEdit(range=types.Range(start=start, end=end), new_text=typed + suggestion.text),
                preselect=True if preselect and rank == 0 else None,
            )
        )
    return items


def word_before(line: str, index: int) -> str:
    """The word characters (as ``\\w`` counts them) just before ``index``, at most MAX_WORD_CHARS."""
    start = index
    floor = max(0, index - MAX_WORD_CHARS)
    while start > floor and (line[start - 1].isalnum() or line[start - 1] == "_"):
        start -= 1
    return line[start:index]


async def preload_local_models(ls: FusionServer) -> None:
    """Load the completion pool's local models in the background, so the first completion is fast."""
    try:
        specs = list(dict.fromkeys(m.spec for m in expand_pool(ls.settings.completion_pool) if is_local_spec(m.spec)))
        for spec in specs:
            # Importing llama.cpp takes a moment: do it off the event loop.
            backend, _ = await asyncio.to_thread(ls.fusion.resolver.resolve, spec)
            if isinstance(backend, Preloadable):
                await backend.load()
                ls.log(f"Fusion: loaded {spec} for completion")
    except FusionError as exc:
        ls.log(f"Fusion: cannot load the local completion model: {exc.describe()}", types.MessageType.Warning)
    except ImportError as exc:
        ls.log(f"Fusion: {LOCAL_EXTRA_HINT} ({exc})", types.MessageType.Warning)
    except Exception as exc:  # noqa: BLE001 - the first completion will report it again
        _log.warning("preloading local models failed: %s", exc)
