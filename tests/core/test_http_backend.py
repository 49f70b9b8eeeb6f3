"""The OpenAI-compatible backend against httpx.MockTransport handlers (wire-level unit tests).

End-to-end behaviour against a real loopback server lives in test_remote_e2e.py.
"""

from __future__ import annotations

import json

import httpx
import pytest

from fusion_core.backends.base import ChatRequest, Message, complete
from fusion_core.backends.openai_http import HttpClients, OpenAICompatibleBackend
from fusion_core.backends.retry import RetryPolicy, parse_retry_after
from fusion_core.errors import AuthError, BadResponse, NoCredits, RateLimited, UpstreamError
from fusion_core.secrets import Secret

KEY = "sk-or-v1-" + "ab" * 32
REQUEST = ChatRequest(model="vendor/model", messages=(Message("user", "hi"),))


def sse(*events: str) -> bytes:
    return "".join(events).encode()


def data(payload: object) -> str:
    return f"data: {json.dumps(payload)}\n\n"


def chunk(text: str) -> dict[str, object]:
    return {"id": "gen-1", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}


USAGE = {"id": "gen-1", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "cost": 0.0015}}


def backend(handler, sleeps: list[float] | None = None) -> OpenAICompatibleBackend:  # type: ignore[no-untyped-def]
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


def test_key_not_in_backend_repr() -> None:
    b = backend(lambda request: httpx.Response(200))
    assert KEY not in repr(b) and KEY not in repr(b.__dict__)
