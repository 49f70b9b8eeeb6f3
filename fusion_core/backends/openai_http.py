"""OpenAI-compatible chat completions over HTTP, with OpenRouter as a preset.

The same class talks to OpenRouter, vLLM, a llama.cpp server or Ollama; they
differ only in base URL, key variable and a few request fields. The SSE loop
follows OpenRouter's documented wire format: ``:`` comment lines are skipped,
``[DONE]`` ends the stream, an ``error`` object inside the stream raises, and
the last event carries usage with cost.

Everything the endpoint sends is read through :mod:`fusion_core.backends.sse`
under the session's :class:`~fusion_core.limits.Limits`, and every field taken
from a payload is type-checked here, so a broken or hostile endpoint costs one
candidate (``too_large``, ``bad_response``), never the run or the machine.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx

from fusion_core.backends.base import ChatRequest, Chunk, ModelInfo, bounded_number, parse_catalog, whole_number
from fusion_core.backends.retry import RetryPolicy, parse_retry_after
from fusion_core.backends.sse import ACCEPT_ENCODING, aiter_events, loads_json, read_capped
from fusion_core.errors import (
    AuthError,
    BackendError,
    BackendTimeout,
    BadRequest,
    BadResponse,
    Forbidden,
    NoCredits,
    RateLimited,
    ResponseTooLarge,
    UpstreamError,
)
from fusion_core.limits import Limits, format_bytes
from fusion_core.secrets import Secret, redact
from fusion_core.usage import Usage

OPENROUTER_BASE_URL = "https://openrouter.ai/api/v1"
OPENROUTER_KEY_ENV = "OPENROUTER_API_KEY"
OPENROUTER_BASE_URL_ENV = "OPENROUTER_BASE_URL"
APP_URL = "https://github.com/fusion-llm/model-fusion"
APP_TITLE = "Fusion"
DEFAULT_TIMEOUT_S = 120.0
CONNECT_TIMEOUT_S = 10.0
MAX_CONNECTIONS = 64
# An error message from the endpoint is shown to the user; a screenful is plenty.
MAX_MESSAGE_CHARS = 500
# Token counts beyond this are not counts (JSON numbers can be 1e400 or 10**4000).
MAX_TOKENS_COUNT = 1 << 40
MAX_COST_USD = 1e6


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
        limits: Limits | None = None,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._clients = clients
        self._timeout_s = timeout_s
        self._timeout = httpx.Timeout(timeout_s, connect=CONNECT_TIMEOUT_S)
        self.limits = limits or Limits()
        self._retry = retry or RetryPolicy()
        self._attribution = attribution
        self._openrouter_fields = openrouter_fields
        self._models: list[ModelInfo] | None = None

    def __repr__(self) -> str:
        return f"OpenAICompatibleBackend(name={self.name!r}, base_url={self.base_url!r})"

    @property
    def has_key(self) -> bool:
        """Whether requests carry an API key (the key itself never leaves this object)."""
        return self._api_key is not None

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
        """The endpoint's /models, fetched once per backend (again with ``refresh``).

        Bounded in size (``limits.catalog_bytes``) and in total time (the
        backend's timeout, even against a server that trickles bytes);
        entries that are not model objects are skipped.
        """
        if self._models is None or refresh:
            try:
                async with asyncio.timeout(self._timeout_s):
                    self._models = await self._fetch_models()
            except TimeoutError:
                raise BackendTimeout(
                    f"{self.base_url}/models: no complete answer within {self._timeout_s:g} s", backend=self.name
                ) from None
        return self._models

    async def _fetch_models(self) -> list[ModelInfo]:
        client = self._clients.get(self.base_url)
        limit = self.limits.catalog_bytes
        try:
            async with client.stream("GET", "/models", headers=self._headers(), timeout=self._timeout) as response:
                if response.status_code >= 400:
                    raise await self._status_error(response, model="")
                body = await read_capped(response, limit + 1, what="the /models listing")
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, model="") from exc
        except BadResponse as exc:  # from the bounded reader: an encoding it cannot inflate
            raise BadResponse(f"{self.base_url}/models: {exc.message}", backend=self.name, hint=exc.hint) from None
        if len(body) > limit:
            raise ResponseTooLarge(
                f"{self.base_url}/models: the listing exceeded {format_bytes(limit)}",
                limit="catalog_bytes",
                backend=self.name,
            )
        try:
            return parse_catalog(loads_json(body))
        except ValueError as exc:
            raise BadResponse(
                f"{self.base_url}/models: the listing is not in the OpenAI format ({str(exc)[:80]})",
                backend=self.name,
                status=response.status_code,
            ) from None

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
                    raise await self._status_error(response, model=request.model)
                async for chunk in self._read_events(response, request.model):
                    yield chunk
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, model=request.model) from exc

    async def _read_events(self, response: httpx.Response, model: str) -> AsyncIterator[Chunk]:
        content_type = response.headers.get("content-type", "").partition(";")[0]
        if "text/event-stream" not in content_type:
            raise BadResponse(
                f"{model} did not answer with an event stream (content-type {content_type[:60]!r})",
                backend=self.name,
                model=model,
            )
        done = False
        answer_bytes = 0
        try:
            async for event in aiter_events(response, self.limits):
                if event.data == "[DONE]":
                    done = True
                    break
                if not event.data:
                    continue
                try:
                    payload = loads_json(event.data)
                except ValueError:
                    # The event itself is not quoted: an endpoint may echo the request's key.
                    raise BadResponse(
                        f"{model} sent a stream event that is not JSON ({len(event.data)} characters)",
                        backend=self.name,
                        model=model,
                    ) from None
                chunk = self._chunk_from_payload(payload, model)
                if chunk is None:
                    continue
                answer_bytes += len(chunk.text.encode("utf-8", errors="replace"))
                if answer_bytes > self.limits.answer_bytes:
                    raise ResponseTooLarge(
                        f"{model}: the answer exceeded {format_bytes(self.limits.answer_bytes)}",
                        limit="answer_bytes",
                        backend=self.name,
                        model=model,
                    )
                yield chunk
        except ResponseTooLarge as exc:
            if exc.model:
                raise
            # Raised by the bounded reader, which does not know whose stream it reads.
            raise ResponseTooLarge(f"{model}: {exc.message}", limit=exc.limit, backend=self.name, model=model) from None
        except BadResponse as exc:
            if exc.model:
                raise
            raise BadResponse(f"{model}: {exc.message}", backend=self.name, model=model, hint=exc.hint) from None
        if not done:
            raise UpstreamError(
                f"{model}'s stream ended without [DONE] (connection lost)",
                backend=self.name,
                model=model,
            )

    def _chunk_from_payload(self, payload: Any, model: str) -> Chunk | None:
        if not isinstance(payload, dict):
            raise BadResponse(f"{model} sent an unexpected event", backend=self.name, model=model)
        choices = payload.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
        error = payload.get("error") or choice.get("error")
        finish_reason = choice.get("finish_reason")
        if error or finish_reason == "error":
            raise self._in_band_error(error if isinstance(error, dict) else {}, model)
        delta = choice.get("delta") or choice.get("message")
        text = delta.get("content") if isinstance(delta, dict) else None
        text = text if isinstance(text, str) else ""
        usage = _usage(payload.get("usage"))
        finish = finish_reason[:MAX_MESSAGE_CHARS] if isinstance(finish_reason, str) and finish_reason else None
        if not text and usage is None and finish is None:
            return None
        return Chunk(text=text, usage=usage, finish_reason=finish)

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
        # Only encodings the bounded reader can inflate step by step (httpx would add br and zstd).
        headers = {"Accept": "text/event-stream", "Accept-Encoding": ACCEPT_ENCODING}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key.reveal()}"
        if self._attribution:
            headers["HTTP-Referer"] = APP_URL
            headers["X-Title"] = APP_TITLE
        return headers

    async def _status_error(self, response: httpx.Response, *, model: str) -> BackendError:
        status = response.status_code
        try:
            body = await read_capped(response, self.limits.error_body_bytes, what="the error body")
        except BadResponse:
            body = b""  # an undecodable error page: the status alone says enough
        message, metadata = _error_body(body)
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
            shown = (
                [r[:MAX_MESSAGE_CHARS] for r in reasons[:10] if isinstance(r, str)] if isinstance(reasons, list) else []
            )
            detail = f" ({redact(', '.join(shown), self._api_key)})" if shown else ""
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
        status = code if isinstance(code, int) and 100 <= code <= 599 else None
        raw = error.get("message")
        message = raw[:MAX_MESSAGE_CHARS] if isinstance(raw, str) and raw else "the provider reported an error"
        message = redact(message, self._api_key)
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


def _error_body(body: bytes) -> tuple[str, Any]:
    """The message and metadata of an error body (a bounded prefix of it, JSON or not)."""
    try:
        data = loads_json(body)
    except ValueError:
        return body[:200].decode("utf-8", errors="replace").strip(), None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        message = error.get("message")
        return (message[:MAX_MESSAGE_CHARS] if isinstance(message, str) else ""), error.get("metadata")
    if isinstance(error, str):
        return error[:MAX_MESSAGE_CHARS], None
    return "", None


def _usage(data: Any) -> Usage | None:
    """A ``usage`` object with every number checked: whole, finite, in range (else 0 or unknown)."""
    if not isinstance(data, dict):
        return None
    prompt_details = data.get("prompt_tokens_details")
    completion_details = data.get("completion_tokens_details")
    return Usage(
        prompt_tokens=_tokens(data, "prompt_tokens"),
        completion_tokens=_tokens(data, "completion_tokens"),
        cost=bounded_number(data.get("cost"), MAX_COST_USD),
        cached_tokens=_tokens(prompt_details, "cached_tokens"),
        reasoning_tokens=_tokens(completion_details, "reasoning_tokens"),
    )


def _tokens(data: Any, key: str) -> int:
    return (whole_number(data.get(key), MAX_TOKENS_COUNT) if isinstance(data, dict) else None) or 0
