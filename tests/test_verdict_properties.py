"""Properties of the verdict checks over generated answers: the JSON and the streamed form of one answer get the
same verdict; how the stream's bytes were cut into chunks does not matter; a call's arguments fail the schema
check exactly when a reference validator (the `jsonschema` package) says they break the tool's schema; a tool
name not offered is always unknown_tool."""

from __future__ import annotations

import jsonschema
import msgspec
from hypothesis import given, settings, strategies as st

from dragoman.loop import verdict as V
from dragoman.loop.answer import StreamFacts
from dragoman.loop.checks import SchemaCache, check
from dragoman.protocols import anthropic as A
from tests.upstreams.anthropic_messages import MessageReply
from tests.verdict_helpers import READ_SCHEMA, json_evidence, request, stream_evidence

CACHE = SchemaCache(16)
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                           max_leaves=6)
arguments = st.dictionaries(st.sampled_from(["file_path", "limit", "mode", "x"]), json_values, max_size=4)
names = st.sampled_from(["Read", "Bash", "Write", "mcp__x__y"])
calls = st.lists(st.tuples(names, arguments), max_size=3)
replies = st.builds(
    lambda text, tool_calls, stop, thinking: MessageReply(
        text=text, thinking=thinking, stop_reason=stop,
        tool_uses=[(f"toolu_{i}", name, args) for i, (name, args) in enumerate(tool_calls)]),
    st.none() | st.text(max_size=20), calls, st.none() | st.sampled_from(["end_turn", "max_tokens", "refusal"]),
    st.none() | st.text(min_size=1, max_size=5),
)


def _summary(found):
    return found.verdict, found.kinds, [(c.id, c.name, c.input) for c in found.tool_calls]


@settings(max_examples=150, deadline=None)
@given(replies)
def test_the_json_and_the_streamed_form_of_an_answer_get_the_same_verdict(reply: MessageReply) -> None:
    assert _summary(check(json_evidence(reply), [], CACHE)) == _summary(check(stream_evidence(reply), [], CACHE))


@settings(max_examples=100, deadline=None)
@given(replies, st.lists(st.integers(min_value=1, max_value=97), min_size=1, max_size=8))
def test_how_the_stream_was_cut_into_chunks_does_not_change_the_verdict(reply: MessageReply, sizes: list[int]) -> None:
    whole = stream_evidence(reply)
    data = b"".join(whole.chunks)
    pieces, at, i = [], 0, 0
    while at < len(data):
        pieces.append(data[at : at + sizes[i % len(sizes)]])
        at += sizes[i % len(sizes)]
        i += 1
    cut = stream_evidence(reply)
    cut.chunks = pieces
    assert _summary(check(cut, [], CACHE)) == _summary(check(whole, [], CACHE))


@settings(max_examples=200, deadline=None)
@given(arguments)
def test_a_call_fails_the_schema_check_exactly_when_the_reference_validator_rejects_it(args: dict) -> None:
    found = check(json_evidence(MessageReply(text="ok", tool_uses=[("toolu_1", "Read", args)])), [], CACHE)
    valid = jsonschema.Draft202012Validator(READ_SCHEMA).is_valid(args)
    assert (V.SCHEMA_VIOLATION not in found.kinds) == valid
    assert found.verdict == (V.PASS if valid else V.FAIL)


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=1, max_size=30).filter(lambda n: n not in ("Read", "Bash")), arguments)
def test_a_tool_name_not_offered_is_always_unknown_tool(name: str, args: dict) -> None:
    found = check(json_evidence(MessageReply(text=None, tool_uses=[("toolu_1", name, args)])), [], CACHE)
    assert found.kinds == [V.UNKNOWN_TOOL] and found.verdict == V.FAIL


@settings(max_examples=100, deadline=None)
@given(replies)
def test_a_call_that_passes_has_no_failure_kind_and_a_call_that_fails_says_why(reply: MessageReply) -> None:
    found = check(json_evidence(reply, request()), [], CACHE)
    failures = [k for k in found.kinds if k != V.REPAIRED_JSON]
    assert (found.verdict == V.FAIL) == bool(failures)
    assert (found.detail is not None) == bool(failures)
    assert set(found.kinds) <= set(V.ANSWER_KINDS) | {V.REPAIRED_JSON}


_decode_events = msgspec.json.Decoder(A.StreamEvent).decode
_decode_response = msgspec.json.Decoder(A.MessagesResponse).decode


@settings(max_examples=150, deadline=None)
@given(replies)
def test_the_blocks_and_events_the_gateway_encoded_read_as_their_bytes_do(reply: MessageReply) -> None:
    # A translated answer is checked from the structs the gateway encoded for the client, not re-parsed from the
    # bytes: the two readings must agree, for the JSON answer and for every event of the stream.
    as_json = json_evidence(reply)
    blocks = json_evidence(reply)
    blocks.content = _decode_response(blocks.body).content
    blocks.body = None
    assert _summary(check(blocks, [], CACHE)) == _summary(check(as_json, [], CACHE))
    as_bytes = stream_evidence(reply)
    events = stream_evidence(reply)
    events.facts = StreamFacts()  # shown the events a batch at a time, as the relay shows them as it encodes
    for chunk in events.chunks:
        events.facts.see([_decode_events(line[5:]) for line in chunk.split(b"\n") if line.startswith(b"data:")])
    events.chunks = None
    assert _summary(check(events, [], CACHE)) == _summary(check(as_bytes, [], CACHE))
