"""The test server's mock models: the catalogue, how each one behaves, and playback.

:func:`plan_request` is pure and deterministic: given a model id, the request
body and how many times the model was called since the last reset, it returns
either an :class:`HttpError` (sent before any stream starts) or a :class:`Plan`,
a timed script of content pieces ending in usage, an in-band error or a dropped
connection. :class:`Playback` is the ASGI response that plays a plan out over
SSE or as one JSON body, and notices a client that hangs up.

``max_tokens`` truncates a reply to that many words (``finish_reason: "length"``)
and ``stop`` strings cut it short, as a real provider would.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any

import anyio
from starlette.types import Receive, Scope, Send

from fusion_core.testing.replies import (
    ScriptedModel,
    count_tokens,
    healthy_reply,
    judge_reply,
    last_user_text,
    limit_reply,
    message_text,
    prompt_tokens,
    split_pieces,
)

# Healthy mock models answer after this long, then one piece every gap (both scaled).
HEALTHY_FIRST_TOKEN_S = 0.05
HEALTHY_CHUNK_GAP_S = 0.01
SLOW_TOTAL_S = 5.0
HANG_MAX_S = 60.0
# `mock/lat-<ms>` sends its first piece after this fraction of the total time.
LAT_FIRST_FRACTION = 0.1
MAX_LAT_MS = 600_000
KEEPALIVE_S = 0.5

DEFAULT_CONTEXT_LENGTH = 32_768
DEFAULT_MAX_COMPLETION_TOKENS = 4_096
JUDGE_CONTEXT_LENGTH = 131_072
JUDGE_MAX_COMPLETION_TOKENS = 8_192
BASE_PARAMETERS = ("temperature", "max_tokens", "seed", "stop")
STRUCTURED_PARAMETERS = ("response_format", "structured_outputs")
# Listed in /models (every 50 ms up to 5 s), so a client that checks ids against the
# catalogue before a run accepts them; any `mock/lat-<ms>` answers when called directly.
LISTED_LATENCIES_MS = tuple(range(50, 5001, 50))

DIES_MIDSTREAM_TEXT = "The sky is blue because"
# mock/hostile-html: markup that would run script if a front end rendered it unsanitised. Each payload
# sets window.__fusion_pwned and the page title, so a browser test can tell whether any of it ran;
# [BEST] makes the mock judge pick it, so the fused answer carries it too.
HOSTILE_HTML_TEXT = (
    "[BEST] **Hostile** <img src=x onerror=\"window.__fusion_pwned='img';document.title='pwned'\"> "
    "<script>window.__fusion_pwned='script';document.title='pwned'</script> "
    "[click me](javascript:window.__fusion_pwned='link') "
    "<a href=\"javascript:window.__fusion_pwned='a'\">a link</a> "
    "<svg onload=\"window.__fusion_pwned='svg'\"></svg> done."
)
DROPS_CONNECTION_TEXT = "This answer starts normally but the connection is cut before"
HANG_TIMEOUT_MESSAGE = "Timed out waiting for the upstream provider"
PROCESSING = b": OPENROUTER PROCESSING\n\n"
DONE = b"data: [DONE]\n\n"
PROVIDER = "Mock"


@dataclass(frozen=True)
class ModelInfo:
    """One catalogue entry as /models lists it; prices are USD-per-token decimal strings."""

    id: str
    name: str
    prompt_price: str
    completion_price: str
    structured: bool = False
    context_length: int = DEFAULT_CONTEXT_LENGTH
    max_completion_tokens: int = DEFAULT_MAX_COMPLETION_TOKENS

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """USD for one request, computed the way a client estimates it from /models."""
        return prompt_tokens * float(self.prompt_price) + completion_tokens * float(self.completion_price)

    def to_json(self) -> dict[str, Any]:
        """The /models entry."""
        params = list(BASE_PARAMETERS) + (list(STRUCTURED_PARAMETERS) if self.structured else [])
        return {
            "id": self.id,
            "name": self.name,
            "created": 1_700_000_000,
            "description": f"Deterministic test model {self.id}.",
            "context_length": self.context_length,
            "architecture": {"modality": "text->text", "tokenizer": "Other"},
            "pricing": {"prompt": self.prompt_price, "completion": self.completion_price, "request": "0"},
            "top_provider": {
                "context_length": self.context_length,
                "max_completion_tokens": self.max_completion_tokens,
            },
            "supported_parameters": params,
        }


def _model(model_id: str, prompt: str = "0.000001", completion: str = "0.000002") -> ModelInfo:
    title = model_id.split("/", 1)[-1].replace("-", " ").title()
    return ModelInfo(model_id, f"Mock: {title}", prompt, completion)


def _judge(model_id: str, *, structured: bool) -> ModelInfo:
    info = _model(model_id, "0.000003", "0.000015")
    return replace(
        info,
        structured=structured,
        context_length=JUDGE_CONTEXT_LENGTH,
        max_completion_tokens=JUDGE_MAX_COMPLETION_TOKENS,
    )


# Distinct prices per healthy model so cost sums in tests are not all the same number.
_HEALTHY_PRICES = {
    "alpha": ("0.000001", "0.000002"),
    "beta": ("0.0000005", "0.0000015"),
    "gamma": ("0.000002", "0.000006"),
    "delta": ("0.0000001", "0.0000004"),
    "epsilon": ("0.000003", "0.000012"),
    "zeta": ("0.0000002", "0.0000002"),
    "eta": ("0.0000015", "0.000005"),
    "theta": ("0.000004", "0.000016"),
}
_OTHER_IDS = (
    "slow hang auth-401 no-credits-402 forbidden-403 bad-400 rate-limit-429 always-429 "
    "flaky-502 down-502 inband-502 dies-midstream drops-connection garbage empty echo-key-event echo-key-usage "
    "hostile-html"
).split()

BUILTIN_MODELS: dict[str, ModelInfo] = {
    **{f"mock/{n}": _model(f"mock/{n}", *p) for n, p in _HEALTHY_PRICES.items()},
    **{f"mock/lat-{ms}": _model(f"mock/lat-{ms}") for ms in LISTED_LATENCIES_MS},
    **{f"mock/{n}": _model(f"mock/{n}") for n in _OTHER_IDS},
    "mock/nocost": _model("mock/nocost", "0.000002", "0.000004"),
    "mock/judge": _judge("mock/judge", structured=True),
    "mock/judge-noschema": _judge("mock/judge-noschema", structured=False),
    "mock/judge-offformat": _judge("mock/judge-offformat", structured=False),
    # It claims structured output and still gets its first reply wrong.
    "mock/judge-repairable": _judge("mock/judge-repairable", structured=True),
}
SCRIPTED_PRICES = ("0.000001", "0.000002")
_LAT_RE = re.compile(r"mock/lat-(\d+)")


def lat_ms(model_id: str) -> int | None:
    """The total time of a `mock/lat-<ms>` model, or None for any other id."""
    match = _LAT_RE.fullmatch(model_id)
    if match is None or int(match.group(1)) > MAX_LAT_MS:
        return None
    return int(match.group(1))


def model_info(model_id: str) -> ModelInfo | None:
    """Catalogue entry for a built-in id, including any valid `mock/lat-<ms>`."""
    if model_id in BUILTIN_MODELS:
        return BUILTIN_MODELS[model_id]
    if lat_ms(model_id) is not None:
        return _model(model_id)
    return None


def scripted_info(model_id: str) -> ModelInfo:
    """Catalogue entry for a model registered through /_test/script."""
    return ModelInfo(model_id, f"Scripted: {model_id}", *SCRIPTED_PRICES)


# ---------------------------------------------------------------------------
# Plans


@dataclass(frozen=True)
class HttpError:
    """A plain HTTP error response, sent before any stream starts."""

    status: int
    message: str
    metadata: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        """The OpenRouter error envelope."""
        error: dict[str, Any] = {"code": self.status, "message": self.message}
        if self.metadata is not None:
            error["metadata"] = self.metadata
        return {"error": error}


@dataclass(frozen=True)
class Plan:
    """A timed reply: ``pieces[i]`` is sent at ``offsets[i]`` seconds after the request began.

    After the pieces, at ``end_s``: an in-band ``error`` (finish_reason "error"),
    a dropped connection (``drop``), or a normal finish with usage.
    ``hang_s`` > 0 means no content at all, only keep-alive comments, then a 408.
    """

    pieces: tuple[str, ...] = ()
    offsets: tuple[float, ...] = ()
    end_s: float = 0.0
    finish_reason: str = "stop"
    error: tuple[int, str] | None = None
    drop: bool = False
    garbage: bool = False
    include_cost: bool = True
    hang_s: float = 0.0
    # Sent as they are after the pieces (a broken or hostile endpoint), then the stream ends.
    raw_events: tuple[bytes, ...] = ()
    # Replaces fields of the final usage object (e.g. a value that is not a number).
    usage_override: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "".join(self.pieces)


def _paced(text: str, first_s: float, gap_s: float, **kw: Any) -> Plan:
    pieces = split_pieces(text)
    offsets = tuple(first_s + i * gap_s for i in range(len(pieces)))
    end = (offsets[-1] + gap_s) if offsets else first_s
    return Plan(tuple(pieces), offsets, end, **kw)


def _spread(text: str, total_s: float, **kw: Any) -> Plan:
    """Pieces from LAT_FIRST_FRACTION of ``total_s`` on, evenly, finishing exactly at ``total_s``."""
    pieces = split_pieces(text)
    first = total_s * LAT_FIRST_FRACTION
    step = (total_s - first) / max(len(pieces), 1)
    return Plan(tuple(pieces), tuple(first + i * step for i in range(len(pieces))), total_s, **kw)


def _error(status: int, model_id: str) -> HttpError:
    retry = {"Retry-After": "1", "X-RateLimit-Limit": "20", "X-RateLimit-Remaining": "0"}
    errors = {
        401: HttpError(401, "User not found."),
        402: HttpError(
            402,
            "Insufficient credits. Add more using https://openrouter.ai/credits",
            {"limit_source": "account"},
        ),
        400: HttpError(400, f"{model_id} is not a valid model ID"),
        429: HttpError(
            429,
            f"{model_id} is temporarily rate-limited upstream. Please retry shortly.",
            {"provider_name": PROVIDER, "raw": "rate limited"},
            retry,
        ),
        502: HttpError(502, "Provider returned error", {"provider_name": PROVIDER, "raw": "bad gateway"}),
    }
    return errors[status]


def plan_request(
    model_id: str,
    body: dict[str, Any],
    call_index: int,
    latency_scale: float,
    script: ScriptedModel | None = None,
    *,
    bearer: str = "",
) -> Plan | HttpError:
    """Decide how ``model_id`` answers its ``call_index``-th request (0-based) since reset.

    ``bearer`` is the request's API key, which the ``mock/echo-key-*`` models echo back
    the way a careless endpoint quotes a request in its errors.
    """
    messages = body.get("messages") or []
    user_text = last_user_text(messages)
    if script is not None:
        text, finish = limit_reply(script.reply_for(user_text, call_index), body)
        return _paced(text, script.latency_s, script.chunk_delay_s, finish_reason=finish)
    name = model_id.split("/", 1)[-1] if model_id.startswith("mock/") else ""
    first, gap = HEALTHY_FIRST_TOKEN_S * latency_scale, HEALTHY_CHUNK_GAP_S * latency_scale

    fixed_errors = {"auth-401": 401, "no-credits-402": 402, "bad-400": 400}
    fixed_errors |= {"always-429": 429, "down-502": 502}
    if name in fixed_errors:
        return _error(fixed_errors[name], model_id)
    if name == "forbidden-403":
        flagged = {"reasons": ["harassment"], "flagged_input": user_text[:100], "provider_name": PROVIDER}
        message = f'{model_id} requires moderation and your input was flagged for "harassment"'
        return HttpError(403, message, {**flagged, "model_slug": model_id})
    if name == "rate-limit-429" and call_index == 0:
        return _error(429, model_id)
    if name == "flaky-502" and call_index == 0:
        return _error(502, model_id)

    if name == "hang":
        return Plan(hang_s=HANG_MAX_S)
    if name == "garbage":
        return Plan(end_s=first, garbage=True)
    if name == "empty":
        return Plan(end_s=first)
    if name == "echo-key-event":
        # Not JSON, so the client quotes it in its error; the key sits past the first 40 characters.
        event = f"data: upstream proxy error (request was authorized with Bearer {bearer}) retry later\n\n"
        return Plan(end_s=first, raw_events=(event.encode(),))
    if name == "echo-key-usage":
        text, finish = limit_reply(healthy_reply(model_id, user_text), body)
        return _paced(text, first, gap, finish_reason=finish, usage_override={"prompt_tokens": bearer})
    if name == "inband-502":
        return Plan(end_s=first, finish_reason="error", error=(502, "Provider returned error"))
    if name == "dies-midstream":
        lost = (502, "upstream connection lost")
        return _paced(DIES_MIDSTREAM_TEXT, first, gap, finish_reason="error", error=lost)
    if name == "drops-connection":
        return _paced(DROPS_CONNECTION_TEXT, first, gap, drop=True)
    if name == "hostile-html":
        return _paced(HOSTILE_HTML_TEXT, first, gap)
    if name.startswith("judge"):
        prompt = "\n".join(message_text(m.get("content")) for m in messages if isinstance(m, dict))
        text = judge_reply(name, body, user_text, prompt, call_index)
        text, finish = limit_reply(text, body)
        return _paced(text, first, gap, finish_reason=finish)

    text, finish = limit_reply(healthy_reply(model_id, user_text), body)
    total_ms = lat_ms(model_id)
    if total_ms is not None:
        # Not scaled: benchmarks rely on the exact number in the id.
        return _spread(text, total_ms / 1000, finish_reason=finish)
    if name == "slow":
        return _spread(text, SLOW_TOTAL_S * latency_scale, finish_reason=finish)
    return _paced(text, first, gap, finish_reason=finish, include_cost=name != "nocost")


# ---------------------------------------------------------------------------
# Playback


class ConnectionDropped(Exception):
    """Raised on purpose so uvicorn closes the socket mid-response (mock/drops-connection)."""


class Playback:
    """ASGI response that plays a :class:`Plan` and notices a client that hangs up.

    A watcher task reads ``receive()``: uvicorn delivers ``http.disconnect`` the
    moment the socket closes, which cancels the playback at once (sends to a
    closed socket are silently dropped, so they cannot be relied on).
    """

    def __init__(
        self,
        plan: Plan,
        info: ModelInfo,
        messages: list[Any],
        entry: dict[str, Any],
        generation: dict[str, Any],
        t0: float,
    ) -> None:
        """``entry`` is the request's log entry and ``generation`` its /generation record;
        both are updated in place. ``t0`` is ``time.monotonic()`` when the request began."""
        self.plan, self.info, self.messages = plan, info, messages
        self.entry, self.generation, self.t0 = entry, generation, t0
        self.gen_id: str = entry["id"]
        self.created = int(time.time())
        self.sent = ""
        self._finishing = False
        self._send: Send | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._send = send
        dropped = False
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch, receive, tg.cancel_scope)
            try:
                dropped = await (self._stream() if self.entry["stream"] else self._whole())
            finally:
                tg.cancel_scope.cancel()
        self._record()
        if dropped:
            raise ConnectionDropped(self.gen_id)

    async def _watch(self, receive: Receive, scope: anyio.CancelScope) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        # After the last byte uvicorn reports a disconnect too; that one is not a hang-up.
        if not self._finishing:
            self.entry["disconnected"] = True
            self.entry["t_disconnect"] = time.time()
        scope.cancel()

    def _record(self) -> None:
        if not self.entry["disconnected"]:
            self.entry["t_end"] = time.time()
        pt, ct = prompt_tokens(self.messages), count_tokens(self.sent)
        self.generation.update(
            total_cost=self.info.cost(pt, ct),
            tokens_prompt=pt,
            tokens_completion=ct,
            cancelled=self.entry["disconnected"],
            finish_reason=self.entry["finish_reason"],
            generation_time=round(time.monotonic() - self.t0, 6),
        )

    async def _sleep_until(self, offset: float, *, keepalive: bool) -> None:
        # Absolute deadlines from the request start, so per-chunk sleeps cannot drift.
        deadline = self.t0 + offset
        while (remaining := deadline - time.monotonic()) > 0:
            if keepalive and remaining > KEEPALIVE_S:
                await anyio.sleep(KEEPALIVE_S)
                await self._write(PROCESSING)
            else:
                await anyio.sleep(remaining)

    async def _start(self, status: int, content_type: str, length: int | None = None) -> None:
        headers = [(b"content-type", content_type.encode()), (b"x-generation-id", self.gen_id.encode())]
        if length is None:
            headers.append((b"cache-control", b"no-cache"))
        else:
            headers.append((b"content-length", str(length).encode()))
        assert self._send is not None
        await self._send({"type": "http.response.start", "status": status, "headers": headers})

    async def _write(self, data: bytes, *, last: bool = False) -> None:
        if last:
            self._finishing = True
        assert self._send is not None
        await self._send({"type": "http.response.body", "body": data, "more_body": not last})

    def _usage(self) -> dict[str, Any]:
        pt, ct = prompt_tokens(self.messages), count_tokens(self.sent)
        usage: dict[str, Any] = {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct}
        if self.plan.include_cost:
            usage["cost"] = self.info.cost(pt, ct)
        usage["prompt_tokens_details"] = {"cached_tokens": 0}
        usage["completion_tokens_details"] = {"reasoning_tokens": 0}
        return usage | self.plan.usage_override

    def _envelope(self, obj: str, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {
            "id": self.gen_id,
            "provider": PROVIDER,
            "model": self.info.id,
            "object": obj,
            "created": self.created,
            "choices": choices,
            **extra,
        }

    async def _event(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> None:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "native_finish_reason": finish}
        chunk = self._envelope("chat.completion.chunk", [choice], **extra)
        await self._write(b"data: " + json.dumps(chunk).encode() + b"\n\n")

    async def _stream(self) -> bool:
        """Play the plan as SSE; returns True when the connection must be dropped."""
        plan = self.plan
        await self._start(200, "text/event-stream")
        await self._write(PROCESSING)
        if plan.hang_s:
            await self._sleep_until(plan.hang_s, keepalive=True)
            self.entry["finish_reason"] = "error"
            await self._event({"content": ""}, "error", error={"code": 408, "message": HANG_TIMEOUT_MESSAGE})
            await self._write(DONE, last=True)
            return False
        for i, (piece, offset) in enumerate(zip(plan.pieces, plan.offsets, strict=True)):
            await self._sleep_until(offset, keepalive=True)
            await self._event({"role": "assistant", "content": piece} if i == 0 else {"content": piece})
            self.sent += piece
            if i == 1:
                # Real OpenRouter streams interleave keep-alive comments with data.
                await self._write(PROCESSING)
        await self._sleep_until(plan.end_s, keepalive=True)
        if plan.drop:
            return True
        if plan.garbage or plan.raw_events:
            await self._write(b"".join(plan.raw_events) or b"data: {not json\n\ndata: {not json either\n\n")
            await self._write(DONE, last=True)
            return False
        if not plan.pieces:
            await self._event({"role": "assistant", "content": ""})
        self.entry["finish_reason"] = plan.finish_reason
        if plan.error:
            code, message = plan.error
            await self._event({"content": ""}, "error", error={"code": code, "message": message})
        else:
            await self._event({}, plan.finish_reason)
            usage_chunk = self._envelope("chat.completion.chunk", [], usage=self._usage())
            await self._write(b"data: " + json.dumps(usage_chunk).encode() + b"\n\n")
        await self._write(DONE, last=True)
        return False

    async def _whole(self) -> bool:
        """Answer with one JSON body; returns True when the connection must be dropped."""
        plan = self.plan
        if plan.hang_s:
            await self._sleep_until(plan.hang_s, keepalive=False)
            data, status = json.dumps(HttpError(408, HANG_TIMEOUT_MESSAGE).body()).encode(), 408
        elif plan.garbage:
            await self._sleep_until(plan.end_s, keepalive=False)
            data, status = b"{not json", 200
        else:
            await self._sleep_until(plan.end_s, keepalive=False)
            self.sent = plan.text
            self.entry["finish_reason"] = plan.finish_reason
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": plan.text},
                "finish_reason": plan.finish_reason,
                "native_finish_reason": plan.finish_reason,
            }
            if plan.error:
                choice["error"] = {"code": plan.error[0], "message": plan.error[1]}
            body = self._envelope("chat.completion", [choice], usage=self._usage())
            data, status = json.dumps(body).encode(), 200
        await self._start(status, "application/json", len(data))
        if plan.drop:
            await self._write(data[: len(data) // 2])
            return True
        await self._write(data, last=True)
        return False
