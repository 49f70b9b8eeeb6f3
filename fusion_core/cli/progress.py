"""Progress on stderr: the live table of a run, and a bar while the embedded model is assembled.

The table draws :class:`fusion_core.run_state.RunState`, the same per-model
state machine (and status words) the notebook and the language server use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from fusion_core.config import LocalConfig
from fusion_core.display import TRUNCATED, format_cost
from fusion_core.events import Event
from fusion_core.run_state import CANCELLED, DONE, FAILED, FINAL_STATUSES, STREAMING, WAITING, PaneState, RunState

STATE_STYLE = {WAITING: "dim", STREAMING: "cyan", DONE: "green", FAILED: "red", CANCELLED: "yellow"}
# A failure's detail is cut here so one row stays one line.
DETAIL_CHARS = 80


@dataclass
class RunView:
    """The live table of a run: one row per model and one for the judge."""

    state: RunState = field(default_factory=RunState)

    def apply(self, event: Event) -> None:
        """Update from one event."""
        self.state.apply(event)

    def table(self) -> Table:
        """The table as it stands now."""
        table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
        for column in ("model", "state", "tokens", "latency", "cost", ""):
            table.add_column(column, justify="right" if column in {"tokens", "latency", "cost"} else "left")
        now = self.state.clock()
        for name, pane in self.state.panes.items():
            # A finished model shows its usage (all rounds); one still writing, its streamed chunks.
            usage = pane.usage if pane.status == DONE else None
            tokens = str(usage.completion_tokens) if usage else (f"~{pane.chunks}" if pane.chunks else "")
            if pane.status in FINAL_STATUSES:
                latency = f"{pane.latency_s:.2f}s"
            else:
                latency = f"{now - pane.started_at:.1f}s" if pane.started_at is not None else ""
            state = pane.status + (f" r{pane.round}" if pane.round > 1 else "")
            table.add_row(
                Text(name),  # a model name is text, never markup
                Text(state, style=STATE_STYLE.get(pane.status, "")),
                tokens,
                latency,
                format_cost(usage) if usage else "",
                Text(_detail(pane)[:DETAIL_CHARS], style="dim"),
            )
        judge = self.state.judge
        if judge.model:
            table.add_row(
                Text(f"judge {judge.model}", style="bold"),
                Text(judge.status, style=STATE_STYLE.get(judge.status, "")),
                f"~{judge.chunks}" if judge.chunks else "",
                "",
                format_cost(judge.outcome.usage) if judge.outcome else "",
                Text(_error_detail(judge.error.kind, judge.error.message) if judge.error else "", style="dim"),
            )
        return table


def _detail(pane: PaneState) -> str:
    if pane.status == FAILED and pane.error is not None:
        return _error_detail(pane.error.kind, pane.error.message.removeprefix(pane.model + ": "))
    if pane.status == CANCELLED:
        return "straggler cancelled"
    return f"{TRUNCATED} (max_tokens)" if pane.truncated else ""


def _error_detail(kind: str, message: str) -> str:
    return f"{kind}: {message}"


def prepare_embedded_model(console: Console, local: LocalConfig) -> None:
    """Make sure local/gemma-3-270m is assembled, showing a bar if that takes a while."""
    from fusion_core import local_models

    if local_models.embedded_model_ready(local.cache_dir):
        return
    columns = (
        TextColumn("assembling local/gemma-3-270m (first run only)"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("assemble", total=None)

        def report(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        local_models.prepare_embedded_model(local.cache_dir, progress=report)
    console.print("local/gemma-3-270m is ready")
