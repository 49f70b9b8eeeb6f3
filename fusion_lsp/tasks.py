"""Backend work in flight, so it can be cancelled the moment it is no longer wanted.

Each piece of work (a review, a completion) runs as one asyncio task under a
key such as ``("completion", uri)``. Starting new work under a key cancels the
old work (a superseded request); ``$/cancelRequest`` cancels the work started
for that request id; closing a document cancels everything for it. Cancelling
a task cancels its backend streams, which closes their HTTP connections or
stops llama.cpp at the next token. Finished tasks leave the registry at once,
so it never grows beyond the work actually running.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Hashable
from typing import Any, TypeVar

T = TypeVar("T")
RequestId = int | str

_log = logging.getLogger(__name__)


class TaskRegistry:
    """Running work by key and by the request that started it."""

    def __init__(self) -> None:
        self._by_key: dict[Hashable, asyncio.Task[Any]] = {}
        self._by_request: dict[RequestId, asyncio.Task[Any]] = {}

    def start(
        self, key: Hashable, work: Coroutine[Any, Any, T], request_id: RequestId | None = None
    ) -> asyncio.Task[T]:
        """Run ``work`` under ``key``, cancelling whatever ran under that key before."""
        previous = self._by_key.pop(key, None)
        if previous is not None and not previous.done():
            previous.cancel()
        task = asyncio.get_running_loop().create_task(work)
        self._by_key[key] = task
        if request_id is not None:
            self._by_request[request_id] = task

        def forget(done: asyncio.Task[Any]) -> None:
            if self._by_key.get(key) is done:
                del self._by_key[key]
            if request_id is not None and self._by_request.get(request_id) is done:
                del self._by_request[request_id]

        task.add_done_callback(forget)
        return task

    def cancel_request(self, request_id: RequestId) -> bool:
        """Cancel the work a request started (``$/cancelRequest``)."""
        task = self._by_request.pop(request_id, None)
        if task is None or task.done():
            return False
        _log.debug("cancelling the work of request %s", request_id)
        task.cancel()
        return True

    def cancel_matching(self, part: Hashable) -> int:
        """Cancel every task whose key contains ``part`` (e.g. a document's URI)."""
        count = 0
        for key, task in list(self._by_key.items()):
            if isinstance(key, tuple) and part in key and not task.done():
                task.cancel()
                count += 1
        return count

    def cancel_all(self) -> None:
        """Cancel everything (shutdown)."""
        for task in list(self._by_key.values()):
            task.cancel()

    def running(self, key: Hashable) -> bool:
        task = self._by_key.get(key)
        return task is not None and not task.done()

    def __len__(self) -> int:
        return len(self._by_key)


async def await_work(task: asyncio.Task[T]) -> tuple[bool, T | None]:
    """Wait for ``task``; (False, None) if it was cancelled by someone else.

    If the caller itself is cancelled, the task is cancelled too and the
    cancellation propagates.
    """
    try:
        return True, await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            task.cancel()
            raise
        return False, None
