"""Rendering a run's events on the terminal: a live table on stderr, then a summary.

The answer itself goes to stdout (see :mod:`fusion_core.cli.main`), so
``fusion run ... > answer.md`` captures only the answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from fusion_core.display import format_cost, progress_line
from fusion_core.events import (
    CandidateCancelled,
    CandidateDelta,
    CandidateFailed,
    CandidateFinished,
    CandidateStarted,
    Event,
    JudgeDelta,
    JudgeStarted,
    Notice,
    RunFinished,
    RunStarted,
)
from fusion_core.result import FusionResult
from fusion_core.usage import Usage

STATE_STYLE = {
    "waiting": "dim",
    "streaming": "cyan",
    "done": "green",
    "failed": "red",
    "cancelled": "yellow",
}
REFRESH_PER_S = 8


@dataclass
class _Row:
    state: str = "waiting"
    chunks: int = 0
    started: float | None = None
    latency_s: float | None = None
    usage: Usage | None = None
    detail: str = ""
    round: int = 1


@dataclass
class RunView:
    """State of the live display, updated by events."""

    rows: dict[str, _Row] = field(default_factory=dict)
    judge: str = ""
    judge_state: str = "waiting"
    judge_chunks: int = 0
    mode: str = ""
    started: float = field(default_factory=time.perf_counter)

    def apply(self, event: Event) -> None:
        now = time.perf_counter()
        if isinstance(event, RunStarted):
            self.mode, self.judge = event.mode, event.judge
            self.rows = {m: _Row() for m in event.models}
        elif isinstance(event, CandidateStarted):
            self.rows[event.model] = _Row(state="streaming", started=now, round=event.round)
        elif isinstance(event, CandidateDelta):
            self.rows[event.model].chunks += 1
        elif isinstance(event, CandidateFinished):
            row = self.rows[event.model]
            row.state, row.latency_s, row.usage = "done", event.latency_s, event.usage
        elif isinstance(event, CandidateFailed):
            row = self.rows[event.model]
            row.state, row.latency_s = "failed", event.latency_s
            row.detail = f"{event.error.kind}: {event.error.message.removeprefix(event.model + ': ')}"
        elif isinstance(event, CandidateCancelled):
            row = self.rows[event.model]
            row.state, row.latency_s, row.detail = "cancelled", event.latency_s, "straggler cancelled"
        elif isinstance(event, JudgeStarted):
            self.judge_state = "judging" if event.attempt == 1 else "repairing"
        elif isinstance(event, JudgeDelta):
            self.judge_chunks += 1
        elif isinstance(event, RunFinished):
            judge = event.result.judge
            self.judge_state = "failed" if judge is None or judge.error else "done"

    def table(self) -> Table:
        table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
        for column in ("model", "state", "tokens", "latency", "cost", ""):
            table.add_column(column, justify="right" if column in {"tokens", "latency", "cost"} else "left")
        now = time.perf_counter()
        for name, row in self.rows.items():
            tokens = str(row.usage.completion_tokens) if row.usage else (f"~{row.chunks}" if row.chunks else "")
            if row.latency_s is not None:
                latency = f"{row.latency_s:.2f}s"
            else:
                latency = f"{now - row.started:.1f}s" if row.started else ""
            state = row.state + (f" r{row.round}" if row.round > 1 else "")
            table.add_row(
                Text(name),  # a model name is text, never markup
                Text(state, style=STATE_STYLE.get(row.state, "")),
                tokens,
                latency,
                format_cost(row.usage) if row.usage else "",
                Text(row.detail[:80], style="dim"),
            )
        if self.judge:
            table.add_row(
                Text(f"judge {self.judge}", style="bold"),
                self.judge_state,
                f"~{self.judge_chunks}" if self.judge_chunks else "",
                "",
                "",
                "",
            )
        return table


class TerminalRenderer:
    """Shows progress on ``console`` (stderr): live when it is a terminal, else line by line."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.view = RunView()
        self._live: Live | None = None

    def __enter__(self) -> TerminalRenderer:
        if self.console.is_terminal:
            self._live = Live(
                self.view.table(), console=self.console, refresh_per_second=REFRESH_PER_S, transient=False
            )
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self.view.table())
            self._live.__exit__(None, None, None)

    def handle(self, event: Event) -> None:
        self.view.apply(event)
        if self._live is not None:
            if isinstance(event, Notice):
                self.console.print(f"[yellow]note:[/] {escape(event.message)}")
            self._live.update(self.view.table())
            return
        line = progress_line(event)
        if line:
            self.console.print(line, markup=False, highlight=False)


def print_summary(console: Console, result: FusionResult) -> None:
    """Who answered, who failed and why, total cost and wall time."""
    answered = [c.model for c in result.candidates if c.ok]
    console.print(
        f"[bold]answered[/] ({len(answered)}/{len(result.candidates)}): " + escape(", ".join(answered) or "none")
    )
    for cand in result.candidates:
        if cand.status == "failed" and cand.error:
            message = cand.error.message.removeprefix(cand.model + ": ")
            console.print(
                f"  [red]failed[/] {escape(cand.model)}: {cand.error.kind}: {escape(message)}", highlight=False
            )
        elif cand.status == "cancelled":
            console.print(f"  [yellow]cancelled[/] {escape(cand.model)} (quorum met)")
    if result.judge is not None:
        if result.judge.error:
            console.print(f"[red]judge failed[/] {escape(result.judge.model)}: {escape(result.judge.error.message)}")
        elif result.judge.rationale:
            console.print(f"[bold]judge[/] {escape(result.judge.model)}: {escape(result.judge.rationale[:300])}")
        swap = result.judge.verdict.get("swap")
        if isinstance(swap, dict) and not swap.get("agree"):
            console.print(f"[yellow]position-bias check:[/] verdicts disagreed, confidence {swap['confidence']}")
    cost = format_cost(result.usage)
    compute = f", compute {result.usage.compute_s:.2f}s" if result.usage.compute_s else ""
    console.print(
        f"[bold]total[/] {result.usage.prompt_tokens}+{result.usage.completion_tokens} tokens, "
        f"cost {cost}{compute}, wall {result.wall_s:.2f}s"
    )
