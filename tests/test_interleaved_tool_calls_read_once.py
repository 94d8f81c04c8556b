"""A server that interleaves parallel tool calls' fragments makes the Chat bridge ask, after every fragment of a
held call, whether the open call's arguments are whole yet. Each question used to decode the open call's whole text:
a stream's cost grew with the square of its arguments (160 KB in 4-character fragments held the event loop 4.6 s).
Now a long text is decoded at most twice and otherwise read only where it grew; a short one is decoded while it is
short; the calls reach the client as before. `ObjectScan`, which reads only what is new, never says an object is
unfinished when a decode would find it whole, wherever the text is cut."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dragoman.protocols import anthropic as A
from dragoman.protocols import openai_chat as C
from dragoman.translate.chat import stream as chat_stream
from dragoman.translate.chat.stream import _SCAN_FROM, ChatStreamBridge
from dragoman.translate.request_context import RequestContext
from dragoman.translate.tool_arguments import ObjectScan, is_complete_object
from dragoman.translate.tool_names import ToolNameMap
from tests.anthropic_events import check_grammar, reassemble, wire_events


def _chunk(calls: list[dict[str, Any]]) -> C.ChatChunk:
    return msgspec.convert({"choices": [{"delta": {"tool_calls": calls}, "finish_reason": None}]}, C.ChatChunk)


def _interleaved(texts: list[str], size: int) -> list[C.ChatChunk]:
    """Each call named in its own chunk, then one fragment of each call in turn until all are sent."""
    chunks = [_chunk([{"index": i, "id": f"call_{i}_Qm7tRz4kLp2Vw8Nf5", "type": "function",
                       "function": {"name": "Write", "arguments": ""}}]) for i in range(len(texts))]
    pieces = [[text[at : at + size] for at in range(0, len(text), size)] for text in texts]
    for turn in range(max(len(p) for p in pieces)):
        for i, calls in enumerate(pieces):
            if turn < len(calls):
                chunks.append(_chunk([{"index": i, "function": {"arguments": calls[turn]}}]))
    return chunks


def _run(chunks: list[C.ChatChunk]) -> dict[str, Any]:
    bridge = ChatStreamBridge(RequestContext(message_id="msg_i", requested_model="claude",
                                             tool_names=ToolNameMap(64)))
    events = []
    for chunk in chunks:
        events += bridge.on_chunk(chunk)
    events += bridge.on_done()
    wire = wire_events(events)
    assert check_grammar(wire) == "message_stop"
    return reassemble(wire)


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The length of every text the bridge decodes to tell whether a call's arguments are whole."""
    lengths: list[int] = []

    def counting(text: str) -> bool:
        lengths.append(len(text))
        return is_complete_object(text)

    monkeypatch.setattr(chat_stream, "is_complete_object", counting)
    return lengths


def test_interleaved_long_arguments_are_decoded_about_once(decoded: list[int]) -> None:
    inputs = [{"path": f"src/{name}.py", "content": name * 20_000} for name in ("a", "b", "c")]
    texts = [json.dumps(given) for given in inputs]
    message = _run(_interleaved(texts, 4))

    assert [block["input"] for block in message["content"]] == inputs
    assert [block["id"] for block in message["content"]] == [f"call_{i}_Qm7tRz4kLp2Vw8Nf5" for i in range(3)]
    # Before: one decode of the open call's whole text per fragment of the others, ~10^9 characters in all. Now a
    # long text is decoded at most twice (the first question, and once its brackets balance); a short one may be
    # decoded at each question, each shorter than _SCAN_FROM, so a few million characters in all.
    long = [length for length in decoded if length >= _SCAN_FROM]
    assert len(long) <= 2 * len(texts) and sum(long) <= 2 * sum(len(text) for text in texts)
    short = [length for length in decoded if length < _SCAN_FROM]
    assert sum(short) <= len(texts) * 2 * _SCAN_FROM * (_SCAN_FROM // 4)


def test_a_call_sent_whole_before_the_next_is_decoded_once(decoded: list[int]) -> None:
    texts = [json.dumps({"path": f"f{i}.py"}) for i in range(6)]
    chunks = [_chunk([{"index": i, "id": f"call_{i}_Qm7tRz4kLp2Vw8Nf5", "type": "function",
                       "function": {"name": "Read", "arguments": text}}]) for i, text in enumerate(texts)]
    message = _run(chunks)
    assert [block["input"] for block in message["content"]] == [json.loads(text) for text in texts]
    assert len(decoded) == len(texts)  # each call asked once: when the next one arrives, the last at the end


_KEYS = st.text(st.sampled_from('ab{}[]"\\ :,'), max_size=4)
_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), st.text(st.sampled_from('x{}[]"\\/ \n\té'), max_size=6))
_JSON = st.recursive(_LEAVES, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(_KEYS, inner, max_size=3)), max_leaves=8)
_TEXTS = st.one_of(
    st.dictionaries(_KEYS, _JSON, max_size=4).map(json.dumps),  # whole objects
    st.builds(lambda value, cut: value[:cut], st.dictionaries(_KEYS, _JSON, max_size=4).map(json.dumps),
              st.integers(0, 60)),  # cut short
    st.builds(lambda value, junk: value + junk, st.dictionaries(_KEYS, _JSON, max_size=2).map(json.dumps),
              st.sampled_from([" ", "\n", "}", "x", "{}", ' "a"'])),  # something after
    st.text(st.sampled_from('{}[]"\\ab :,\n'), max_size=30),  # anything
)


@settings(max_examples=400, deadline=None)
@given(text=_TEXTS, cuts=st.lists(st.integers(0, 80), max_size=8))
def test_the_scan_never_calls_a_whole_object_unfinished(text: str, cuts: list[int]) -> None:
    scan = ObjectScan()
    at = 0
    for cut in sorted({min(cut, len(text)) for cut in cuts} | {len(text)}):
        scan.feed(text[at:cut])  # pieces cut anywhere: inside strings, between a backslash and what it escapes
        at = cut
        if is_complete_object(text[:cut]):
            assert scan.closed, text[:cut]
        elif not text[:cut].rstrip().endswith(("}", "]")):
            assert not scan.closed, text[:cut]  # brackets balance only at a closing one


@pytest.mark.parametrize("text", [
    '{"a": "\\""}', '{"a": "\\\\"}', '{"\\"}": "{\\"["}', '{"a": ["}", {"b": "]"}]}', ' {"a": "\\u007d"} \n',
])
def test_an_object_fed_one_character_at_a_time_closes_exactly_at_its_end(text: str) -> None:
    scan = ObjectScan()
    for at, char in enumerate(text):
        scan.feed(char)  # every cut falls somewhere, between a backslash and what it escapes too
        assert scan.closed == is_complete_object(text[: at + 1]), text[: at + 1]


_WHITESPACE = st.text(st.sampled_from(" \n\t\r\xa0\x0c\u2028"), max_size=2)  # JSON's four, and three it refuses


@settings(max_examples=300, deadline=None)
@given(value=st.dictionaries(_KEYS, _JSON, max_size=3), before=_WHITESPACE,
       after=st.text(st.sampled_from(" \n\t\r\xa0\x0c\u2028x}{"), max_size=4),
       cuts=st.lists(st.integers(1, 60), max_size=10), asks=st.lists(st.booleans(), min_size=12, max_size=12),
       scan_from=st.sampled_from([0, 3, 10]))
@example(value={"a": 1}, before="", after="\xa0", cuts=[4, 8], asks=[True] * 12, scan_from=0)  # whole, then not
def test_a_call_is_whole_exactly_when_its_arguments_decode(value: dict, before: str, after: str, cuts: list[int],
                                                           asks: list[bool], scan_from: int) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(chat_stream, "_SCAN_FROM", scan_from)  # the scan's path even for short texts
        _ask_along(before + json.dumps(value) + after, cuts, asks)


def _ask_along(text: str, cuts: list[int], asks: list[bool]) -> None:
    call = chat_stream._ToolCall()
    at = 0
    for k, cut in enumerate(sorted({min(cut, len(text)) for cut in cuts} | {len(text)})):
        if cut <= at:
            continue
        call.add(text[at:cut])
        at = cut
        if asks[k % len(asks)]:  # asked after some fragments, not others: what it read must still add up
            assert call.whole() == is_complete_object(call.text()), call.text()
    assert call.whole() == is_complete_object(call.text()), call.text()


def test_a_held_call_opens_as_soon_as_the_long_open_one_is_whole() -> None:
    short, long = (json.dumps({"path": "a.py", "content": "a" * 3_000}),
                   json.dumps({"path": "b.py", "content": "b" * 9_000}))
    chunks = _interleaved([short, long], 4)
    bridge = ChatStreamBridge(RequestContext(message_id="msg_h", requested_model="claude",
                                             tool_names=ToolNameMap(64)))
    opened_at, live = {}, 0
    for number, chunk in enumerate(chunks):
        for event in bridge.on_chunk(chunk):
            if isinstance(event, A.ContentBlockStart):
                opened_at[event.index] = number
            elif isinstance(event, A.ContentBlockDelta) and event.index == 1:
                live += 1
    last_of_first = 2 + 2 * (len(short) // 4)  # two naming chunks, then the calls' fragments in turn
    assert opened_at[0] < 2 and last_of_first <= opened_at[1] <= last_of_first + 2
    assert live > (len(long) - len(short)) // 4  # its later fragments streamed as they came, not held to the end
