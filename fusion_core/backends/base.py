"""The one Backend protocol every model provider implements.

A backend has a single async streaming method; the non-streaming call
(:func:`complete`) is derived from it, so there is one code path per provider.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from fusion_core.usage import Pricing, Usage

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion request, independent of the provider."""

    model: str
    messages: tuple[Message, ...]
    temperature: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    # A JSON schema the reply must follow; backends that cannot enforce it ignore it.
    json_schema: dict[str, Any] | None = None
    stop: tuple[str, ...] = ()
    # Provider options passed through as they are (``-o top_p 0.9``); backends that
    # cannot pass them on ignore them.
    provider_options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Chunk:
    """A piece of a streamed reply: text, and on the last chunk usage and finish reason."""

    text: str = ""
    usage: Usage | None = None
    finish_reason: str | None = None


@dataclass(frozen=True)
class Completion:
    text: str
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None


@dataclass(frozen=True)
class ModelInfo:
    """What an endpoint's model catalogue says about one model."""

    id: str
    name: str = ""
    context_length: int | None = None
    pricing: Pricing | None = None
    supported_parameters: tuple[str, ...] = ()

    @property
    def supports_json_schema(self) -> bool:
        return "structured_outputs" in self.supported_parameters or ("response_format" in self.supported_parameters)


@runtime_checkable
class Backend(Protocol):
    """A model provider. Implementations raise only :class:`fusion_core.errors.BackendError`."""

    name: str

    def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        """Stream the reply to ``request``; closing the iterator cancels the call."""
        ...


@runtime_checkable
class ModelCatalog(Protocol):
    """Optional: a backend that can list its models (prices, structured output support)."""

    async def list_models(self, *, refresh: bool = False) -> list[ModelInfo]:
        """Every model the endpoint serves (a cached listing unless ``refresh``)."""
        ...


async def complete(backend: Backend, request: ChatRequest) -> Completion:
    """Run ``request`` to the end and return the whole reply."""
    parts: list[str] = []
    usage = Usage()
    finish_reason: str | None = None
    stream = backend.stream(request)
    try:
        async for chunk in stream:
            parts.append(chunk.text)
            if chunk.usage is not None:
                usage = chunk.usage
            if chunk.finish_reason is not None:
                finish_reason = chunk.finish_reason
    finally:
        await _aclose(stream)
    return Completion(text="".join(parts), usage=usage, finish_reason=finish_reason)


async def _aclose(stream: AsyncIterator[Chunk]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
