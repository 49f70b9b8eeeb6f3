"""Rendering a run's events on the terminal: a live table on stderr, then a summary.

The answer itself goes to stdout, so ``fusion run ... > answer.md`` captures only
the answer. When stdout is a terminal, a merge or debate judge's fused answer is
streamed there as it is written (the live table stops first, so the two never
interleave); the verdict follows on stderr.
"""

from __future__ import annotations

from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.markup import escape

from fusion_core.cli.progress import RunView
from fusion_core.display import (
    TRUNCATED,
    TRUNCATED_HINT,
    AnswerSoFar,
    answer_truncated,
    format_cost,
    progress_line,
    read_verdict,
    truncated_models,
    verdict_lines,
)
from fusion_core.events import Event, JudgeDelta, JudgeStarted, Notice
from fusion_core.result import FusionResult

REFRESH_PER_S = 8
# The judge's rationale is shown whole up to this length, then cut: the verdict lines follow.
RATIONALE_CHARS = 400


class TerminalRenderer:
    """Shows progress on ``console`` (stderr): live when it is a terminal, else line by line.

    With ``answer_out`` (stdout, when it is a terminal), the judge's fused answer is
    written there as it arrives; :meth:`finish_answer` completes it at the end.
    """

    def __init__(self, console: Console, answer_out: TextIO | None = None) -> None:
        self.console = console
        self.view = RunView()
        self._live: Live | None = None
        self._answer_out = answer_out
        self._answer = AnswerSoFar()
        self._streaming = False  # some of the answer is on answer_out
        self._restarted = False  # the judge was asked again after answer text was shown

    def __enter__(self) -> TerminalRenderer:
        if self.console.is_terminal:
            self._live = Live(
                self.view.table(), console=self.console, refresh_per_second=REFRESH_PER_S, transient=False
            )
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop_live()

    def _stop_live(self) -> None:
        if self._live is not None:
            self._live.update(self.view.table())
            self._live.__exit__(None, None, None)
            self._live = None

    def handle(self, event: Event) -> None:
        self.view.apply(event)
        if self._answer_out is not None and isinstance(event, JudgeStarted | JudgeDelta):
            self._stream_answer(event)
        if self._streaming:
            return  # the table is gone and stdout holds the answer: nothing more to draw
        if self._live is not None:
            if isinstance(event, Notice):
                self.console.print(f"[yellow]note:[/] {escape(event.message)}")
            self._live.update(self.view.table())
            return
        line = progress_line(event)
        if line:
            self.console.print(line, markup=False, highlight=False)

    def _stream_answer(self, event: JudgeStarted | JudgeDelta) -> None:
        assert self._answer_out is not None
        if isinstance(event, JudgeStarted):
            # A second judging (repair, or the swapped order) writes a new reply.
            self._restarted = self._restarted or self._streaming
            self._answer = AnswerSoFar()
            return
        new = self._answer.feed(event.text)
        if not new or self._restarted:
            return
        if not self._streaming:
            self._stop_live()
            self._streaming = True
        self._answer_out.write(new)
        self._answer_out.flush()

    def finish_answer(self, result: FusionResult) -> bool:
        """End a streamed answer; True when stdout now holds the final answer in full."""
        if not self._streaming or self._answer_out is None:
            return False
        shown = self._answer.text if not self._restarted else ""
        out = self._answer_out
        # The judge's final answer is its reply's field stripped: what was shown is a prefix
        # of it, give or take trailing whitespace.
        if result.ok and shown and result.answer.startswith(shown.rstrip()):
            rest = result.answer[len(shown) :] if result.answer.startswith(shown) else ""
            out.write(rest + ("" if (shown + rest).endswith("\n") else "\n"))
            out.flush()
            return True
        out.write("\n")
        out.flush()
        if result.ok:
            self.console.print("[yellow]note:[/] the judge rewrote its answer; the final answer follows")
        else:
            self.console.print("[yellow]note:[/] the answer above is incomplete: the judge failed")
        return False


def print_summary(console: Console, result: FusionResult) -> None:
    """Who answered (and whose answer is cut off), who failed and why, the verdict, cost and wall time."""
    cut = set(truncated_models(result))
    answered = [c.model + (f" [{TRUNCATED}]" if c.model in cut else "") for c in result.candidates if c.ok]
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
    judge = result.judge
    if judge is not None:
        cut_note = f" [yellow]({TRUNCATED}: the judge's reply stopped at max_tokens)[/]" if judge.truncated else ""
        if judge.error:
            console.print(f"[red]judge failed[/] {escape(judge.model)}: {escape(judge.error.message)}{cut_note}")
        else:
            why = f": {escape(judge.rationale[:RATIONALE_CHARS])}" if judge.rationale else ""
            console.print(f"[bold]judge[/] {escape(judge.model)}{why}{cut_note}")
        for line in verdict_lines(read_verdict(judge)):
            console.print(f"  {escape(line)}", highlight=False)
    if answer_truncated(result):
        console.print(f"[yellow]the answer is {TRUNCATED}[/]: {TRUNCATED_HINT}")
    cost = format_cost(result.usage)
    compute = f", compute {result.usage.compute_s:.2f}s" if result.usage.compute_s else ""
    console.print(
        f"[bold]total[/] {result.usage.prompt_tokens}+{result.usage.completion_tokens} tokens, "
        f"cost {cost}{compute}, wall {result.wall_s:.2f}s"
    )
