"""Property-based tests of the bounded SSE parser and body decoder (hypothesis).

For random and adversarial byte streams, split at random points: only our
error types escape, no example takes a second (the shared ``fuzz`` deadline),
and what comes out is bounded by what went in. Where the input is well formed,
the result matches httpx-sse's reference decoder and does not depend on how
the bytes were split.
"""

from __future__ import annotations

import zlib

from fuzzing import fuzz
from httpx_sse._decoders import SSEDecoder, SSELineDecoder
from hypothesis import given
from hypothesis import strategies as st

from fusion_core.backends.sse import INFLATE_STEP, BodyDecoder, ServerSentEvent, SSEParser
from fusion_core.errors import BadResponse, FusionError, ResponseTooLarge

MAX_EVENT = 256

# Pieces that matter to an SSE parser, and runs long enough to cross the limit.
TOKENS = st.sampled_from(
    [
        b"data:",
        b"data: ",
        b"event: x",
        b"id: 1",
        b"retry: 5",
        b": comment",
        b":",
        b"\r",
        b"\n",
        b"\r\n",
        b"\n\n",
        b"[DONE]",
        b'{"choices": []}',
        b"\xff\xfe",
        "é".encode(),
        b"\x00",
        b"data",
        b"x" * 100,
        b"x" * (MAX_EVENT + 1),
    ]
)
ADVERSARIAL = st.lists(TOKENS, max_size=60).map(b"".join)
STREAMS = st.one_of(st.binary(max_size=2000), ADVERSARIAL)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def parse(pieces: list[bytes], max_event: int = MAX_EVENT) -> list[ServerSentEvent]:
    parser = SSEParser(max_event)
    return [event for piece in pieces for event in parser.feed(piece)]


@fuzz
@given(STREAMS, st.lists(st.integers(min_value=0), max_size=20))
def test_parser_raises_only_our_errors_and_output_is_bounded(data: bytes, cuts: list[int]) -> None:
    try:
        events = parse(split(data, cuts))
    except FusionError as exc:
        assert isinstance(exc, ResponseTooLarge | BadResponse)
        return
    # Every character out came from at least one byte in (a bad byte becomes one U+FFFD).
    assert sum(len(e.data) + len(e.event) for e in events) <= len(data)
    assert all(len(e.data) <= MAX_EVENT for e in events)
    assert len(events) <= data.count(b"\n") + data.count(b"\r")


@fuzz
@given(STREAMS, st.lists(st.integers(min_value=0), max_size=20))
def test_splitting_the_stream_does_not_change_the_events(data: bytes, cuts: list[int]) -> None:
    try:
        whole = parse([data])
    except ResponseTooLarge:
        whole = None
    try:
        pieces = parse(split(data, cuts))
    except ResponseTooLarge:
        pieces = None
    assert whole == pieces


def reference(data: bytes) -> list[tuple[str, str]]:
    """httpx-sse's line splitting and event decoding, as (event, data) pairs."""
    lines = SSELineDecoder().decode(data.decode())
    decoder = SSEDecoder()
    events = [decoder.decode(line) for line in lines]
    # httpx-sse names an unnamed event "message" (the browser default); ours leave it empty.
    pairs = [("" if e.event == "message" else e.event, e.data) for e in events if e is not None]
    return [(event, data) for event, data in pairs if event or data]


@fuzz
@given(st.lists(TOKENS.filter(lambda t: len(t) <= MAX_EVENT and t not in (b"\xff\xfe", b"\x00")), max_size=40))
def test_well_formed_streams_parse_like_httpx_sse(tokens: list[bytes]) -> None:
    data = b"".join(tokens)
    try:
        ours = [(e.event, e.data) for e in parse([data], max_event=1 << 20) if e.data or e.event]
    except ResponseTooLarge:
        return
    assert ours == reference(data)


@fuzz
@given(st.binary(max_size=4000), st.sampled_from(["gzip", "deflate", "identity"]))
def test_decoder_raises_only_our_errors_on_garbage(data: bytes, encoding: str) -> None:
    decoder = BodyDecoder(encoding, 1 << 20)
    try:
        pieces = list(decoder.decode(data))
    except (BadResponse, ResponseTooLarge):
        return
    assert all(len(p) <= max(INFLATE_STEP, len(data)) for p in pieces)


@fuzz
@given(st.binary(max_size=20_000), st.integers(min_value=1, max_value=30_000), st.integers(min_value=1, max_value=9))
def test_decoder_inflates_in_bounded_steps_up_to_the_limit(data: bytes, limit: int, level: int) -> None:
    packed = zlib.compress(data * 20, level)
    decoder = BodyDecoder("deflate", limit)
    out = bytearray()
    try:
        for index in range(0, len(packed), 512):
            for piece in decoder.decode(packed[index : index + 512]):
                assert len(piece) <= INFLATE_STEP
                out += piece
    except ResponseTooLarge:
        assert len(data) * 20 > limit
        assert len(out) <= limit
        return
    assert bytes(out) == data * 20
