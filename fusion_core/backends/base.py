"""The one Backend protocol every model provider implements, and its optional abilities.

A backend has a single async streaming method; reading it (:func:`consume`)
and the non-streaming call (:func:`complete`) are derived from it, so there is
one code path per provider. What only some backends can do is a small
runtime-checkable Protocol here, asked with ``isinstance``:

=================  ==========================================  ======================
ability            method                                      who has it
=================  ==========================================  ======================
``ModelCatalog``   ``await list_models(refresh=False)``        HTTP endpoints
``Scorer``         ``await score(prompt, continuations)``      local llama.cpp models
``InstructAware``  ``await is_instruct()``                     local llama.cpp models
``Preloadable``    ``await load()``                            local llama.cpp models
``Closable``       ``await aclose()``                          every async-generator stream
=================  ==========================================  ======================

A backend without an ability is treated as the common case: it lists no models,
cannot score, follows instructions, needs no loading, and its stream needs no closing.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from fusion_core.usage import Pricing, Usage

Role = Literal["system", "user", "assistant"]

# Bounds on what a /models entry may claim; anything outside is treated as unknown.
MAX_CONTEXT_LENGTH = 1 << 32
MAX_PRICE_USD = 1000.0
MAX_ID_CHARS = 512
MAX_PARAMETERS = 256
MAX_PARAMETER_CHARS = 64

_log = logging.getLogger(__name__)


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
    """A piece of a streamed reply: text, and on the last chunk usage and finish reason.

    A backend that queues requests on a shared resource (a local model) says so with
    ``queued`` and then ``started`` when the work begins: the pool's timeout pauses in
    between, so it counts the work, not the wait.
    """

    text: str = ""
    usage: Usage | None = None
    finish_reason: str | None = None
    queued: bool = False
    started: bool = False


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

    @classmethod
    def from_openai(cls, entry: Any) -> ModelInfo | None:
        """One /models entry, or None when it is not a usable model object.

        The catalogue is outside input: a field of the wrong type or out of range
        (``context_length: 1e400``, a price that is not a number) becomes unknown
        rather than an exception.
        """
        if not isinstance(entry, dict):
            return None
        model_id = entry.get("id")
        if not isinstance(model_id, str) or not model_id or len(model_id) > MAX_ID_CHARS:
            return None
        name = entry.get("name")
        params = entry.get("supported_parameters")
        return cls(
            id=model_id,
            name=name[:MAX_ID_CHARS] if isinstance(name, str) and name else model_id,
            context_length=whole_number(entry.get("context_length"), MAX_CONTEXT_LENGTH),
            pricing=_pricing(entry.get("pricing")),
            supported_parameters=tuple(
                p for p in params[:MAX_PARAMETERS] if isinstance(p, str) and len(p) <= MAX_PARAMETER_CHARS
            )
            if isinstance(params, list)
            else (),
        )


def parse_catalog(data: Any) -> list[ModelInfo]:
    """The models of a /models body (``{"data": [...]}``); malformed entries are skipped.

    Raises ValueError when the body is not a model listing at all.
    """
    entries = data.get("data") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ValueError('expected {"data": [...]}')
    return [info for entry in entries if (info := ModelInfo.from_openai(entry)) is not None]


def bounded_number(value: Any, maximum: float) -> float | None:
    """A JSON number that is finite and within 0..maximum, else None (booleans are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int of thousands of digits
        return None
    return number if math.isfinite(number) and 0.0 <= number <= maximum else None


def whole_number(value: Any, maximum: int) -> int | None:
    """A positive whole number up to ``maximum`` (JSON may spell it 4096.0), else None."""
    number = bounded_number(value, maximum)
    return int(number) if number and number.is_integer() else None


def _price(value: Any) -> float | None:
    """A USD price from a decimal string (OpenRouter's form) or a number."""
    if isinstance(value, str) and len(value) <= MAX_PARAMETER_CHARS:
        try:
            value = float(value)
        except ValueError:
            return None
    return bounded_number(value, MAX_PRICE_USD)


def _pricing(data: Any) -> Pricing | None:
    """Prompt and completion prices are required; a missing per-request price is free."""
    if not isinstance(data, dict):
        return None
    prompt, completion = _price(data.get("prompt")), _price(data.get("completion"))
    request = _price(data.get("request") or 0)
    if prompt is None or completion is None or request is None:
        return None
    return Pricing(prompt=prompt, completion=completion, request=request)


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


@runtime_checkable
class Scorer(Protocol):
    """Optional: a model that can rank continuations by log-probability (the likelihood judge)."""

    async def score(self, prompt: str, continuations: Sequence[str]) -> list[float]:
        """Length-normalised log-probability of each continuation given ``prompt``."""
        ...


@runtime_checkable
class InstructAware(Protocol):
    """Optional: a backend that knows whether its model follows instructions (a base model does not)."""

    async def is_instruct(self) -> bool:
        """True for an instruction-tuned model; may load the model to find out."""
        ...


@runtime_checkable
class Preloadable(Protocol):
    """Optional: a backend whose model can be loaded ahead of the first request."""

    async def load(self) -> None:
        """Load the model now (off the event loop) instead of on first use."""
        ...


@runtime_checkable
class Closable(Protocol):
    """Optional: something that holds resources until closed (an async-generator stream, a client)."""

    async def aclose(self) -> None:
        """Release the resources; closing a stream early cancels its call."""
        ...


@dataclass
class Reply:
    """What has arrived of one streamed reply; kept when reading stops early (a timeout, a failure)."""

    parts: list[str] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def add(self, chunk: Chunk) -> None:
        """Take in one chunk: its text, and the usage and finish reason the last one carries."""
        if chunk.text:
            self.parts.append(chunk.text)
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.finish_reason is not None:
            self.finish_reason = chunk.finish_reason

    def completion(self) -> Completion:
        return Completion(text=self.text, usage=self.usage, finish_reason=self.finish_reason)


async def consume(
    backend: Backend,
    request: ChatRequest,
    *,
    reply: Reply | None = None,
    on_chunk: Callable[[Chunk], None] | None = None,
) -> Completion:
    """Read ``backend``'s reply to ``request`` to the end, closing its stream however reading ends.

    Every chunk goes into ``reply`` (pass one to keep the partial text when reading is
    interrupted) and then to ``on_chunk``. Closing the stream early cancels the call.
    """
    reply = Reply() if reply is None else reply
    stream = backend.stream(request)
    async with aclosing(_QuietClose(stream)):
        async for chunk in stream:
            reply.add(chunk)
            if on_chunk is not None:
                on_chunk(chunk)
    return reply.completion()


async def complete(backend: Backend, request: ChatRequest) -> Completion:
    """Run ``request`` to the end and return the whole reply."""
    return await consume(backend, request)


class _QuietClose:
    """What :func:`consume` closes: the stream, if it can be closed (an async generator can;
    a plain iterator has nothing to close). A failure while closing must not mask how the
    read ended (its reply, its error or its cancellation), so it is only logged."""

    def __init__(self, stream: AsyncIterator[Chunk]) -> None:
        self._stream = stream

    async def aclose(self) -> None:
        if isinstance(self._stream, Closable):
            try:
                await self._stream.aclose()
            except Exception as exc:  # noqa: BLE001 - see the class docstring
                _log.debug("closing a backend stream failed: %s: %s", type(exc).__name__, exc)
