"""Fused code review in the editor: ``fusion.review``, ``fusion.explain`` and ``fusion.applyFix``.

A review runs only when asked for (it costs money), or on save with
``review_on_save``. It reports each model's state as work-done progress,
can be cancelled from the editor or with ``$/cancelRequest``, and publishes the
merged findings as diagnostics. Results computed on an older version of the
document are moved to where their lines are now, or dropped if those lines
were edited; they never point at the wrong line.

A review needs models that follow instructions. Base models (the embedded
Gemma 3 270M) are left out of the review pool; when nothing is left, nothing
runs and one message says what review needs. A model's answer or the judge's
explanation cut off at max_tokens is marked ``[truncated at max_tokens]`` in what the
editor shows.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import TYPE_CHECKING, Any, cast

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer

from fusion_core.analysers import NO_LLM_NOTICE, is_tool_spec
from fusion_core.completion import follows_instructions
from fusion_core.errors import FusionError
from fusion_core.review import DEFAULT_REVIEW_TEMPERATURE, ReviewSettings, ReviewTarget, explain, review
from fusion_core.specs import expand_pool, is_local_spec, split_judge_spec
from fusion_lsp.commands import APPLY_FIX_COMMAND, EXPLAIN_COMMAND, REVIEW_COMMAND
from fusion_lsp.documents import is_binary, open_document
from fusion_lsp.findings import LiveFinding, fix_edit, follow_changes
from fusion_lsp.progress import ReviewProgress
from fusion_lsp.tasks import await_work

if TYPE_CHECKING:
    from fusion_core.review import MergedFinding, ReviewOutcome
    from fusion_lsp.server import FusionServer

MAX_MESSAGE_CHARS = 400
TRUNCATED = "[truncated at max_tokens]"
REVIEW_NEEDS = (
    "Fusion review needs a model that follows instructions, and {models} {verb} a base model, "
    "so no review ran. Set OPENROUTER_API_KEY, add an [endpoints] server to fusion.toml and set "
    'reviewPool = ["ENDPOINT:model"], or set reviewPool = ["gguf:/path/to/an-instruct-model.gguf"].'
)

_log = logging.getLogger(__name__)


def register(server: FusionServer) -> None:
    # pygls reads a command's annotations at run time (typing.get_type_hints) to convert its
    # arguments, so they name pygls' LanguageServer: FusionServer is imported for type checking only.
    @server.command(REVIEW_COMMAND)
    async def review_command(ls: LanguageServer, *args: Any) -> dict[str, Any]:
        """fusion.review(uri[, range]): review the file, or only the lines the range covers."""
        return await _review_command(cast("FusionServer", ls), args)

    @server.command(EXPLAIN_COMMAND)
    async def explain_command(ls: LanguageServer, *args: Any) -> dict[str, Any]:
        """fusion.explain(uri, finding_id): the judge's rationale, shown as a message."""
        return await _explain_command(cast("FusionServer", ls), args)

    @server.command(APPLY_FIX_COMMAND)
    async def apply_fix_command(ls: LanguageServer, *args: Any) -> dict[str, Any]:
        """fusion.applyFix(uri, finding_id): apply a finding's fix through workspace/applyEdit."""
        return await _apply_fix_command(cast("FusionServer", ls), args)


async def _review_command(ls: FusionServer, args: tuple[Any, ...]) -> dict[str, Any]:
    uri, lines = _review_args(args)
    problem = review_problem(ls, uri)
    if problem:
        raise JsonRpcInvalidParams(problem)
    task = start_review(ls, uri, lines, ls.protocol.msg_id, None)
    finished, result = await await_work(task)
    return result if finished and result is not None else {"cancelled": True, "findings": 0}


async def _explain_command(ls: FusionServer, args: tuple[Any, ...]) -> dict[str, Any]:
    uri, live = _finding_args(ls, args)
    text = await explanation(ls, uri, live)
    ls.show(text)
    finding = live.finding
    return {
        "explanation": text,
        "models": list(finding.models),
        "agreement": [len(finding.models), finding.responders],
    }


async def _apply_fix_command(ls: FusionServer, args: tuple[Any, ...]) -> dict[str, Any]:
    uri, live = _finding_args(ls, args)
    doc = open_document(ls.workspace, uri)
    edit = fix_edit(live, doc, supports_document_changes(ls)) if doc is not None else None
    if edit is None:
        raise JsonRpcInvalidParams("this finding has no fix that still applies")
    result = await ls.workspace_apply_edit_async(types.ApplyWorkspaceEditParams(edit=edit, label="Fusion fix"))
    return {"applied": bool(result and result.applied)}


def review_problem(ls: FusionServer, uri: str) -> str | None:
    """Why the document cannot be reviewed, or None."""
    doc = open_document(ls.workspace, uri)
    if doc is None:
        return f"Fusion: {uri} is not open in the editor"
    text = doc.source
    if is_binary(text):
        return "Fusion: this file looks binary; there is nothing to review"
    size = len(text.encode("utf-8", errors="replace"))
    if size > ls.settings.max_review_bytes:
        return (
            f"Fusion: the file is too large to review ({size / 1e6:.1f} MB > "
            f"{ls.settings.max_review_bytes / 1e6:.1f} MB); review a selection instead"
        )
    if not text.strip():
        return "Fusion: the file is empty"
    return None


def start_review(
    ls: FusionServer, uri: str, lines: tuple[int, int] | None, request_id: Any, token: types.ProgressToken | None
) -> asyncio.Task[dict[str, Any]]:
    """Start (or restart) the review of ``uri``; a review already running for it is cancelled."""
    problem = review_problem(ls, uri)
    if problem:
        ls.show(problem, types.MessageType.Warning)

        async def nothing() -> dict[str, Any]:
            return {"findings": 0, "error": problem}

        return ls.tasks.start(("review-skipped", uri), nothing())
    return ls.tasks.start(("review", uri), _run_review(ls, uri, lines, token), request_id)


async def _run_review(
    ls: FusionServer, uri: str, lines: tuple[int, int] | None, token: types.ProgressToken | None
) -> dict[str, Any]:
    doc = open_document(ls.workspace, uri)
    assert doc is not None
    version, settings = doc.version, ls.settings
    target = ReviewTarget(text=doc.source, path=doc.path, language=doc.language_id or "", lines=lines)
    config = ReviewSettings(
        pool=settings.review_pool,
        timeout_s=settings.review_timeout_s,
        max_tokens=settings.review_max_tokens,
        temperature=settings.review_temperature
        if settings.review_temperature is not None
        else DEFAULT_REVIEW_TEMPERATURE,
        quorum=settings.review_quorum,
        cost_cap_usd=settings.cost_cap_usd,
        max_concurrency=ls.config.concurrency,
    )
    try:
        pool, base = await instructable(ls, settings.review_pool)
    except FusionError as exc:
        ls.show(f"Fusion review: {exc.describe()}", types.MessageType.Error)
        return {"findings": 0, "error": exc.message}
    if not pool:
        verb = "is" if len(base) == 1 else "are each"
        ls.show(REVIEW_NEEDS.format(models=" and ".join(base), verb=verb), types.MessageType.Warning)
        return {"findings": 0, "error": "no model in the review pool follows instructions", "base_models": base}
    if base:
        ls.log(f"Fusion review: left out {', '.join(base)}: a base model cannot follow the review instructions")
    config = dataclasses.replace(config, pool=pool)
    models = [m.name for m in expand_pool(pool)]
    if all(is_tool_spec(spec) for spec in pool):
        ls.log(f"Fusion review: {NO_LLM_NOTICE}")
    progress = await ReviewProgress.create(ls, token, models, lambda note: ls.log(f"Fusion: {note}"))
    task = asyncio.current_task()
    assert task is not None
    progress.begin("Fusion review", task)
    try:
        outcome = await review(ls.fusion, target, config, emit=progress.handle)
    except asyncio.CancelledError:
        progress.end("cancelled")
        raise
    except FusionError as exc:
        progress.end("failed")
        ls.show(f"Fusion review: {exc.describe()}", types.MessageType.Error)
        return {"findings": 0, "error": exc.message}
    except Exception as exc:  # a bug must cost this review, not the server
        _log.exception("review failed")
        progress.end("failed")
        ls.show(f"Fusion review: internal error: {type(exc).__name__}: {exc}", types.MessageType.Error)
        return {"findings": 0, "error": str(exc)}
    return _publish(ls, uri, version, lines, outcome, progress)


async def instructable(ls: FusionServer, pool: tuple[str, ...]) -> tuple[tuple[str, ...], list[str]]:
    """The pool's entries whose model follows instructions, and the base models left out.

    Remote models count as instruction-following; a local model is asked (this loads it).
    """
    keep: list[str] = []
    base: list[str] = []
    for entry in pool:
        spec = expand_pool([entry])[0].spec
        if is_local_spec(spec):
            backend, _ = await asyncio.to_thread(ls.fusion.resolver.resolve, spec)
            if not await follows_instructions(backend):
                base.append(spec)
                continue
        keep.append(entry)
    return tuple(keep), list(dict.fromkeys(base))


def _publish(
    ls: FusionServer,
    uri: str,
    version: int | None,
    lines: tuple[int, int] | None,
    outcome: ReviewOutcome,
    progress: ReviewProgress,
) -> dict[str, Any]:
    live = [LiveFinding.from_merged(f) for f in outcome.findings]
    doc = open_document(ls.workspace, uri)
    if doc is not None and doc.version != version:
        log = ls.change_logs.get(uri)
        changes = log.since(version) if log is not None else None
        if changes is None:
            doc = None
        else:
            live = follow_changes(live, changes)
    if doc is None:
        progress.end("the document changed too much; review again")
        ls.log("Fusion review: results dropped because the document was closed or rewritten")
        return {"findings": 0, "stale": True}
    failed = {m: e.kind for m, e in outcome.failures.items()}
    cut = {c.model for c in outcome.candidates if c.truncated}
    details = "; ".join(
        f"{m}: {e.message}" + (f" {TRUNCATED}" if m in cut else "") for m, e in outcome.failures.items()
    )[:MAX_MESSAGE_CHARS]
    if not outcome.responders:
        # Keep what an earlier review found: a network outage is not a clean bill of health.
        hints = sorted({e.hint for e in outcome.failures.values() if e.hint})
        hint = f" {hints[0]}" if len(hints) == 1 else ""
        ls.show(f"Fusion review failed: no model answered ({details}).{hint}", types.MessageType.Error)
        progress.end("failed: no model answered")
        return {"findings": 0, "failed": failed, "error": "no model answered"}
    ls.findings.replace(doc.uri, live, None if lines is None else (lines[0] - 1, lines[1] - 1))
    ls.publish(doc.uri)
    if outcome.failures:
        ls.log(
            f"Fusion review: {len(outcome.failures)} of {len(outcome.candidates)} models failed ({details})",
            types.MessageType.Warning,
        )
    agreed = sum(len(f.finding.models) > 1 for f in live)
    summary = f"{len(live)} finding{'s' if len(live) != 1 else ''} ({agreed} agreed by 2+ models)"
    answered_but_cut = sorted(cut & set(outcome.responders))
    if answered_but_cut:
        summary += f"; {', '.join(answered_but_cut)} {TRUNCATED}, raise reviewMaxTokens"
    progress.end(summary)
    cost = outcome.usage.cost
    ls.log(
        f"Fusion review: {summary} from {len(outcome.responders)} model(s)" + (f", cost ${cost:.4f}" if cost else "")
    )
    return {
        "findings": len(live),
        "agreed": agreed,
        "responders": list(outcome.responders),
        "failed": failed,
        "redacted": outcome.redacted,
        "cost_usd": cost,
    }


async def explanation(ls: FusionServer, uri: str, live: LiveFinding) -> str:
    """The judge's rationale for a finding (cached); the models' own words without a judge."""
    key = f"{uri}#{live.id}"
    cached = ls.explanations.get(key)
    if cached is not None:
        return cached
    finding = live.finding
    rationale = ""
    judge = ls.settings.review_judge
    doc = open_document(ls.workspace, uri)
    if judge and doc is not None and not split_judge_spec(judge)[1]:
        try:
            backend, model = ls.fusion.resolver.resolve(judge)
            reply = await explain(
                backend,
                model,
                finding,
                doc.source,
                is_local=is_local_spec(judge),
                cost_cap_usd=ls.settings.cost_cap_usd,
            )
            rationale = reply.text + (f" {TRUNCATED}" if reply.finish_reason == "length" else "")
        except FusionError as exc:
            ls.log(f"Fusion explain: the judge {judge} failed: {exc.describe()}", types.MessageType.Warning)
    text = _compose(finding, judge if rationale else None, rationale)
    ls.remember_explanation(key, text)
    return text


def _compose(finding: MergedFinding, judge: str | None, rationale: str) -> str:
    who = ", ".join(finding.models)
    head = f"{finding.message} [{finding.severity}, {finding.category}; {finding.agreement}: {who}]"
    if rationale:
        return f"{head}\nJudge ({judge}): {rationale}"
    reports = " | ".join(f"{r.model}: {r.message}" for r in finding.reports)
    return f"{head}\nReports: {reports}"


def supports_document_changes(ls: FusionServer) -> bool:
    workspace = ls.client_capabilities.workspace
    edit = workspace.workspace_edit if workspace is not None else None
    return bool(edit and edit.document_changes)


def _review_args(args: tuple[Any, ...]) -> tuple[str, tuple[int, int] | None]:
    if not args or not isinstance(args[0], str):
        raise JsonRpcInvalidParams("fusion.review takes a document URI and an optional range")
    uri, lines = args[0], None
    if len(args) > 1 and args[1] is not None:
        rng = args[1]
        try:
            first, last = int(rng["start"]["line"]), int(rng["end"]["line"])
            if last > first and int(rng["end"].get("character", 1)) == 0:
                last -= 1  # a selection ending at column 0 does not include that line
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise JsonRpcInvalidParams("fusion.review: the range is not an LSP Range") from exc
        if first < 0 or last < first:
            raise JsonRpcInvalidParams("fusion.review: the range is empty or negative")
        lines = (first + 1, last + 1)
    return uri, lines


def _finding_args(ls: FusionServer, args: tuple[Any, ...]) -> tuple[str, LiveFinding]:
    if len(args) < 2 or not all(isinstance(a, str) for a in args[:2]):
        raise JsonRpcInvalidParams("takes a document URI and a finding id")
    live = ls.findings.get(args[0], args[1])
    if live is None:
        raise JsonRpcInvalidParams("that finding is gone (the code changed); run Fusion: review again")
    return args[0], live
