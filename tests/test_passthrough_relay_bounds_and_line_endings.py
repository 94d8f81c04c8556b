"""The Anthropic passthrough relay against an upstream that stretches SSE: what an unfinished event may hold is
bounded (every line counts, comments and `event:` lines too, not only `data:`) and a read costs the relay its own
bytes, not a copy of what it holds; every legal line end (CRLF, LF, CR, mixed) is relayed whole, as sent; and an
event without an `event:` line is known by its data's `type`, so its error is redacted and its message_stop ends
the answer cleanly."""

from __future__ import annotations

import json
import tracemalloc
from typing import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dragoman.exchange.dialects.messages import PassthroughRelay
from dragoman.protocols.sse import MAX_EVENT_BYTES, EventTooLarge, SSEDecoder
from dragoman.redaction import REDACTED
from tests.anthropic_events import check_sse_grammar, sse_events
from tests.audit_helpers import assert_no_secrets, wait_record
from tests.gateway import Gateway, run_gateway
from tests.routing_helpers import USER_HI, config_yaml, post_messages, post_stream_then, route, sdk
from tests.upstreams.anthropic_messages import MessageReply, RawSSE, ScriptedAnthropicUpstream, render_message_events

pytestmark = pytest.mark.timeout(60)

ROUTE = "claude"
UPSTREAM_KEY = "sk-ant-api03-relaytest-5e6f7a8b9c"
ENV = {"ANTHROPIC_PROD": UPSTREAM_KEY}
EVENT_LIMIT = f"larger than the gateway's limit of {MAX_EVENT_BYTES >> 20} MiB"
REPLY = MessageReply(text="Every line end, every event.", tool_uses=[("toolu_01", "Bash", {"command": "ls"})])
EVENTS = render_message_events(REPLY)
OPENING = EVENTS[:4]  # message_start, ping, content_block_start, the first delta
# Lines that hold an event open without a `data:` line, as a stalling upstream might send them forever.
FILLERS = {"comments": b": keepalive\n", "event_lines": b"event: ping\n", "id_lines": b"id: 7\n"}
# (line end inside an event, line end of the blank line that ends it): every way SSE allows an event to end.
LINE_ENDS = {
    "lf_then_crlf": (b"\n", b"\r\n"),
    "crlf_then_lf": (b"\r\n", b"\n"),
    "cr": (b"\r", b"\r"),
    "cr_then_crlf": (b"\r", b"\r\n"),
    "lf_then_cr": (b"\n", b"\r"),
    "crlf": (b"\r\n", b"\r\n"),
}


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[ScriptedAnthropicUpstream, Gateway]]:
    with ScriptedAnthropicUpstream() as upstream:
        text = config_yaml([route(ROUTE, upstream.base_url, provider="anthropic", model="claude-opus-4-1",
                                  api_key_ref="anthropic_prod", translation={"passthrough": True},
                                  retry={"attempts": 1}, breaker={"failures": 1000, "cooldown": 1})])
        with run_gateway(text, env=ENV) as gateway:
            yield upstream, gateway


@pytest.fixture
def upstream(servers) -> Iterator[ScriptedAnthropicUpstream]:
    servers[0].reset()
    yield servers[0]
    servers[0].reset()


@pytest.fixture
def gateway(servers) -> Gateway:
    return servers[1]


def _body(stream: bool = True) -> dict:
    return {"model": ROUTE, "max_tokens": 64, "stream": stream, "messages": USER_HI}


def _with_line_ends(events: list[bytes], line_end: bytes, blank: bytes) -> list[bytes]:
    """The events (rendered with LF) with each line ended by `line_end` and each event by `blank`."""
    return [event[:-2].replace(b"\n", line_end) + line_end + blank for event in events]


def _without_event_lines(event: bytes) -> bytes:
    return b"\n".join(line for line in event.split(b"\n") if not line.startswith(b"event:"))


def _cut_after_each_cr(events: list[bytes], size: int = 97) -> list[bytes]:
    """The events in pieces of `size` bytes, each also cut right after every CR (a CRLF split between two writes),
    but for the last event, sent whole: the relay ends the answer at the CR that ends it, and an LF after it in
    another read would not be relayed (as the unit test below allows)."""
    data, pieces = b"".join(events[:-1]), []
    for at in range(0, len(data), size):
        pieces += [p for p in data[at : at + size].replace(b"\r", b"\r\0").split(b"\0") if p]
    return [*pieces, events[-1]]


def _filler(line: bytes, total: int) -> list[bytes]:
    """`total` bytes or more of `line`, repeated, in 64 KiB writes: never a blank line."""
    piece = line * ((64 << 10) // len(line))
    return [piece] * (total // len(piece) + 1)


def _error_event(named: bool, error_type: str = "authentication_error") -> bytes:
    body = {"type": "error", "error": {"type": error_type,
                                       "message": f"Incorrect API key provided: {UPSTREAM_KEY}."}}
    return (b"event: error\n" if named else b"") + b"data: " + json.dumps(body).encode() + b"\n\n"


def _still_serving(gateway: Gateway, upstream: ScriptedAnthropicUpstream) -> None:
    upstream.reset(RawSSE(EVENTS))
    resp = post_messages(gateway, _body())
    assert resp.status == 200 and resp.body == b"".join(EVENTS), resp.text[:300]


# ---- every legal line end -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("line_end", "blank"), LINE_ENDS.values(), ids=LINE_ENDS)
def test_every_legal_line_end_is_relayed_whole_and_as_sent(gateway, upstream, line_end, blank):
    events = _with_line_ends(EVENTS, line_end, blank)
    sent = b"".join(events)
    upstream.reset(RawSSE(_cut_after_each_cr(events)))
    resp = post_messages(gateway, _body())
    assert resp.status == 200, resp.text[:300]
    assert resp.body == sent  # every event, byte for byte: no line end rewritten, none dropped
    record = wait_record(gateway.audit_store, resp.headers["request-id"])
    assert record["error_type"] is None and record["input_tokens"] == 12 and record["output_tokens"] == 7, record
    with sdk(gateway) as client, client.messages.stream(model=ROUTE, max_tokens=64, messages=USER_HI) as stream:
        message = stream.get_final_message()
    assert message.content[0].text == REPLY.text and message.content[1].input == {"command": "ls"}
    assert message.stop_reason == "tool_use"


@pytest.mark.parametrize(("line_end", "blank"), LINE_ENDS.values(), ids=LINE_ENDS)
def test_the_relay_cuts_events_right_wherever_reads_split_the_line_ends(line_end, blank):
    sent = b"".join(_with_line_ends(EVENTS, line_end, blank))
    for cut in range(1, len(sent)):
        relay = PassthroughRelay(ROUTE)
        out = relay.feed(sent[:cut]) + relay.feed(sent[cut:])
        assert relay.ended and relay.failure is None, cut
        assert sent.startswith(out) and len(sent) - len(out) <= len(blank) - 1, cut  # at most a CRLF's LF left
    relay = PassthroughRelay(ROUTE)
    out = b"".join(relay.feed(sent[at : at + 1]) for at in range(len(sent)))
    assert out == sent[: len(out)] and relay.ended and relay.failure is None
    usage, stop_reason = relay.usage()
    assert (usage.input_tokens, usage.output_tokens, stop_reason) == (12, 7, "tool_use")


def _spec_parse(data: bytes) -> tuple[list[tuple[bytes | None, bytes]], list[int]]:
    """SSE read byte by byte, as the spec words it: (frames, where each blank line ends)."""
    frames, blank_ends, line, name, data_lines = [], [], bytearray(), None, []
    at = 0
    while at < len(data):
        byte = data[at : at + 1]
        if byte not in (b"\r", b"\n"):
            line += byte
            at += 1
            continue
        at += 2 if data[at : at + 2] == b"\r\n" else 1
        text, line = bytes(line), bytearray()
        if not text:
            blank_ends.append(at)
            if data_lines:
                frames.append((name, b"\n".join(data_lines)))
            name, data_lines = None, []
        elif text.startswith(b"data:"):
            data_lines.append(text[6:] if text[5:6] == b" " else text[5:])
        elif text.startswith(b"event:"):
            name = text[6:].strip()
    return frames, blank_ends


_SSE_PARTS = st.sampled_from([b"\r", b"\n", b"\r\n", b"data: x", b"data:y", b"event: e", b": c", b"id: 1", b"zz"])


@st.composite
def _split_stream(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    """SSE bytes with every kind of line end, and where reads split them: [0, cuts..., len]."""
    data = b"".join(draw(st.lists(_SSE_PARTS, max_size=30)))
    cuts = draw(st.sets(st.integers(1, max(len(data) - 1, 1)), max_size=8)) if len(data) > 1 else set()
    return data, [0, *sorted(cuts), len(data)]


def _reported_at(data: bytes, start: int, stop: int, blank_ends: list[int]) -> list[int]:
    """The blank-line ends a read of data[start:stop] reports: a CR ending a read ends its line at once (the LF
    that may follow in the next read is that CRLF's end, not a line end of its own)."""
    ends = []
    for end in blank_ends:
        if end == stop + 1 and data[end - 2 : end] == b"\r\n":
            ends.append(stop)  # a CRLF cut after its CR: whole at the CR
        elif start < end <= stop and not (end == start + 1 and start and data[start - 1 : end] == b"\r\n"):
            ends.append(end)
    return ends


@given(_split_stream())
def test_the_decoder_reads_what_the_spec_reads_however_reads_split_the_bytes(stream):
    data, bounds = stream
    frames, reported, expected = [], [], []
    expected_frames, blank_ends = _spec_parse(data)
    decoder = SSEDecoder()
    for start, stop in zip(bounds, bounds[1:]):
        frames += decoder.feed(data[start:stop])
        if decoder.event_end:
            reported.append(start + decoder.event_end)
        ends = _reported_at(data, start, stop, blank_ends)
        if ends:
            expected.append(max(ends))
    assert frames == expected_frames
    assert reported == expected


# ---- events known by their data's type ----------------------------------------------------------------------


def test_an_answer_without_event_lines_ends_at_its_message_stop_with_no_error_added(gateway, upstream):
    sent = [_without_event_lines(event) for event in EVENTS]
    upstream.reset(RawSSE(sent))
    resp = post_messages(gateway, _body())
    assert resp.status == 200
    assert resp.body == b"".join(sent), resp.body[-300:]  # relayed as sent, no error event after message_stop
    record = wait_record(gateway.audit_store, resp.headers["request-id"])
    assert record["error_type"] is None, record
    assert (record["input_tokens"], record["output_tokens"]) == (12, 7), record


@pytest.mark.parametrize("first", [True, False], ids=["before_the_first_byte", "after_the_first_byte"])
def test_an_error_without_an_event_line_is_redacted(gateway, upstream, first):
    if first:
        # an overload, whose text is relayed (an authentication_error's never is before the first byte: a 502)
        upstream.reset(RawSSE([_error_event(named=False, error_type="overloaded_error")]))
        resp = post_messages(gateway, _body())
        assert resp.status == 529, resp.text[:300]
        message = resp.json()["error"]["message"]
    else:
        upstream.reset(RawSSE([*OPENING, _error_event(named=False)], hold_after=len(OPENING)))
        resp = post_stream_then(gateway, _body(), upstream.release)
        assert resp.status == 200 and resp.body.startswith(b"".join(OPENING))
        events = sse_events(resp.body)
        assert check_sse_grammar(events) == "error"
        message = events[-1][1]["error"]["message"]
    assert "Incorrect API key provided" in message and REDACTED in message, message
    assert_no_secrets(resp.text, "the client's answer", [UPSTREAM_KEY])
    record = wait_record(gateway.audit_store, resp.headers["request-id"])
    assert record["error_type"] == ("overloaded_error" if first else "stream_error"), record
    assert_no_secrets(json.dumps(record), "the audit record", [UPSTREAM_KEY])
    assert_no_secrets(gateway.stderr_text(), "the gateway's log", [UPSTREAM_KEY])


# ---- what an unfinished event may hold ----------------------------------------------------------------------


@pytest.mark.parametrize("filler", FILLERS.values(), ids=FILLERS)
def test_endless_lines_without_data_before_the_first_byte_are_a_529_naming_the_limit(gateway, upstream, filler):
    upstream.reset(RawSSE(_filler(filler, MAX_EVENT_BYTES + (1 << 20))))
    resp = post_messages(gateway, _body())
    assert resp.status == 529 and resp.json()["error"]["type"] == "overloaded_error", resp.text[:300]
    assert EVENT_LIMIT in resp.json()["error"]["message"]
    assert wait_record(gateway.audit_store, resp.headers["request-id"])["status"] == 529
    _still_serving(gateway, upstream)


@pytest.mark.parametrize("filler", FILLERS.values(), ids=FILLERS)
def test_endless_lines_without_data_after_the_first_byte_end_with_an_error_event(gateway, upstream, filler):
    upstream.reset(RawSSE([*OPENING, *_filler(filler, MAX_EVENT_BYTES + (1 << 20))], hold_after=len(OPENING)))
    resp = post_stream_then(gateway, _body(), upstream.release)
    assert resp.status == 200 and resp.body.startswith(b"".join(OPENING))
    events = sse_events(resp.body)  # no filler line glued to the error event: the held lines are dropped
    assert check_sse_grammar(events) == "error"
    assert EVENT_LIMIT in events[-1][1]["error"]["message"]
    record = wait_record(gateway.audit_store, resp.headers["request-id"])
    assert record["status"] == 200 and record["error_type"] == "stream_error", record
    _still_serving(gateway, upstream)


@pytest.mark.parametrize("filler", FILLERS.values(), ids=FILLERS)
def test_the_relay_holds_an_unfinished_event_up_to_the_limit_then_refuses_it(filler):
    relay = PassthroughRelay(ROUTE)
    assert relay.feed(b"".join(OPENING)) == b"".join(OPENING)
    read = filler * (8192 // len(filler))
    held = 0
    with pytest.raises(EventTooLarge):
        while held <= 2 * MAX_EVENT_BYTES:  # bounded, so a relay that never refuses fails instead of hanging
            held += len(read)
            assert relay.feed(read) == b""
    assert MAX_EVENT_BYTES < held <= MAX_EVENT_BYTES + len(read)


READS = {"comments": b": keepalive\n" * 682, "one_endless_line": b"a" * 8192}


@pytest.mark.parametrize("read", READS.values(), ids=READS)
def test_a_read_costs_the_relay_its_own_bytes_not_what_it_holds(read):
    # Memory allocated while a read is relayed, counted by tracemalloc: copying what the relay holds (2.4 MB by
    # the end) on each read, as `held + data` did, shows up here as a peak the size of the hold.
    relay = PassthroughRelay(ROUTE)
    relay.feed(b"".join(OPENING))
    reads = [bytes(bytearray(read)) for _ in range(300)]  # each its own object, as socket reads are
    peaks = []
    tracemalloc.start()
    try:
        for data in reads:
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            assert relay.feed(data) == b""
            peaks.append(tracemalloc.get_traced_memory()[1] - before)
    finally:
        tracemalloc.stop()
    assert max(peaks) < 16 * len(read), f"a read of {len(read)} bytes allocated up to {max(peaks)}"


def _named_error(message: str) -> bytes:
    return ("event: error\ndata: " + json.dumps({"type": "error", "error": {"type": "api_error", "message": message}})
            + "\n\n").encode()


@pytest.mark.parametrize("chunk", [
    _named_error("first: " + UPSTREAM_KEY) + _named_error("second, clean"),
    _named_error("first, clean") + _named_error("second: " + UPSTREAM_KEY),
    b"event: error\ndata: not json " + UPSTREAM_KEY.encode() + b"\n\n",
], ids=["secret-in-the-first", "secret-in-the-second", "not-json"])
def test_an_error_read_with_more_after_it_or_not_json_is_redacted_and_ends_the_stream(chunk: bytes) -> None:
    relay = PassthroughRelay(ROUTE, UPSTREAM_KEY)
    out = relay.feed(render_message_events(MessageReply(text="partial"))[0] + chunk)
    assert UPSTREAM_KEY.encode() not in out and relay.ended and relay.failure is not None
    assert out.count(b"event: error") == 1 and out.endswith(b"\n\n")


def test_an_empty_read_between_a_cr_and_its_lf_changes_nothing() -> None:
    decoder = SSEDecoder()
    got = [(decoder.feed(chunk), decoder.event_end) for chunk in (b"data: a\r", b"", b"\ndata: b\n\n")]
    assert got == [([], 0), ([], 0), ([(None, b"a\nb")], 10)]


def test_a_rebuilt_error_keeps_the_blank_line_its_read_starts_with() -> None:
    relay = PassthroughRelay(ROUTE, UPSTREAM_KEY)
    assert relay.feed(b'data: {"type":"ping"}\r\r') == b'data: {"type":"ping"}\r\r'
    out = relay.feed(b"\n" + _named_error(UPSTREAM_KEY))  # the \n ends the CRLF the last read's CR began
    assert out.startswith(b"\nevent: error") and UPSTREAM_KEY.encode() not in out
