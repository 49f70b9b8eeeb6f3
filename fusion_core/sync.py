"""Synchronous entry points that work even inside a running event loop.

Jupyter and pygls already run an asyncio loop in the calling thread, where
``asyncio.run`` is forbidden. So synchronous calls run the engine on a
dedicated background loop thread (an anyio blocking portal). Each
:class:`~fusion_core.engine.Fusion` session owns one :class:`SyncPortal`,
started by its first synchronous call, so HTTP connections and loaded models
are reused, and stopped by ``close()`` (or leaving ``with Fusion() as f:``).
A portal still running when the interpreter exits is stopped then.
The caller's thread only waits on a queue or a future, polling, which keeps
Ctrl-C (a KeyboardInterrupt in the caller's thread) able to cancel the call.
"""

from __future__ import annotations

import asyncio
import atexit
import queue
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager
from typing import TypeVar

from anyio.from_thread import BlockingPortal, start_blocking_portal

from fusion_core.events import Event, RunFinished
from fusion_core.result import FusionResult

__all__ = ["POLL_S", "SyncPortal", "collect_result"]

# How often the waiting thread wakes up; lets KeyboardInterrupt land promptly.
POLL_S = 0.1

T = TypeVar("T")

_running_lock = threading.Lock()
# Strong references to started portals: a session dropped without close() must still
# have its loop thread stopped at exit, or interpreter teardown would wait on it forever.
_running: set[SyncPortal] = set()


class SyncPortal:
    """One session's background event loop: started on first use, stopped by :meth:`close`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entry: tuple[AbstractContextManager[BlockingPortal], BlockingPortal] | None = None

    @property
    def started(self) -> bool:
        """True while the loop thread runs."""
        return self._entry is not None

    def portal(self) -> BlockingPortal:
        """The running portal, started now if needed."""
        with self._lock:
            if self._entry is None:
                manager = start_blocking_portal()
                self._entry = (manager, manager.__enter__())
                with _running_lock:
                    _running.add(self)
            return self._entry[1]

    def close(self, aclose: Callable[[], Awaitable[None]] | None = None) -> None:
        """Run ``aclose`` on the loop (closing what belongs to it), then stop the loop thread."""
        with self._lock:
            entry, self._entry = self._entry, None
            with _running_lock:
                _running.discard(self)
        if entry is None:
            return
        manager, portal = entry
        try:
            if aclose is not None:
                portal.call(aclose)
        finally:
            manager.__exit__(None, None, None)

    def call(self, func: Callable[[], Awaitable[T]]) -> T:
        """Await ``func()`` on the loop and return its result; Ctrl-C cancels it and waits until it stopped."""
        stopped = threading.Event()

        async def run() -> T:
            return await func()

        def start() -> list[asyncio.Task[T]]:
            # A plain asyncio task, not portal.start_task_soon: anyio's cancel scope would cancel
            # every await of the cleanup too, so HTTP streams were abandoned instead of closed.
            task = asyncio.get_running_loop().create_task(run())
            task.add_done_callback(lambda _: stopped.set())
            return [task]  # in a list: the portal would await a task it is handed back

        portal = self.portal()
        (task,) = portal.call(start)
        try:
            while not stopped.wait(POLL_S):
                pass
        finally:
            if not stopped.is_set():
                portal.call(lambda: task.cancel())
                stopped.wait()  # connections closed, llama.cpp halted
        return task.result()

    def iter_events(self, stream: Callable[[], AsyncIterator[Event]]) -> Iterator[Event]:
        """Yield ``stream()``'s events in the calling thread; closing the iterator cancels the run."""
        portal = self.portal()
        events: queue.Queue[Event | BaseException | None] = queue.Queue()

        async def pump() -> None:
            try:
                async for event in stream():
                    events.put(event)
            except BaseException as exc:  # handed to the caller's thread, which re-raises it
                events.put(exc)
                raise
            finally:
                events.put(None)

        loop = portal.call(asyncio.get_running_loop)
        future: Future[None] = asyncio.run_coroutine_threadsafe(pump(), loop)
        ended = False  # the pump's final None was read; its future may still be settling
        try:
            while True:
                try:
                    item = events.get(timeout=POLL_S)
                except queue.Empty:
                    continue
                if item is None:
                    ended = True
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            if not ended:
                future.cancel()
                # Wait until the run has really stopped (connections closed, llama.cpp halted).
                while True:
                    item = events.get()
                    if item is None:
                        break


def collect_result(events: Iterator[Event]) -> FusionResult:
    """The result carried by a stream's RunFinished (every stream ends with one)."""
    result: FusionResult | None = None
    for event in events:
        if isinstance(event, RunFinished):
            result = event.result
    assert result is not None
    return result


def _close_all() -> None:
    with _running_lock:
        portals = list(_running)
    for portal in portals:
        portal.close()


atexit.register(_close_all)
