"""The one per-model state machine of a run, folded from the engine's events.

Every front end reads it: the notebook's widget view and text progress, the
CLI's live table and the language server's ``$/progress``. :class:`RunState`
knows nothing about widgets or terminals. ``apply`` returns which parts
changed (``header``, ``notices``, ``judge``, ``result``, ``pane:<model>``), so
a view can redraw only those; a view that redraws everything ignores it.

One status vocabulary for every front end:

- a pool member (:class:`PaneState`): ``waiting`` until its request starts,
  ``streaming`` while it writes (again in each debate round), then ``done``,
  ``failed`` or ``cancelled`` (a straggler after the quorum, or an interrupted run);
- the judge (:class:`JudgeState`): ``waiting``, ``judging`` (``repairing`` on a
  second attempt), then ``done`` or ``failed``; ``cancelled`` when the run was
  interrupted, ``skipped`` when no judge ran (one model alone, or nothing to judge).

These are display words. A result's :class:`~fusion_core.result.Candidate`
keeps its JSON status (``ok``/``failed``/``cancelled``) unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from fusion_core.events import (
    CandidateCancelled,
    CandidateDelta,
    CandidateEvent,
    CandidateFailed,
    CandidateFinished,
    CandidateStarted,
    Event,
    JudgeDelta,
    JudgeFailed,
    JudgeFinished,
    JudgeStarted,
    Notice,
    RoundFinished,
    RunFinished,
    RunStarted,
)
from fusion_core.result import ErrorInfo, FusionResult, JudgeOutcome
from fusion_core.usage import Usage

# A pool member's statuses (also the judge's first and last words), in the words every front end shows.
WAITING, STREAMING, DONE, FAILED, CANCELLED = "waiting", "streaming", "done", "failed", "cancelled"
FINAL_STATUSES = frozenset({DONE, FAILED, CANCELLED})
# The judge's own words while it works, and when no judge ran.
JUDGING, REPAIRING, SKIPPED = "judging", "repairing", "skipped"
JUDGE_FINAL_STATUSES = frozenset({DONE, FAILED, SKIPPED})

# Names of the parts ``RunState.apply`` reports as changed.
HEADER, NOTICES, JUDGE, RESULT = "header", "notices", "judge", "result"


def pane_part(model: str) -> str:
    """The part name of one model's pane."""
    return "pane:" + model


@dataclass
class PaneState:
    """One pool member: its text per round, status and what it cost."""

    model: str
    label: str = ""
    status: str = WAITING
    round: int = 1
    texts: dict[int, str] = field(default_factory=dict)
    latency_s: float = 0.0
    usage: Usage | None = None
    error: ErrorInfo | None = None
    started_at: float | None = None
    # Streamed chunks in the current round: about one token each, shown while the model writes.
    chunks: int = 0
    # Stopped at max_tokens (finish_reason "length"): the text is cut off.
    truncated: bool = False
    # Set when the status (not just the text) changed since the view last drew it.
    status_changed: bool = False

    @property
    def text(self) -> str:
        """The latest round's text."""
        return self.texts.get(self.round, "")

    def add_usage(self, usage: Usage) -> None:
        self.usage = usage if self.usage is None else self.usage + usage


@dataclass
class JudgeState:
    """The judge: its status, streamed chunks, and what it decided once it has."""

    model: str = ""
    status: str = WAITING
    attempt: int = 1
    chunks: int = 0
    error: ErrorInfo | None = None
    outcome: JudgeOutcome | None = None


@dataclass
class RunState:
    """Everything the view shows, updated event by event."""

    clock: Callable[[], float] = time.perf_counter
    mode: str = ""
    judge: JudgeState = field(default_factory=JudgeState)
    rounds: int = 1
    panes: dict[str, PaneState] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    finished_rounds: dict[int, bool] = field(default_factory=dict)
    result: FusionResult | None = None
    cancelled: bool = False
    started_at: float | None = None
    ended_at: float | None = None

    @classmethod
    def of(cls, models: Sequence[str], *, clock: Callable[[], float] = time.perf_counter) -> RunState:
        """A state that already knows its members (for streams without ``RunStarted``, e.g. a review)."""
        state = cls(clock=clock)
        state.panes = {m: PaneState(model=m) for m in models}
        return state

    def apply(self, event: Event) -> set[str]:
        """Update from one event; returns the names of the parts that changed."""
        now = self.clock()
        if isinstance(event, RunStarted):
            self.mode, self.rounds, self.started_at = event.mode, event.rounds, now
            self.judge = JudgeState(model=event.judge)
            self.panes = {m: PaneState(model=m) for m in event.models}
            return {HEADER, JUDGE, *map(pane_part, event.models)}
        if isinstance(event, Notice):
            self.notices.append(event.message)
            return {NOTICES}
        if isinstance(event, RoundFinished):
            self.finished_rounds[event.round] = event.converged
            return {HEADER}
        if isinstance(event, RunFinished):
            self._finish(event.result)
            return {HEADER, JUDGE, RESULT, *map(pane_part, self.panes)}
        if isinstance(event, JudgeStarted | JudgeDelta | JudgeFinished | JudgeFailed):
            self._judge_event(event)
            return {JUDGE}
        if isinstance(event, CandidateEvent):
            return self._pane_event(event, now)
        return set()

    def _pane_event(self, event: CandidateEvent, now: float) -> set[str]:
        model = event.model
        pane = self.panes.setdefault(model, PaneState(model=model))
        if isinstance(event, CandidateStarted):
            pane.label, pane.round, pane.started_at = event.label, event.round, now
            pane.texts[event.round] = ""
            pane.error, pane.chunks, pane.truncated = None, 0, False
            self._set_status(pane, STREAMING)
        elif isinstance(event, CandidateDelta):
            pane.texts[event.round] = pane.texts.get(event.round, "") + event.text
            pane.chunks += 1
        elif isinstance(event, CandidateFinished):
            pane.texts[event.round] = event.text
            pane.latency_s += event.latency_s
            pane.truncated = event.finish_reason == "length"
            pane.add_usage(event.usage)
            self._set_status(pane, DONE)
        elif isinstance(event, CandidateFailed):
            pane.texts[event.round] = event.text
            pane.latency_s += event.latency_s
            pane.error = event.error
            self._set_status(pane, FAILED)
        elif isinstance(event, CandidateCancelled):
            pane.texts[event.round] = event.text
            pane.latency_s += event.latency_s
            self._set_status(pane, CANCELLED)
        else:
            return set()
        changed = {pane_part(model)}
        if pane.status_changed:
            changed.add(HEADER)
        return changed

    def _judge_event(self, event: JudgeStarted | JudgeDelta | JudgeFinished | JudgeFailed) -> None:
        if isinstance(event, JudgeStarted):
            self.judge.model = event.model
            self.judge.status = JUDGING if event.attempt == 1 else REPAIRING
            self.judge.attempt = event.attempt
        elif isinstance(event, JudgeDelta):
            self.judge.chunks += 1
        elif isinstance(event, JudgeFinished):
            self.judge.status, self.judge.outcome = DONE, event.outcome
        else:
            self.judge.status, self.judge.error, self.judge.outcome = FAILED, event.error, event.outcome

    @staticmethod
    def _set_status(pane: PaneState, status: str) -> None:
        if pane.status != status:
            pane.status = status
            pane.status_changed = True

    def _finish(self, result: FusionResult) -> None:
        self.result, self.ended_at = result, self.clock()
        rounds = result.rounds or (result.candidates,)
        spent: dict[str, Usage] = {}
        for rnd in rounds:
            for cand in rnd:
                spent[cand.model] = spent.get(cand.model, Usage()) + cand.usage
        for cand in result.candidates:
            pane = self.panes.setdefault(cand.model, PaneState(model=cand.model))
            pane.label = cand.label
            # The result's usage carries list-price estimates the events could not know yet.
            pane.usage = spent.get(cand.model, cand.usage)
            if pane.status not in FINAL_STATUSES:
                self._set_status(pane, {"ok": DONE, "failed": FAILED}.get(cand.status, CANCELLED))
            if cand.error is not None and pane.error is None:
                pane.error = cand.error
            pane.truncated = cand.truncated
        judge = result.judge
        self.judge.outcome = judge
        if judge is None:
            self.judge.status = SKIPPED
        elif judge.error is not None:
            self.judge.status, self.judge.error = FAILED, judge.error
        else:
            self.judge.status = DONE

    def cancel_all(self) -> set[str]:
        """The run was interrupted: every pane still going shows cancelled, keeping its text."""
        self.cancelled, self.ended_at = True, self.clock()
        changed = {HEADER, JUDGE}
        for pane in self.panes.values():
            if pane.status not in FINAL_STATUSES:
                if pane.started_at is not None:
                    pane.latency_s += self.ended_at - pane.started_at
                self._set_status(pane, CANCELLED)
                changed.add(pane_part(pane.model))
        if self.judge.status not in JUDGE_FINAL_STATUSES:
            self.judge.status = CANCELLED
        return changed

    # -- totals for the header --------------------------------------------------

    @property
    def usage(self) -> Usage:
        """What the run has cost so far (the result's total once it has finished)."""
        if self.result is not None:
            return self.result.usage
        return sum((p.usage for p in self.panes.values() if p.usage is not None), Usage())

    @property
    def wall_s(self) -> float:
        if self.result is not None:
            return self.result.wall_s
        if self.started_at is None:
            return 0.0
        end = self.ended_at if self.ended_at is not None else self.clock()
        return end - self.started_at

    @property
    def phase(self) -> str:
        """One word for the header: running, done, no answer, judge failed or cancelled."""
        if self.cancelled:
            return CANCELLED
        if self.result is None:
            return JUDGING if self.judge.status in {JUDGING, REPAIRING} else "running"
        return {"ok": DONE, "all_failed": "no answer", "judge_failed": "judge failed"}[self.result.status]
