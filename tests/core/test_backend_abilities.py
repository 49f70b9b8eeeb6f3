"""The optional backend abilities (Protocols in backends/base.py) and consume(), which reads every stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fusion_core.backends.base import (
    Backend,
    ChatRequest,
    Chunk,
    Closable,
    InstructAware,
    Message,
    ModelCatalog,
    Preloadable,
    Reply,
    Scorer,
    complete,
    consume,
)
from fusion_core.backends.llama import LlamaBackend, LocalModel
from fusion_core.backends.openai_http import HttpClients, OpenAICompatibleBackend
from fusion_core.backends.scripted import ScriptedBackend
from fusion_core.secrets import Secret
from fusion_core.usage import Usage

REQUEST = ChatRequest(model="m", messages=(Message("user", "hi"),))


class Recording:
    """A backend whose stream records whether it was closed, and can break while closing."""

    name = "recording"

    def __init__(self, words: list[str], *, broken_close: bool = False) -> None:
        self.words = words
        self.broken_close = broken_close
        self.closed = False

    async def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        try:
            for word in self.words:
                yield Chunk(text=word)
            yield Chunk(usage=Usage(prompt_tokens=1, completion_tokens=len(self.words)), finish_reason="stop")
        finally:
            self.closed = True
            if self.broken_close:
                raise OSError("connection reset while closing")


class PlainIterator:
    """A stream that is an async iterator but no generator: nothing to close."""

    def __init__(self, chunks: list[Chunk]) -> None:
        self._chunks = iter(chunks)

    def __aiter__(self) -> PlainIterator:
        return self

    async def __anext__(self) -> Chunk:
        try:
            return next(self._chunks)
        except StopIteration:
            raise StopAsyncIteration from None


class PlainBackend:
    name = "plain"

    def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        return PlainIterator([Chunk(text="a"), Chunk(text="b", finish_reason="length")])


class Stop(Exception):
    pass


def stop(chunk: Chunk) -> None:
    raise Stop


async def test_consume_collects_text_usage_and_finish_reason() -> None:
    seen: list[str] = []
    completion = await consume(Recording(["one", " two"]), REQUEST, on_chunk=lambda c: seen.append(c.text))

    assert completion.text == "one two"
    assert completion.usage.completion_tokens == 2
    assert completion.finish_reason == "stop"
    assert seen == ["one", " two", ""]


async def test_a_stream_read_partly_is_closed_and_keeps_what_arrived() -> None:
    backend = Recording(["one", " two", " three"])
    reply = Reply()

    def stop_after_two(chunk: Chunk) -> None:
        if len(reply.parts) == 2:
            raise Stop

    with pytest.raises(Stop):
        await consume(backend, REQUEST, reply=reply, on_chunk=stop_after_two)

    assert backend.closed
    assert reply.text == "one two"
    assert reply.finish_reason is None


async def test_an_error_while_closing_does_not_mask_how_reading_ended() -> None:
    backend = Recording(["one", " two"], broken_close=True)

    with pytest.raises(Stop):
        await consume(backend, REQUEST, on_chunk=stop)
    assert backend.closed


async def test_a_plain_async_iterator_needs_no_closing() -> None:
    completion = await complete(PlainBackend(), REQUEST)

    assert (completion.text, completion.finish_reason) == ("ab", "length")


async def test_complete_is_consume_of_the_scripted_backend() -> None:
    completion = await complete(ScriptedBackend({"m": ["a b c"]}), REQUEST)

    assert completion.text == "a b c"
    assert completion.usage.completion_tokens == 3


def test_each_builtin_backend_has_exactly_its_abilities(tmp_path: Path) -> None:
    llama = LlamaBackend(LocalModel(tmp_path / "never-loaded.gguf"))
    http = OpenAICompatibleBackend(name="x", base_url="http://127.0.0.1:9", api_key=None, clients=HttpClients())
    scripted = ScriptedBackend({})
    abilities = (ModelCatalog, Scorer, InstructAware, Preloadable, Closable)

    def has(backend: object) -> set[str]:
        return {ability.__name__ for ability in abilities if isinstance(backend, ability)}

    assert all(isinstance(b, Backend) for b in (llama, http, scripted))
    assert has(llama) == {"Scorer", "InstructAware", "Preloadable"}
    assert has(http) == {"ModelCatalog"}
    assert has(scripted) == set()
    assert isinstance(Recording([]).stream(REQUEST), Closable)


def test_whether_a_backend_has_a_key_is_public_and_the_key_stays_private() -> None:
    key = "sk-or-v1-" + "7" * 40
    keyed = OpenAICompatibleBackend(name="x", base_url="http://h", api_key=Secret(key), clients=HttpClients())
    keyless = OpenAICompatibleBackend(name="x", base_url="http://h", api_key=None, clients=HttpClients())

    assert keyed.has_key and not keyless.has_key
    assert key not in repr(keyed) and key not in str(keyed)
