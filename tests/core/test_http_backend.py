"""The OpenAI-compatible backend against httpx.MockTransport handlers (wire-level unit tests).

End-to-end behaviour against a real loopback server lives in test_remote_e2e.py.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import AsyncIterator

import httpx
import pytest

from fusion_core.backends.base import ChatRequest, Message, ModelInfo, complete, parse_catalog
from fusion_core.backends.openai_http import MAX_MESSAGE_CHARS, HttpClients, OpenAICompatibleBackend
from fusion_core.backends.retry import RetryPolicy, parse_retry_after
from fusion_core.backends.sse import INFLATE_STEP, loads_json
from fusion_core.errors import AuthError, BadResponse, NoCredits, RateLimited, ResponseTooLarge, UpstreamError
from fusion_core.limits import Limits
from fusion_core.secrets import Secret
from fusion_core.usage import Pricing

KEY = "sk-or-v1-" + "ab" * 32
REQUEST = ChatRequest(model="vendor/model", messages=(Message("user", "hi"),))


def sse(*events: str) -> bytes:
    return "".join(events).encode()


def data(payload: object) -> str:
    return f"data: {json.dumps(payload)}\n\n"


def chunk(text: str) -> dict[str, object]:
    return {"id": "gen-1", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}


USAGE = {"id": "gen-1", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "cost": 0.0015}}


def backend(handler, sleeps: list[float] | None = None, limits: Limits | None = None) -> OpenAICompatibleBackend:  # type: ignore[no-untyped-def]
    async def sleep(seconds: float) -> None:
        if sleeps is not None:
            sleeps.append(seconds)

    return OpenAICompatibleBackend(
        name="openrouter",
        base_url="https://openrouter.test/api/v1",
        api_key=Secret(KEY),
        clients=HttpClients(httpx.MockTransport(handler)),
        retry=RetryPolicy(sleep=sleep, jitter=lambda: 0.5),
        attribution=True,
        openrouter_fields=True,
        limits=limits,
    )


def stream_response(body: bytes, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(status, content=body, headers={"content-type": "text/event-stream", **headers})


async def test_comments_skipped_usage_read_done_honoured() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return stream_response(
            sse(
                ": OPENROUTER PROCESSING\n\n",
                data(chunk("Hel")),
                ": ping\n\n",
                data(chunk("lo")),
                data(USAGE),
                "data: [DONE]\n\n",
            )
        )

    result = await complete(backend(handler), REQUEST)
    assert result.text == "Hello"
    assert result.usage.cost == pytest.approx(0.0015) and result.usage.completion_tokens == 2
    body = json.loads(seen[0].content)
    assert body["stream"] is True and body["usage"] == {"include": True}
    assert seen[0].headers["authorization"] == f"Bearer {KEY}"
    assert seen[0].headers["x-title"] == "Fusion" and seen[0].headers["http-referer"]


async def test_in_band_error_raises_after_text() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        error_event = {
            "error": {"code": 502, "message": "Provider returned error"},
            "choices": [{"index": 0, "delta": {}, "finish_reason": "error"}],
        }
        return stream_response(sse(data(chunk("partial")), data(error_event), "data: [DONE]\n\n"))

    parts = []
    with pytest.raises(UpstreamError) as info:
        async for piece in backend(handler).stream(REQUEST):
            parts.append(piece.text)
    assert parts == ["partial"]
    assert info.value.status == 502 and "Provider returned error" in info.value.message


async def test_garbage_json_is_a_bad_response() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return stream_response(sse("data: {not json\n\n", "data: [DONE]\n\n"))

    with pytest.raises(BadResponse):
        await complete(backend(handler), REQUEST)


async def test_stream_without_done_is_an_upstream_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return stream_response(sse(data(chunk("cut"))))

    with pytest.raises(UpstreamError, match="without \\[DONE\\]"):
        await complete(backend(handler), REQUEST)


async def test_429_retried_after_retry_after() -> None:
    calls = []
    sleeps: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            return httpx.Response(
                429, json={"error": {"code": 429, "message": "slow down"}}, headers={"Retry-After": "2"}
            )
        return stream_response(sse(data(chunk("ok")), data(USAGE), "data: [DONE]\n\n"))

    result = await complete(backend(handler, sleeps), REQUEST)
    assert result.text == "ok" and len(calls) == 2 and sleeps == [2.0]


async def test_persistent_429_gives_up_with_rate_limited() -> None:
    sleeps: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, json={"error": {"code": 429, "message": "slow"}})

    with pytest.raises(RateLimited):
        await complete(backend(handler, sleeps), REQUEST)
    assert sleeps == [0.5, 1.0]  # exponential backoff, jitter fixed at its midpoint


@pytest.mark.parametrize(("status", "error"), [(401, AuthError), (402, NoCredits)])
async def test_never_retried_and_key_not_echoed(status: int, error: type[Exception]) -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(status, json={"error": {"code": status, "message": f"bad key {KEY}"}})

    with pytest.raises(error) as info:
        await complete(backend(handler), REQUEST)
    assert len(calls) == 1
    assert KEY not in str(info.value) and KEY not in repr(info.value.__dict__)


def test_retry_after_http_date() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == pytest.approx(10.0)
    assert parse_retry_after("soon") is None
    assert [parse_retry_after(v) for v in ("nan", "inf", "1e400", "-3")] == [None, None, None, 0.0]


def test_key_not_in_backend_repr() -> None:
    b = backend(lambda request: httpx.Response(200))
    assert KEY not in repr(b) and KEY not in repr(b.__dict__)


# -- bounded reading: every byte from the endpoint is counted against Limits ------------


def streamed(body: bytes, status: int = 200, **headers: str) -> httpx.Response:
    """A response whose body httpx has not read yet, as from a real socket."""
    return httpx.Response(
        status, stream=httpx.ByteStream(body), headers={"content-type": "text/event-stream", **headers}
    )


async def test_a_gzip_bomb_stops_at_the_decompressed_limit() -> None:
    bomb = gzip.compress(b": keep-alive\n" * (8 * 1024 * 1024 // 13), compresslevel=9)
    limits = Limits(response_bytes=1024 * 1024)

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["accept-encoding"] == "gzip, deflate"
        return streamed(bomb, **{"content-encoding": "gzip"})

    with pytest.raises(ResponseTooLarge, match="exceeded 1 MiB after decompression") as info:
        await complete(backend(handler, limits=limits), REQUEST)
    assert info.value.kind == "too_large" and info.value.limit == "response_bytes"
    assert info.value.model == "vendor/model" and not info.value.retryable


async def test_gzip_and_deflate_bodies_are_read() -> None:
    body = sse(data(chunk("zip")), data(USAGE), "data: [DONE]\n\n")
    for encoding, packed in (("gzip", gzip.compress(body)), ("deflate", zlib.compress(body))):
        result = await complete(
            backend(lambda r, p=packed, e=encoding: streamed(p, **{"content-encoding": e})), REQUEST
        )
        assert result.text == "zip"


async def test_an_encoding_that_was_not_asked_for_is_a_bad_response() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return streamed(b"\x8b\x00", **{"content-encoding": "br"})

    with pytest.raises(BadResponse, match="content-encoding 'br'"):
        await complete(backend(handler), REQUEST)


async def test_one_line_and_one_event_are_bounded() -> None:
    limits = Limits(event_bytes=4096)
    endless_line = streamed(b"data: " + b"x" * 10_000)
    many_lines = streamed(b"data: abc\n" * 2000 + b"\n")
    for response in (endless_line, many_lines):
        with pytest.raises(ResponseTooLarge, match="exceeded 4 KiB"):
            await complete(backend(lambda r, resp=response: resp, limits=limits), REQUEST)


async def test_the_answer_is_bounded_and_its_start_is_kept() -> None:
    limits = Limits(answer_bytes=1024)

    def handler(request: httpx.Request) -> httpx.Response:
        return streamed(sse(*[data(chunk("y" * 600))] * 5, "data: [DONE]\n\n"))

    parts: list[str] = []
    with pytest.raises(ResponseTooLarge, match="the answer exceeded 1 KiB"):
        async for piece in backend(handler, limits=limits).stream(REQUEST):
            parts.append(piece.text)
    assert parts == ["y" * 600]


async def test_an_endless_error_body_is_read_only_up_to_the_limit() -> None:
    pulled: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        yield b'{"error": {"message": "' + b"m" * 100_000
        while True:
            pulled.append(INFLATE_STEP)
            yield b"e" * INFLATE_STEP

    def handler(request: httpx.Request) -> httpx.Response:
        pulled.clear()
        return httpx.Response(500, content=endless(), headers={"content-type": "application/json"})

    with pytest.raises(UpstreamError) as info:
        await complete(backend(handler, limits=Limits(error_body_bytes=64 * 1024)), REQUEST)
    assert info.value.status == 500 and len(info.value.message) <= MAX_MESSAGE_CHARS + 100
    assert sum(pulled) <= 64 * 1024  # the first piece already filled the limit


async def test_a_non_json_event_is_not_quoted_back() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return streamed(sse(f"data: echo {KEY}\n\n", "data: [DONE]\n\n"))

    with pytest.raises(BadResponse, match="not JSON") as info:
        await complete(backend(handler), REQUEST)
    assert KEY not in info.value.message


async def test_absurd_fields_in_events_are_ignored() -> None:
    usage = '{"choices": [], "usage": {"prompt_tokens": 1e400, "completion_tokens": "12", "cost": -5, ' + (
        '"prompt_tokens_details": [], "completion_tokens_details": {"reasoning_tokens": ' + "9" * 5000 + "}}}"
    )
    odd = [{"choices": [{"delta": "text"}]}, {"choices": "many"}, {"choices": [{"delta": {"content": 7}}]}]
    body = sse(*[data(event) for event in odd], data(chunk("ok")), f"data: {usage}\n\n", "data: [DONE]\n\n")
    result = await complete(backend(lambda r: streamed(body)), REQUEST)
    assert result.text == "ok"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens, result.usage.cost) == (0, 0, None)


def test_deep_json_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="nested too deeply"):
        loads_json("[" * 200_000 + "]" * 200_000)
    assert loads_json("[" + "9" * 5000 + "]") == [float("inf")]


def test_catalogue_entries_are_validated_one_by_one() -> None:
    good = {"id": "a/b", "context_length": 4096.0, "pricing": {"prompt": "0.000001", "completion": "2e-6"}}
    entries = [
        good,
        1,
        None,
        [],
        {"id": 5},
        {"id": ""},
        {"id": "c/d", "context_length": float("inf"), "pricing": {"prompt": "abc", "completion": "1"}},
        {"id": "e/f", "context_length": -3, "pricing": {"prompt": "NaN", "completion": "1"}, "name": 7},
        {"id": "g/h", "context_length": True, "pricing": "free", "supported_parameters": "response_format"},
        {"id": "i/j", "pricing": {"prompt": "-1", "completion": "0"}, "supported_parameters": ["seed", 3, None]},
    ]
    infos = {info.id: info for info in parse_catalog({"data": entries})}
    assert list(infos) == ["a/b", "c/d", "e/f", "g/h", "i/j"]
    assert infos["a/b"] == ModelInfo(id="a/b", name="a/b", context_length=4096, pricing=Pricing(1e-6, 2e-6))
    assert all(infos[m].context_length is None and infos[m].pricing is None for m in ("c/d", "e/f", "g/h"))
    assert infos["e/f"].name == "e/f" and infos["g/h"].supported_parameters == ()
    assert infos["i/j"].pricing is None and infos["i/j"].supported_parameters == ("seed",)
    for not_a_listing in ([], {"data": {}}, "x", None):
        with pytest.raises(ValueError):
            parse_catalog(not_a_listing)


async def test_a_catalogue_over_its_limit_is_refused() -> None:
    listing = json.dumps({"data": [{"id": f"m/{i}"} for i in range(1000)]}).encode()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=httpx.ByteStream(listing), headers={"content-type": "application/json"})

    with pytest.raises(ResponseTooLarge, match="exceeded 4 KiB"):
        await backend(handler, limits=Limits(catalog_bytes=4096)).list_models()
    assert len(await backend(handler).list_models()) == 1000
