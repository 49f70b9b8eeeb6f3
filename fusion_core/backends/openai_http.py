"""OpenAI-compatible chat completions over HTTP, with OpenRouter as a preset.

The same class talks to OpenRouter, vLLM, a llama.cpp server or Ollama; they
differ only in base URL, key variable and a few request fields. The SSE loop
follows OpenRouter's documented wire format: ``:`` comment lines are skipped
(httpx-sse does that), ``[DONE]`` ends the stream, an ``error`` object inside
the stream raises, and the last event carries usage with cost.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from httpx_sse import EventSource, SSEError

from fusion_core.backends.base import ChatRequest, Chunk, ModelInfo
from fusion_core.backends.retry import RetryPolicy, parse_retry_after
from fusion_core.errors import (
    AuthError,
    BackendError,
    BackendTimeout,
    BadRequest,
    BadResponse,
    Forbidden,
    NoCredits,
    RateLimited,
    UpstreamError,
)
from fusion_core.secrets import Secret, redact
from fusion_core.usage import Pricing, Usage

OPENROUTER_BASE_URL = "https://openrouter.ai/api/v1"
OPENROUTER_KEY_ENV = "OPENROUTER_API_KEY"
OPENROUTER_BASE_URL_ENV = "OPENROUTER_BASE_URL"
APP_URL = "https://github.com/fusion-llm/model-fusion"
APP_TITLE = "Fusion"
DEFAULT_TIMEOUT_S = 120.0
CONNECT_TIMEOUT_S = 10.0
MAX_CONNECTIONS = 64


class HttpClients:
    """One pooled ``httpx.AsyncClient`` per base URL, shared by every backend using it.

    ``transport`` is injectable so unit tests can use ``httpx.MockTransport``.
    """

    def __init__(self, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._transport = transport
        # Keyed by event loop too: a client's connections belong to the loop that opened them,
        # and one session may be used from its own sync loop thread and from the caller's loop.
        self._clients: dict[tuple[str, int], httpx.AsyncClient] = {}

    def get(self, base_url: str) -> httpx.AsyncClient:
        key = (base_url, id(asyncio.get_running_loop()))
        client = self._clients.get(key)
        if client is None or client.is_closed:
            client = httpx.AsyncClient(
                base_url=base_url,
                transport=self._transport,
                limits=httpx.Limits(max_connections=MAX_CONNECTIONS),
                follow_redirects=False,
            )
            self._clients[key] = client
        return client

    async def aclose(self) -> None:
        """Close the clients of the running loop (others close with their loop)."""
        loop_id = id(asyncio.get_running_loop())
        mine = [key for key in self._clients if key[1] == loop_id]
        for key in mine:
            await self._clients.pop(key).aclose()


class OpenAICompatibleBackend:
    """Chat completions from one OpenAI-compatible endpoint."""

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        api_key: Secret | None,
        clients: HttpClients,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        attribution: bool = False,
        openrouter_fields: bool = False,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._clients = clients
        self._timeout = httpx.Timeout(timeout_s, connect=CONNECT_TIMEOUT_S)
        self._retry = retry or RetryPolicy()
        self._attribution = attribution
        self._openrouter_fields = openrouter_fields
        self._models: list[ModelInfo] | None = None

    def __repr__(self) -> str:
        return f"OpenAICompatibleBackend(name={self.name!r}, base_url={self.base_url!r})"

    # -- the Backend protocol -------------------------------------------------

    async def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        """Stream a completion, retrying failures that happen before any text arrived."""
        attempt = 0
        while True:
            sent_text = False
            try:
                async for chunk in self._stream_once(request):
                    sent_text = sent_text or bool(chunk.text)
                    yield chunk
                return
            except BackendError as exc:
                attempt += 1
                delay = self._retry.delay_s(attempt, exc.retry_after_s)
                if not exc.retryable or sent_text or delay is None:
                    raise
            await self._retry.sleep(delay)

    # -- the ModelCatalog protocol ---------------------------------------------

    async def list_models(self, *, refresh: bool = False) -> list[ModelInfo]:
        """The endpoint's /models, fetched once per backend (again with ``refresh``)."""
        if self._models is None or refresh:
            try:
                response = await self._clients.get(self.base_url).get(
                    "/models", headers=self._headers(), timeout=self._timeout
                )
            except httpx.HTTPError as exc:
                raise self._transport_error(exc, model="") from exc
            if response.status_code >= 400:
                raise self._status_error(response, model="")
            try:
                entries = response.json()["data"]
                self._models = [_model_info(entry) for entry in entries]
            except (ValueError, KeyError, TypeError) as exc:
                raise BadResponse(
                    "the /models listing is not in the OpenAI format",
                    backend=self.name,
                    status=response.status_code,
                ) from exc
        return self._models

    # -- internals -------------------------------------------------------------

    async def _stream_once(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        client = self._clients.get(self.base_url)
        try:
            async with client.stream(
                "POST",
                "/chat/completions",
                json=self._body(request),
                headers=self._headers(),
                timeout=self._timeout,
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise self._status_error(response, model=request.model)
                async for chunk in self._read_events(response, request.model):
                    yield chunk
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, model=request.model) from exc

    async def _read_events(self, response: httpx.Response, model: str) -> AsyncIterator[Chunk]:
        done = False
        try:
            async for event in EventSource(response).aiter_sse():
                if event.data == "[DONE]":
                    done = True
                    break
                if not event.data:
                    continue
                try:
                    payload = json.loads(event.data)
                except json.JSONDecodeError as exc:
                    raise BadResponse(
                        f"{model} sent a stream event that is not JSON: {event.data[:80]!r}",
                        backend=self.name,
                        model=model,
                    ) from exc
                chunk = self._chunk_from_payload(payload, model)
                if chunk is not None:
                    yield chunk
        except SSEError as exc:
            raise BadResponse(
                f"{model} did not answer with an event stream ({exc})",
                backend=self.name,
                model=model,
            ) from exc
        if not done:
            raise UpstreamError(
                f"{model}'s stream ended without [DONE] (connection lost)",
                backend=self.name,
                model=model,
            )

    def _chunk_from_payload(self, payload: Any, model: str) -> Chunk | None:
        if not isinstance(payload, dict):
            raise BadResponse(f"{model} sent an unexpected event", backend=self.name, model=model)
        choices = payload.get("choices") or []
        choice = choices[0] if choices and isinstance(choices[0], dict) else {}
        error = payload.get("error") or choice.get("error")
        if error or choice.get("finish_reason") == "error":
            raise self._in_band_error(error if isinstance(error, dict) else {}, model)
        delta = choice.get("delta") or choice.get("message") or {}
        text = delta.get("content") or ""
        usage = payload.get("usage")
        if not text and not usage and not choice.get("finish_reason"):
            return None
        return Chunk(
            text=text if isinstance(text, str) else "",
            usage=Usage.from_openai(usage) if isinstance(usage, dict) else None,
            finish_reason=choice.get("finish_reason"),
        )

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [m.to_dict() for m in request.messages],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        if request.seed is not None:
            body["seed"] = request.seed
        if request.stop:
            body["stop"] = list(request.stop)
        if request.json_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": request.json_schema["name"],
                    "strict": True,
                    "schema": request.json_schema["schema"],
                },
            }
        for key, value in request.provider_options.items():
            body.setdefault(key, value)  # never over what Fusion itself set
        if self._openrouter_fields:
            # Older OpenRouter docs require this for cost in usage; newer ones ignore it.
            body["usage"] = {"include": True}
        return body

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key.reveal()}"
        if self._attribution:
            headers["HTTP-Referer"] = APP_URL
            headers["X-Title"] = APP_TITLE
        return headers

    def _status_error(self, response: httpx.Response, *, model: str) -> BackendError:
        status = response.status_code
        message, metadata = _error_body(response)
        message = redact(message or response.reason_phrase or f"HTTP {status}", self._api_key)
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        who = model or self.base_url
        common: dict[str, Any] = {
            "backend": self.name,
            "model": model,
            "status": status,
            "retry_after_s": retry_after,
        }
        if status == 401:
            return AuthError(f"{who}: {status} {message}", **common)
        if status == 402:
            return NoCredits(
                f"{who}: {status} insufficient credits ({message})",
                retryable=retry_after is not None,
                **common,
            )
        if status == 403:
            reasons = metadata.get("reasons") if isinstance(metadata, dict) else None
            detail = f" ({', '.join(map(str, reasons))})" if isinstance(reasons, list) else ""
            return Forbidden(f"{who}: {status} blocked{detail}: {message}", **common)
        if status == 408:
            return BackendTimeout(f"{who}: {status} request timed out", **common)
        if status == 429:
            return RateLimited(f"{who}: {status} rate limited: {message}", **common)
        if status == 409 or status >= 500:
            return UpstreamError(f"{who}: {status} {message}", **common)
        return BadRequest(f"{who}: {status} {message}", **common)

    def _in_band_error(self, error: dict[str, Any], model: str) -> BackendError:
        code = error.get("code")
        status = code if isinstance(code, int) else None
        message = redact(str(error.get("message") or "the provider reported an error"), self._api_key)
        common: dict[str, Any] = {"backend": self.name, "model": model, "status": status}
        text = f"{model}: error mid-stream{f' {status}' if status else ''}: {message}"
        if status == 402:
            return NoCredits(text, **common)
        if status == 429:
            return RateLimited(text, **common)
        return UpstreamError(text, **common)

    def _transport_error(self, exc: httpx.HTTPError, *, model: str) -> BackendError:
        who = model or self.base_url
        if isinstance(exc, httpx.TimeoutException):
            return BackendTimeout(f"{who}: no answer within {self._timeout.read:g} s", backend=self.name, model=model)
        if isinstance(exc, httpx.ConnectError):
            return UpstreamError(
                f"{who}: cannot connect to {self.base_url}",
                backend=self.name,
                model=model,
                hint="Check the endpoint's base URL and that the server is running.",
            )
        return UpstreamError(
            f"{who}: connection failed ({type(exc).__name__}: {redact(str(exc), self._api_key)})",
            backend=self.name,
            model=model,
        )


def _error_body(response: httpx.Response) -> tuple[str, Any]:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return response.text[:200].strip(), None
    if isinstance(error, dict):
        return str(error.get("message") or ""), error.get("metadata")
    if isinstance(error, str):
        return error, None
    return "", None


def _model_info(entry: dict[str, Any]) -> ModelInfo:
    pricing = entry.get("pricing")
    context = entry.get("context_length")
    return ModelInfo(
        id=str(entry["id"]),
        name=str(entry.get("name") or entry["id"]),
        context_length=int(context) if isinstance(context, int | float) else None,
        pricing=Pricing.from_openrouter(pricing) if isinstance(pricing, dict) else None,
        supported_parameters=tuple(entry.get("supported_parameters") or ()),
    )
