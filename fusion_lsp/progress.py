"""Work-done progress (``$/progress``) for a review: each model's state, cancellable from the editor.

The engine's event stream drives :class:`fusion_core.run_state.RunState`, the
state machine the CLI and the notebook show too: a model is *waiting*,
*streaming*, *done*, *failed* or *cancelled*. Reports are sent only when a
model's status changes, never per streamed token. Cancelling from the editor (``window/workDoneProgress/cancel``)
cancels the review task.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from fusion_core.events import CandidateEvent, Event, Notice
from fusion_core.run_state import FINAL_STATUSES, RunState

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

CREATE_TIMEOUT_S = 2.0
_log = logging.getLogger(__name__)


class ReviewProgress:
    """One review's progress bar; a no-op when the client cannot show one."""

    def __init__(
        self,
        ls: LanguageServer,
        token: types.ProgressToken | None,
        models: Sequence[str],
        on_notice: Callable[[str], None],
    ) -> None:
        self._ls = ls
        self.token = token
        self._state = RunState.of(models)
        self._on_notice = on_notice
        self._ended = False

    @classmethod
    async def create(
        cls,
        ls: LanguageServer,
        given: types.ProgressToken | None,
        models: Sequence[str],
        on_notice: Callable[[str], None],
    ) -> ReviewProgress:
        """Use the client's token, or ask the client for one if it supports progress."""
        token = given
        if token is None and _supports_progress(ls):
            token = f"fusion-review-{uuid.uuid4().hex[:12]}"
            try:
                async with asyncio.timeout(CREATE_TIMEOUT_S):
                    await ls.work_done_progress.create_async(token)
            except (TimeoutError, Exception) as exc:  # noqa: BLE001 - progress is optional
                _log.debug("no progress bar: %s", exc)
                ls.work_done_progress.tokens.pop(token, None)
                token = None
        return cls(ls, token, models, on_notice)

    def begin(self, title: str, task: asyncio.Task[Any]) -> None:
        """Show the bar; cancelling it from the editor cancels ``task``."""
        if self.token is None:
            return
        self._ls.work_done_progress.begin(
            self.token,
            types.WorkDoneProgressBegin(title=title, cancellable=True, message=self._message(), percentage=0),
        )
        future: Future[Any] | None = self._ls.work_done_progress.tokens.get(self.token)
        if future is not None:
            loop = asyncio.get_running_loop()
            future.add_done_callback(lambda f: loop.call_soon_threadsafe(task.cancel) if f.cancelled() else None)

    def handle(self, event: Event) -> None:
        """Update a model's state from an engine event."""
        if isinstance(event, Notice):
            self._on_notice(event.message)
            return
        # Only the members this review announced; the judge's and the run's events change no row.
        if not isinstance(event, CandidateEvent) or event.model not in self._state.panes:
            return
        pane = self._state.panes[event.model]
        before = pane.status
        self._state.apply(event)
        if pane.status == before:
            return
        if self.token is not None and not self._ended:
            panes = self._state.panes.values()
            finished = sum(p.status in FINAL_STATUSES for p in panes)
            self._ls.work_done_progress.report(
                self.token,
                types.WorkDoneProgressReport(
                    message=self._message(),
                    percentage=int(100 * finished / max(len(panes), 1)),
                    cancellable=True,
                ),
            )

    def end(self, message: str) -> None:
        """Close the bar (once) and forget its token."""
        if self.token is None or self._ended:
            return
        self._ended = True
        self._ls.work_done_progress.end(self.token, types.WorkDoneProgressEnd(message=message))
        self._ls.work_done_progress.tokens.pop(self.token, None)

    @property
    def states(self) -> dict[str, str]:
        """Each model's status, in the run state's words."""
        return {model: pane.status for model, pane in self._state.panes.items()}

    def _message(self) -> str:
        return ", ".join(f"{model}: {status}" for model, status in self.states.items())


def _supports_progress(ls: LanguageServer) -> bool:
    window = ls.client_capabilities.window
    return bool(window and window.work_done_progress)
