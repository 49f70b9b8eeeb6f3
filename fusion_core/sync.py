"""Synchronous entry points that work even inside a running event loop.

Jupyter and pygls already run an asyncio loop in the calling thread, where
``asyncio.run`` is forbidden. So synchronous calls run the engine on a
dedicated background loop thread (an anyio blocking portal), one per
:class:`Fusion` session so HTTP connections and loaded models are reused.
The caller's thread only waits on a queue, which keeps Ctrl-C (a
KeyboardInterrupt in the caller's thread) able to cancel the run.
"""

from __future__ import annotations

import asyncio
import atexit
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from anyio.from_thread import BlockingPortal, start_blocking_portal

from fusion_core.events import Event, RunFinished
from fusion_core.result import FusionResult

if TYPE_CHECKING:
    from fusion_core.engine import Fusion, RunSettings

# How often the waiting thread wakes up; lets KeyboardInterrupt land promptly.
POLL_S = 0.1

_lock = threading.Lock()
_portals: dict[int, tuple[AbstractContextManager[BlockingPortal], BlockingPortal]] = {}


def _close_all() -> None:
    # A script that never called close() would otherwise hang at exit: the portal's
    # loop thread waits for a shutdown that interpreter teardown never asks for.
    with _lock:
        entries = list(_portals.values())
        _portals.clear()
    for manager, _ in entries:
        manager.__exit__(None, None, None)


atexit.register(_close_all)


def portal_for(fusion: Fusion) -> BlockingPortal:
    """The background event loop that runs ``fusion``'s synchronous calls."""
    with _lock:
        entry = _portals.get(id(fusion))
        if entry is None:
            manager = start_blocking_portal()
            entry = (manager, manager.__enter__())
            _portals[id(fusion)] = entry
        return entry[1]


def close_portal(fusion: Fusion) -> None:
    """Close ``fusion``'s connections and stop its background loop."""
    with _lock:
        entry = _portals.pop(id(fusion), None)
    if entry is not None:
        manager, portal = entry
        portal.call(fusion.aclose)
        manager.__exit__(None, None, None)


def iter_events(fusion: Fusion, prompt: str, settings: RunSettings) -> Iterator[Event]:
    """Yield the run's events in the calling thread; closing the iterator cancels the run."""
    portal = portal_for(fusion)
    events: queue.Queue[Event | BaseException | None] = queue.Queue()

    async def pump() -> None:
        try:
            async for event in fusion.stream(prompt, settings):
                events.put(event)
        except BaseException as exc:  # handed to the caller's thread, which re-raises it
            events.put(exc)
            raise
        finally:
            events.put(None)

    # A plain asyncio task, not portal.start_task_soon: anyio's cancel scope would cancel
    # every await of the cleanup too, so HTTP streams were abandoned instead of closed.
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


def run_sync(fusion: Fusion, prompt: str, settings: RunSettings) -> FusionResult:
    """Run to the end from synchronous code."""
    result: FusionResult | None = None
    for event in iter_events(fusion, prompt, settings):
        if isinstance(event, RunFinished):
            result = event.result
    assert result is not None
    return result
