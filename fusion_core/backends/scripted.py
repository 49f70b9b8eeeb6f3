"""A backend that replays scripted replies: for unit tests and offline demos.

Modelled on simonw/llm's queue-backed fake model. Each model id has a queue of
replies; an exception in the queue is raised instead of replying.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterable

from fusion_core.backends.base import ChatRequest, Chunk
from fusion_core.errors import BadRequest
from fusion_core.usage import Usage


class ScriptedBackend:
    """Replies from per-model queues; records every request it was sent."""

    def __init__(
        self,
        replies: dict[str, Iterable[str | Exception]],
        *,
        name: str = "scripted",
        chunk_delay_s: float = 0.0,
    ) -> None:
        self.name = name
        self._queues = {model: deque(items) for model, items in replies.items()}
        self._chunk_delay_s = chunk_delay_s
        self.requests: list[ChatRequest] = []

    async def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        self.requests.append(request)
        queue = self._queues.get(request.model)
        if not queue:
            raise BadRequest(f"no scripted reply left for {request.model}", backend=self.name, model=request.model)
        reply = queue.popleft() if len(queue) > 1 else queue[0]
        if isinstance(reply, Exception):
            raise reply
        words = reply.split(" ")
        for i, word in enumerate(words):
            if self._chunk_delay_s:
                await asyncio.sleep(self._chunk_delay_s)
            yield Chunk(text=word if i == 0 else " " + word)
        prompt_tokens = sum(len(m.content.split()) for m in request.messages)
        yield Chunk(
            usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=len(words), cost=0.0),
            finish_reason="stop",
        )
