"""One client connection: read frames, check each message, and answer every request exactly once.

This replaces pygls' read loop (``pygls.io_.run_async``), which drops a message it
cannot parse or structure without a word: a request with bad params got no answer
and the client waited forever. Here, before pygls' protocol sees a message:

- a body that is not JSON gets ``-32700`` (id null), as does a frame lost to a bad
  ``Content-Length`` (see :mod:`fusion_lsp.framing` for how the stream resynchronises);
- something that is not a JSON-RPC 2.0 message gets ``-32600``;
- a request after ``shutdown`` gets ``-32600`` (only ``exit`` is still accepted);
- a request whose params don't fit its method gets ``-32602`` with the reason;
- a body that is not valid UTF-8 is repaired (bad bytes replaced) rather than dropped.

Unknown methods still get ``-32601`` from pygls. Notifications never get replies
(JSON-RPC forbids them); a bad one is logged and dropped.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from cattrs import transform_error
from lsprotocol import types
from pygls.protocol import JsonRPCProtocol

from fusion_lsp.framing import Frame, FrameDecoder, FramingError

READ_CHUNK_BYTES = 64 * 1024
REASON_CHARS = 300

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

_log = logging.getLogger(__name__)

MsgId = int | str | None


async def serve_stream(read: Callable[[], Awaitable[bytes]], protocol: JsonRPCProtocol, stop: threading.Event) -> None:
    """Feed everything ``read()`` returns to ``protocol`` until it returns b"" (the client left) or ``stop``."""
    decoder = FrameDecoder()
    while not stop.is_set():
        data = await read()
        if not data:
            break
        for event in decoder.feed(data):
            if isinstance(event, Frame):
                if event.note:
                    _log.warning("%s; read the frame up to there", event.note)
                dispatch(protocol, event.body)
            else:
                report_framing_error(protocol, event)


def report_framing_error(protocol: JsonRPCProtocol, error: FramingError) -> None:
    """Log a framing problem; if a message was lost, tell the client with a -32700 (id null)."""
    if error.lost_frame:
        send_error(protocol, None, PARSE_ERROR, f"Parse error: {error.message}")
    else:
        _log.warning("framing: %s", error.message)


def dispatch(protocol: JsonRPCProtocol, body: bytes) -> None:
    """Check one message body and hand it to pygls, or answer it with the JSON-RPC error it earned."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        _log.warning("a message from the client was not valid UTF-8; bad bytes replaced")
        text = body.decode("utf-8", errors="replace")
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError) as exc:
        send_error(protocol, None, PARSE_ERROR, f"Parse error: the message is not JSON ({_short(exc)})")
        return
    problem = _shape_problem(raw)
    msg_id = _reply_id(raw)
    is_request = isinstance(raw, dict) and "id" in raw and "method" in raw
    if problem is not None:
        if is_request or not isinstance(raw, dict) or not ("method" in raw or "id" in raw):
            send_error(protocol, msg_id, INVALID_REQUEST, f"Invalid request: {problem}")
        else:
            _log.warning("dropped a malformed message: %s", problem)
        return
    method = raw.get("method")
    if protocol._shutdown and method is not None and method != types.EXIT:
        if is_request:
            send_error(protocol, msg_id, INVALID_REQUEST, f"Invalid request: {method} after shutdown")
        return  # pygls drops notifications after shutdown, and so do we
    try:
        message = protocol.structure_message(raw)
    except Exception as exc:  # noqa: BLE001 - any structuring failure means the message does not fit its method
        reason = _structure_reason(exc)
        if is_request:
            send_error(protocol, msg_id, INVALID_PARAMS, f"Invalid params for {method}: {reason}")
        else:
            _log.warning("dropped %s with invalid params: %s", method or "a response", reason)
        return
    if is_request and not hasattr(message, "id"):
        send_error(protocol, msg_id, INVALID_REQUEST, f"Invalid request: {method} is a notification")
        return
    try:
        protocol.handle_message(message)
    except Exception:  # pygls answers handler failures itself; this is a bug in the dispatch
        _log.exception("could not handle a message")
        if is_request:
            send_error(protocol, msg_id, INTERNAL_ERROR, "Internal error")


def send_error(protocol: JsonRPCProtocol, msg_id: MsgId, code: int, message: str) -> None:
    """Send one JSON-RPC error response (with ``"id": null`` when the id is unknown)."""
    _log.warning("answered %s with %d: %s", "a message" if msg_id is None else f"request {msg_id!r}", code, message)
    protocol._send_data({"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": message}})


def _shape_problem(raw: Any) -> str | None:
    """What makes ``raw`` not a JSON-RPC 2.0 request, notification or response, or None."""
    if not isinstance(raw, dict):
        return f"a message is a JSON object, not {type(raw).__name__}"
    if raw.get("jsonrpc") != "2.0":
        return '"jsonrpc" must be "2.0"'
    if "id" in raw and _reply_id(raw) is None and raw["id"] is not None:
        return '"id" must be a string or an integer'
    if "method" in raw:
        if not isinstance(raw["method"], str):
            return '"method" must be a string'
        return None
    if "id" not in raw or ("result" not in raw and "error" not in raw):
        return "neither a request, a notification nor a response"
    return None


def _reply_id(raw: Any) -> MsgId:
    """The message's id if it is one a reply may echo, else None."""
    msg_id = raw.get("id") if isinstance(raw, dict) else None
    if isinstance(msg_id, str) or (isinstance(msg_id, int) and not isinstance(msg_id, bool)):
        return msg_id
    return None


def _structure_reason(exc: BaseException) -> str:
    cause = exc.__cause__ or exc
    try:
        reasons = transform_error(cause) if isinstance(cause, Exception) else [str(cause)]
    except Exception:  # noqa: BLE001 - the reason is a courtesy
        reasons = [str(cause)]
    return _short("; ".join(reasons))


def _short(value: object) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 1] + "…"
