"""The result as text and Markdown, for front ends without live widgets.

Terminal IPython shows ``text/plain``; nbconvert, GitHub's notebook viewer
and a notebook reopened without its kernel show ``text/markdown``. The
``%%fuse`` magic returns a :class:`FusionOutput`, so the saved notebook keeps
the fused answer as static output even when the widget state is lost; in a
live JupyterLab the widget view's stylesheet hides this copy.
"""

from __future__ import annotations

import sys
from typing import IO, TYPE_CHECKING, Any

from fusion_core.display import error_text, format_cost, format_seconds, format_tokens, progress_line
from fusion_core.events import (
    Event,
)
from fusion_core.result import Candidate, FusionResult
from fusion_jupyter.html import STATIC_CLASS

if TYPE_CHECKING:
    from fusion_jupyter.view import FusionView

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


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
        lines += [f"- {hint}" for hint in hints]
        return "\n".join(lines)
    hint = result.judge.error.hint if result.judge and result.judge.error else ""
    return "**No fused answer: the judge failed.** Every candidate's answer is kept in the result's `candidates`." + (
        f"\n\n{hint}" if hint else ""
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


def _candidate_line(cand: Candidate) -> str:
    status = {"ok": "done"}.get(cand.status, cand.status)
    parts = [status, format_seconds(cand.latency_s), format_tokens(cand.usage), format_cost(cand.usage)]
    if cand.error is not None:
        parts.append(error_text(cand.error.kind, cand.error.status, cand.error.message))
    return " · ".join(p for p in parts if p)


def markdown(result: FusionResult) -> str:
    """The answer, the verdict and a table of the models, as Markdown."""
    lines = [f'<div class="{STATIC_CLASS}"></div>', "", f"*{_summary(result)}*", ""]
    if result.ok:
        lines += [result.answer, ""]
    else:
        lines += [no_answer_markdown(result), ""]
        if result.status == "judge_failed":
            for cand in result.candidates:
                if cand.ok:
                    lines += [f"#### {cand.model}", "", cand.text, ""]
    lines += _verdict_markdown(result)
    lines += ["| model | status | latency | tokens | cost |", "|---|---|---|---|---|"]
    for cand in result.candidates:
        status = {"ok": "done"}.get(cand.status, cand.status)
        if cand.error is not None:
            status += ": " + error_text(cand.error.kind, cand.error.status, cand.error.message)
        cells = [cand.model, status, format_seconds(cand.latency_s), format_tokens(cand.usage), format_cost(cand.usage)]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _verdict_markdown(result: FusionResult) -> list[str]:
    if result.judge is None or not result.judge.verdict:
        return []
    data = result.judge.verdict
    lines = [f"**Verdict** ({result.mode}, judge {result.judge.model})", ""]
    if "winner" in data:
        scores = ", ".join(f"{model} {score:g}" for model, score in (data.get("scores") or {}).items())
        lines.append(f"- winner: **{data['winner']}**" + (f" (scores: {scores})" if scores else ""))
    else:
        if isinstance(data.get("confidence"), int | float):
            lines.append(f"- confidence: {data['confidence']:.0%}")
        lines += [f"- consensus: {c}" for c in data.get("consensus") or []]
        for item in data.get("contradictions") or []:
            stances = "; ".join(f"{s.get('model')}: {s.get('stance')}" for s in item.get("stances") or [])
            lines.append(f"- contradiction, {item.get('topic')}: {stances}")
        lines += [f"- unique insight ({i.get('model')}): {i.get('insight')}" for i in data.get("unique_insights") or []]
        lines += [f"- blind spot: {b}" for b in data.get("blind_spots") or []]
    if result.judge.rationale:
        lines.append(f"- rationale: {result.judge.rationale}")
    return lines + [""]


class TextProgress:
    """Progress as one line per status change, for terminals and other widget-less front ends."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream

    def handle(self, event: Event) -> None:
        line = progress_line(event)
        if line:
            print(line, file=self._stream or sys.stderr, flush=True)
