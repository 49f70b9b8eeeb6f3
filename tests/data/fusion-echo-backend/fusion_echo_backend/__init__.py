"""A Fusion backend plugin in one file: ``echo/NAME`` replies "NAME heard: <the prompt>".

It uses only Fusion's public backend API, as a third-party package would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from fusion_core.backends import ChatRequest, Chunk, ProviderContext
from fusion_core.errors import ConfigError
from fusion_core.usage import Usage


class EchoBackend:
    """Streams back the last message, word by word."""

    name = "echo"

    async def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        words = f"{request.model} heard: {request.messages[-1].content}".split(" ")
        for i, word in enumerate(words):
            yield Chunk(text=word if i == 0 else " " + word)
        yield Chunk(usage=Usage(prompt_tokens=1, completion_tokens=len(words), cost=0.0), finish_reason="stop")


class EchoProvider:
    """Serves ``echo/NAME``; made once per Fusion session."""

    def __init__(self, context: ProviderContext) -> None:
        self.context = context

    def resolve(self, spec: str) -> tuple[EchoBackend, str]:
        name = spec.partition("/")[2]
        if not name:
            raise ConfigError(f"{spec!r} names no echo model", hint="Write echo/NAME.")
        return EchoBackend(), name
