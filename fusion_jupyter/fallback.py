"""The result as text and Markdown, for front ends without live widgets.

Terminal IPython shows ``text/plain``; nbconvert, GitHub's notebook viewer
and a notebook reopened without its kernel show ``text/markdown``. The
``%%fuse`` magic returns a :class:`FusionOutput`, so the saved notebook keeps
the fused answer as static output even when the widget state is lost; in a
live JupyterLab the widget view's stylesheet hides this copy.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, Protocol

from fusion_core.display import error_text, format_cost, format_seconds, format_tokens, progress_line
from fusion_core.events import CandidateDelta, CandidateFinished, Event
from fusion_core.result import Candidate, FusionResult
from fusion_core.verdicts import MergeVerdict
from fusion_jupyter.html import STATIC_CLASS
from fusion_jupyter.safe_html import answer_html, markdown_block, markdown_text
from fusion_jupyter.state import STREAMING, RunState

if TYPE_CHECKING:
    from fusion_jupyter.view import FusionView

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
# In a terminal, a line with each streaming model's tokens so far at most this often.
TOKENS_LINE_INTERVAL_S = 2.0


class FusionOutput:
    """A finished run as a display object: ``text/plain`` and ``text/markdown``
    (plus the live widget view when one is attached)."""

    def __init__(self, result: FusionResult, view: FusionView | None = None) -> None:
        self.result = result
        self.view = view

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        data: dict[str, Any] = {"text/plain": plain_text(self.result), "text/markdown": markdown(self.result)}
        if self.view is not None:
            bundle = self.view._repr_mimebundle_()
            if isinstance(bundle, dict) and WIDGET_MIME in bundle:
                data[WIDGET_MIME] = bundle[WIDGET_MIME]
        return data

    def __repr__(self) -> str:
        return plain_text(self.result)


def no_answer_markdown(result: FusionResult) -> str:
    """Why there is no fused answer, and what to do about it."""
    if result.status == "all_failed":
        hints = sorted({c.error.hint for c in result.candidates if c.error and c.error.hint})
        lines = ["**No answer: every candidate failed.**", ""]
        lines += [f"- {markdown_text(hint)}" for hint in hints]
        return "\n".join(lines)
    hint = result.judge.error.hint if result.judge and result.judge.error else ""
    return "**No fused answer: the judge failed.** Every candidate's answer is kept in the result's `candidates`." + (
        f"\n\n{markdown_text(hint)}" if hint else ""
    )


def _summary(result: FusionResult) -> str:
    answered = sum(1 for c in result.candidates if c.ok)
    judge = result.judge.model if result.judge else "none"
    return (
        f"Fusion {result.mode} · {answered}/{len(result.candidates)} models answered · judge {judge} · "
        f"{format_tokens(result.usage)} · {format_cost(result.usage)} · {format_seconds(result.wall_s)}"
    )


def plain_text(result: FusionResult) -> str:
    """The answer, then who answered and what it cost."""
    lines = []
    if result.ok:
        lines += [result.answer, ""]
    elif result.status == "all_failed":
        lines += ["No answer: every candidate failed.", ""]
    else:
        lines += ["No fused answer: the judge failed. The candidates' answers:", ""]
        lines += [f"## {c.model}\n{c.text}\n" for c in result.candidates if c.ok]
    lines.append(_summary(result))
    for cand in result.candidates:
        lines.append(f"  {cand.model}: {_candidate_line(cand)}")
    if result.judge is not None and result.judge.error is not None:
        error = result.judge.error
        lines.append(f"  judge {result.judge.model}: failed: {error_text(error.kind, error.status, error.message)}")
    hints = sorted({c.error.hint for c in result.candidates if c.error and c.error.hint and not result.ok})
    lines += [f"  → {hint}" for hint in hints]
    return "\n".join(lines)


def _status(cand: Candidate) -> str:
    status = {"ok": "done"}.get(cand.status, cand.status)
    return status + (" (truncated at max_tokens)" if cand.truncated else "")


def _candidate_line(cand: Candidate) -> str:
    parts = [_status(cand), format_seconds(cand.latency_s), format_tokens(cand.usage), format_cost(cand.usage)]
    if cand.error is not None:
        parts.append(error_text(cand.error.kind, cand.error.status, cand.error.message))
    return " · ".join(p for p in parts if p)


def markdown(result: FusionResult) -> str:
    """The answer, the verdict and a table of the models, as Markdown.

    Nothing from outside is live markup here: answers are sanitised HTML blocks
    and every other string is escaped (see :mod:`fusion_jupyter.safe_html`).
    """
    lines = [f'<div class="{STATIC_CLASS}"></div>', "", f"*{markdown_text(_summary(result))}*", ""]
    if result.ok:
        lines += [markdown_block(answer_html(result.answer)), ""]
    else:
        lines += [no_answer_markdown(result), ""]
        if result.status == "judge_failed":
            for cand in result.candidates:
                if cand.ok:
                    lines += [f"#### {markdown_text(cand.model)}", "", markdown_block(answer_html(cand.text)), ""]
    lines += _verdict_markdown(result)
    lines += ["| model | status | latency | tokens | cost |", "|---|---|---|---|---|"]
    for cand in result.candidates:
        status = _status(cand)
        if cand.error is not None:
            status += ": " + error_text(cand.error.kind, cand.error.status, cand.error.message)
        cells = [cand.model, status, format_seconds(cand.latency_s), format_tokens(cand.usage), format_cost(cand.usage)]
        lines.append("| " + " | ".join(markdown_text(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _verdict_markdown(result: FusionResult) -> list[str]:
    details = result.judge.verdict if result.judge is not None else None
    if result.judge is None or details is None:
        return []
    md = markdown_text
    lines = [f"**Verdict** ({md(result.mode)}, judge {md(result.judge.model)})", ""]
    if isinstance(details, MergeVerdict):
        lines.append(f"- confidence: {details.confidence:.0%}")
        lines += [f"- consensus: {md(c)}" for c in details.consensus]
        for item in details.contradictions:
            stances = "; ".join(f"{s.model}: {s.stance}" for s in item.stances)
            lines.append(f"- contradiction, {md(item.topic)}: {md(stances)}")
        lines += [f"- unique insight ({md(i.model)}): {md(i.insight)}" for i in details.unique_insights]
        lines += [f"- blind spot: {md(b)}" for b in details.blind_spots]
    else:
        scores = ", ".join(f"{model} {score:g}" for model, score in details.scores.items() if score is not None)
        lines.append(f"- winner: **{md(details.winner)}**" + (f" (scores: {md(scores)})" if scores else ""))
    if result.judge.rationale:
        lines.append(f"- judge's rationale: {md(result.judge.rationale)}")
    return lines + [""]


class AssemblyReporter(Protocol):
    """Shows the first assembly of the embedded model: ``update`` is its progress callback."""

    def update(self, done: int, total: int) -> None: ...

    def finish(self) -> None: ...


class TextAssembly:
    """The embedded model's first assembly as a line per tenth done, for widget-less front ends."""

    def __init__(self, model: str, stream: IO[str] | None = None) -> None:
        self.model, self._stream = model, stream
        self.tenths_shown = -1

    def update(self, done: int, total: int) -> None:
        tenths = done * 10 // total if total else 0
        if tenths > self.tenths_shown:
            self.tenths_shown = tenths
            mib = f"{done / 2**20:.0f}/{total / 2**20:.0f} MiB"
            print(f"assembling {self.model} (first run only): {tenths * 10}% ({mib})", file=self._out, flush=True)

    def finish(self) -> None:
        print(f"{self.model} is ready", file=self._out, flush=True)

    @property
    def _out(self) -> IO[str]:
        return self._stream or sys.stderr


class TextProgress:
    """Progress for terminals and other widget-less front ends: one line per status change,
    and every ``interval_s`` one line with each streaming model's tokens so far."""

    def __init__(
        self,
        stream: IO[str] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        interval_s: float = TOKENS_LINE_INTERVAL_S,
    ) -> None:
        self._stream = stream
        self.state = RunState(clock=clock)
        self._clock, self._interval = clock, interval_s
        self._last_tokens_line = clock()

    def handle(self, event: Event) -> None:
        self.state.apply(event)
        line = progress_line(event)
        if line and isinstance(event, CandidateFinished) and event.finish_reason == "length":
            line += " (truncated at max_tokens)"
        if line:
            self._print(line)
        if isinstance(event, CandidateDelta):
            self._tokens_line()

    def _tokens_line(self) -> None:
        now = self._clock()
        if now - self._last_tokens_line < self._interval:
            return
        self._last_tokens_line = now
        streaming = [p for p in self.state.panes.values() if p.status == STREAMING]
        if streaming:
            self._print("  tokens so far: " + ", ".join(f"{p.model} ~{p.chunks:,}" for p in streaming))

    def _print(self, line: str) -> None:
        print(line, file=self._stream or sys.stderr, flush=True)
