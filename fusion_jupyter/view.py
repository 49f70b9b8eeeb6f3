"""The live ipywidgets view of a fusion run.

A header (mode, pool, judge, live totals), one pane per model with a status
badge, the judge's progress, then the fused answer (Markdown rendered to
sanitised HTML, see :mod:`fusion_jupyter.safe_html`), the verdict and a
latency/cost chart. :class:`FusionView` is fed the engine's events in
the kernel thread; each change sets a widget trait, whose comm message goes
out at once, so panes update while the cell is still busy.

Updates are throttled per part (each pane, the header, ...) to at most one
every ``min_interval_s``, so a fast stream cannot flood the front end; status
changes, the judge's end and the end of the run are drawn at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from html import escape
from typing import Any

import ipywidgets as widgets
from IPython.display import HTML

from fusion_core.events import Event, JudgeFailed, JudgeFinished, RunFinished, RunStarted
from fusion_core.result import FusionResult
from fusion_jupyter import html
from fusion_jupyter.fallback import no_answer_markdown
from fusion_jupyter.safe_html import answer_html
from fusion_jupyter.state import (
    HEADER,
    JUDGE,
    NOTICES,
    RESULT,
    PaneState,
    RunState,
    pane_part,
)

# At most ten redraws per second of any one part of the view.
DEFAULT_MIN_INTERVAL_S = 0.1
# auto-fit (not auto-fill): with few models the panes stretch over the whole width.
PANE_MIN_WIDTH = "260px"
PLAIN_PLACEHOLDER = "[Fusion live view: shown while the kernel runs; the result follows as text]"


class AssemblyProgress:
    """A progress bar while the embedded model is written out, before its first run."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.label = widgets.HTML(f"assembling <code>{escape(model)}</code> (first run only)")
        self.bar = widgets.FloatProgress(value=0.0, min=0.0, max=1.0)
        self.numbers = widgets.HTML()
        self.widget = widgets.HBox([self.label, self.bar, self.numbers])
        self.widget.add_class("fusion-assembly")

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def update(self, done: int, total: int) -> None:
        """The progress callback of :func:`fusion_core.local_models.prepare_embedded_model`."""
        self.bar.value = done / total if total else 0.0
        self.numbers.value = f"{done / 2**20:.0f} / {total / 2**20:.0f} MiB"

    def finish(self) -> None:
        self.bar.value, self.bar.bar_style = 1.0, "success"
        self.label.value = f"<code>{escape(self.model)}</code> is ready"


class PaneWidgets:
    """The widgets of one model's pane."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.status = ""
        self.head = widgets.HTML()
        self.body = widgets.HTML()
        self.box = widgets.VBox([self.head, self.body])
        self.box.add_class("fusion-pane")

    def draw(self, pane: PaneState, debate: bool, now: float) -> None:
        if pane.status != self.status:
            if self.status:
                self.box.remove_class(f"fusion-status-{self.status}")
            self.box.add_class(f"fusion-status-{pane.status}")
            self.status = pane.status
        self.head.value = html.pane_head(pane, debate, now)
        self.body.value = html.pane_body(pane, debate)


class FusionView:
    """A live view of one run; display it, then pass it every event with :meth:`handle`."""

    def __init__(
        self,
        pool: Sequence[str],
        judge: str,
        *,
        clock: Callable[[], float] = time.perf_counter,
        min_interval_s: float = DEFAULT_MIN_INTERVAL_S,
    ) -> None:
        self.state = RunState(clock=clock)
        self.panes: dict[str, PaneWidgets] = {}
        self._pool, self._judge = tuple(pool), judge
        self._clock, self._interval = clock, min_interval_s
        self._pending: set[str] = set()
        self._drawn_at: dict[str, float] = {}

        self.header = widgets.HTML(html.header(self.state, self._pool, judge))
        self.notices = widgets.HTML()
        self.pane_box = widgets.GridBox(
            layout=widgets.Layout(
                grid_template_columns=f"repeat(auto-fit, minmax({PANE_MIN_WIDTH}, 1fr))", grid_gap="8px", width="100%"
            )
        )
        self.judge = widgets.HTML()
        self.answer_title = widgets.HTML('<div class="fusion-section-title">Fused answer</div>')
        self.answer = widgets.Output()
        self.answer.add_class("fusion-answer")
        self.verdict = widgets.HTML()
        self.chart = widgets.HTML()
        for hidden in (self.answer_title, self.answer):
            hidden.layout.display = "none"
        self.widget = widgets.VBox(
            [
                widgets.HTML(html.STYLE),
                self.header,
                self.notices,
                self.pane_box,
                self.judge,
                self.answer_title,
                self.answer,
                self.verdict,
                self.chart,
            ]
        )
        self.widget.add_class("fusion-view")

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = self.widget._repr_mimebundle_(**kwargs)
        if isinstance(bundle, dict):
            # Viewers without widgets show this instead of "VBox(children=(HTML(value='<style>...".
            bundle["text/plain"] = PLAIN_PLACEHOLDER
        return bundle

    @property
    def result(self) -> FusionResult | None:
        return self.state.result

    def handle(self, event: Event) -> None:
        """Apply one event; redraw what is due."""
        if isinstance(event, RunStarted):
            self.state.apply(event)
            self.panes = {m: PaneWidgets(m) for m in event.models}
            self.pane_box.children = [p.box for p in self.panes.values()]
            self._pending |= {HEADER, JUDGE, *map(pane_part, event.models)}
            self.flush()
            return
        self._pending |= self.state.apply(event) | {HEADER}
        # The judge's verdict (or failure) and the end of the run are drawn at once, never throttled.
        if isinstance(event, JudgeFinished | JudgeFailed | RunFinished):
            self.flush()
        else:
            self._draw(urgent=False)

    def cancel(self) -> None:
        """The run was interrupted: panes still going show cancelled and keep their text."""
        self._pending |= self.state.cancel_all() | {RESULT}
        self.flush()

    def hide(self) -> None:
        """Take the view off the page (the run never started)."""
        self.widget.layout.display = "none"

    def flush(self) -> None:
        """Draw every pending change now."""
        self._draw(urgent=True)

    # -- drawing ------------------------------------------------------------------

    def _draw(self, *, urgent: bool) -> None:
        now = self._clock()
        for part in sorted(self._pending):
            if urgent or self._is_due(part, now):
                self._pending.discard(part)
                self._drawn_at[part] = now
                self._draw_part(part)

    def _is_due(self, part: str, now: float) -> bool:
        if part.startswith("pane:"):
            pane = self.state.panes.get(part[5:])
            if pane is not None and pane.status_changed:
                return True
        return now - self._drawn_at.get(part, float("-inf")) >= self._interval

    def _draw_part(self, part: str) -> None:
        debate = self.state.mode == "debate"
        if part.startswith("pane:"):
            model = part[5:]
            pane = self.state.panes[model]
            widget = self.panes.get(model)
            if widget is None:  # a member the RunStarted event did not announce
                widget = self.panes[model] = PaneWidgets(model)
                self.pane_box.children = [*self.pane_box.children, widget.box]
            widget.draw(pane, debate, self._clock())
            pane.status_changed = False
        elif part == HEADER:
            self.header.value = html.header(self.state, self._pool, self._judge)
        elif part == NOTICES:
            self.notices.value = html.notices(self.state.notices)
        elif part == JUDGE:
            self.judge.value = html.judge_line(self.state)
        elif part == RESULT:
            self._draw_result()

    def _draw_result(self) -> None:
        result = self.state.result
        self.chart.value = html.chart(self.state)
        if result is None:
            return
        self.verdict.value = html.verdict(result)
        self.answer_title.layout.display = None
        self.answer.layout.display = None
        self.answer.outputs = ()  # not clear_output(): outside a kernel that prints escape codes
        text = result.answer if result.ok else no_answer_markdown(result)
        self.answer.append_display_data(_safe_html(text))


def _safe_html(markdown: str) -> Any:
    """The Markdown rendered and sanitised here: the front end never renders model text as live markup."""
    return HTML(answer_html(markdown))  # type: ignore[no-untyped-call]
