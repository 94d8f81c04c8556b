"""Property tests (design §7): any OpenAI Chat chunk sequence yields a well-formed Anthropic event sequence whose
reassembly equals the non-streamed translation. (Requests: tests/test_request_tool_pairing_properties.py.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import msgspec
import hypothesis
from hypothesis import given
from hypothesis import strategies as st

from dragoman.protocols import anthropic as A
from dragoman.protocols import openai_chat as C
from dragoman.translate.chat.stream import ChatStreamBridge
from dragoman.translate.chat.response import translate_response
from dragoman.translate.request_context import RequestContext
from dragoman.translate.tool_names import ToolNameMap, shorten
from tests.anthropic_events import check_grammar, reassemble, wire_events
from tests.property_strategies import CLIENT_NAMES, SETTINGS, texts, tool_arguments

STOPS = ["END", "###"]

# ---- generated upstream answers ----------------------------------------------------------------------------


@dataclass
class Call:
    index: int
    id: str
    name: str  # the upstream (possibly shortened) name
    arguments: dict[str, Any]
    mode: str  # fragments | cumulative | object | wrapped
    id_timing: str  # first | late | missing
    pieces: list[str] = field(default_factory=list)

    def wire_arguments(self) -> Any:
        """The arguments the equivalent non-streamed answer carries."""
        if self.mode == "object":
            return self.arguments
        text = json.dumps(self.arguments, ensure_ascii=False)
        return json.dumps(text) if self.mode == "wrapped" else text


def _split(draw: st.DrawFn, text: str, max_pieces: int = 6) -> list[str]:
    if not text:
        return []
    cuts = sorted(draw(st.sets(st.integers(1, max(len(text) - 1, 1)), max_size=max_pieces)))
    bounds = [0, *[c for c in cuts if c < len(text)], len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


@st.composite
def _calls(draw: st.DrawFn, missing_index: bool) -> list[Call]:
    count = draw(st.integers(0, 4))
    calls = []
    for index in range(count):
        mode = draw(st.sampled_from(["fragments", "fragments", "cumulative", "object", "wrapped"]))
        id_timing = "first" if missing_index else draw(st.sampled_from(["first", "first", "late", "missing"]))
        call = Call(index, f"call_{index}_{draw(st.integers(0, 99))}", shorten(draw(st.sampled_from(CLIENT_NAMES)), 64), draw(tool_arguments), mode, id_timing)
        if mode == "object":
            call.pieces = []
        else:
            text = call.wire_arguments()
            call.pieces = _split(draw, text)
            # A second fragment that starts with the whole first one reads as a snapshot (servers that resend
            # the arguments so far, golden stream/cumulative_arguments). Real fragment streams never do that
            # (after `{"` comes a key, not `{"` again); split pieces that would are not a stream anyone sends.
            hypothesis.assume(mode != "fragments" or len(call.pieces) < 2
                              or not call.pieces[1].startswith(call.pieces[0]))
            if mode == "cumulative":
                call.pieces = ["".join(call.pieces[: i + 1]) for i in range(len(call.pieces))]
        calls.append(call)
    return calls


def _call_deltas(call: Call, missing_index: bool) -> list[dict[str, Any]]:
    def delta(**fields: Any) -> dict[str, Any]:
        out: dict[str, Any] = {} if missing_index else {"index": call.index}
        function = {k: v for k, v in fields.items() if k in ("name", "arguments")}
        if "id" in fields:
            out.update(id=fields["id"], type="function")
        if function:
            out["function"] = function
        return out

    first: dict[str, Any] = {"name": call.name}
    if call.id_timing == "first":
        first["id"] = call.id
    deltas = [delta(**first, arguments="")]
    if call.mode == "object":
        deltas.append(delta(arguments=call.arguments))
    for n, piece in enumerate(call.pieces):
        deltas.append(delta(arguments=piece))
    if call.id_timing == "late":
        deltas[1 if len(deltas) > 1 else 0]["id"] = call.id
        deltas[1 if len(deltas) > 1 else 0]["type"] = "function"
    return deltas


@dataclass
class Answer:
    reasoning: list[str]
    text: list[str]
    refusal: str | None
    calls: list[Call]
    finish: str | None
    usage: dict[str, Any] | None
    chunks: list[dict[str, Any]]
    end: str  # [DONE] | EOF | error | error_chunk
    think_tags: bool = False
    stop_sequences: tuple[str, ...] = ()
    visible_max_tokens: int = 0  # the client's max_tokens when the upstream was given 1024 (a reasoning floor)

    def response(self) -> C.ChatResponse:
        """The non-streamed completion with the same content."""
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.text) or None}
        if self.reasoning:
            message["reasoning_content"] = "".join(self.reasoning)
        if self.refusal:
            message["refusal"] = self.refusal
        if self.calls:
            message["tool_calls"] = [
                {**({"id": c.id} if c.id_timing != "missing" else {}), "type": "function", "function": {"name": c.name, "arguments": c.wire_arguments()}}
                for c in self.calls
            ]
        body = {"choices": [{"index": 0, "message": message, "finish_reason": self.finish}], "usage": self.usage}
        return msgspec.convert(body, C.ChatResponse)


def _interleave(draw: st.DrawFn, streams: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Merge per-call delta lists, keeping each call's order and the calls' first deltas in index order."""
    out: list[dict[str, Any]] = []
    queues = [list(s) for s in streams]
    started = 0
    while any(queues):
        ready = [i for i, q in enumerate(queues) if q and (i < started or i == started)]
        i = draw(st.sampled_from(ready))
        if i == started:
            started += 1
        out.append(queues[i].pop(0))
    return out


@st.composite
def answers(draw: st.DrawFn, *, think_tags: bool = False) -> Answer:
    missing_index = draw(st.booleans()) and not think_tags
    # A server puts reasoning either in reasoning_content or in <think> tags, not both.
    reasoning = _split(draw, draw(texts)) if draw(st.booleans()) and not think_tags else []
    # OpenAI sends a refusal instead of content, never both.
    refusal = None if think_tags else draw(st.sampled_from([None, None, None, "I can't help with that."]))
    stop_sequences = tuple(draw(st.lists(st.sampled_from(STOPS), max_size=2, unique=True)))
    if think_tags:
        body = f"<think>{draw(texts)}</think>{draw(st.sampled_from(['', chr(10), chr(10) * 2]))}{draw(texts)}"
        text = _split(draw, draw(st.just(" ") | st.just("")) + body, max_pieces=10)
    elif refusal is None:
        content = draw(texts) + draw(st.sampled_from(["", *STOPS]))
        text = _split(draw, content)
    else:
        text = []
    calls = draw(_calls(missing_index))
    finish = draw(st.sampled_from(["stop", "length", "tool_calls", "content_filter", None]) if not calls else st.sampled_from(["tool_calls", "stop", "length", None]))
    usage = draw(st.none() | st.builds(
        lambda p, c, cached: {"prompt_tokens": p, "completion_tokens": c, "prompt_tokens_details": {"cached_tokens": min(cached, p)}},
        st.integers(0, 50000), st.integers(0, 5000), st.integers(0, 50000),
    ))

    deltas: list[dict[str, Any]] = [{"reasoning_content": r} for r in reasoning]
    deltas += [{"content": t} for t in text]
    if refusal:
        deltas += [{"refusal": refusal}]
    call_deltas = _interleave(draw, [_call_deltas(c, missing_index) for c in calls]) if not missing_index else [d for c in calls for d in _call_deltas(c, True)]
    chunks: list[dict[str, Any]] = [{"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    chunks += [{"choices": [{"index": 0, "delta": d}]} for d in deltas]
    # Several tool-call deltas per chunk (SHTUCodeProxy#1), or one per chunk.
    while call_deltas:
        take = draw(st.integers(1, 3))
        group, call_deltas = call_deltas[:take], call_deltas[take:]
        chunks.append({"choices": [{"index": 0, "delta": {"tool_calls": group}}]})
    if finish is not None:
        if draw(st.booleans()) and len(chunks) > 1:
            chunks[-1]["choices"][0]["finish_reason"] = finish
        else:
            chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    if usage is not None:
        if draw(st.booleans()):
            chunks.append({"choices": [], "usage": usage})
        else:
            chunks[-1]["usage"] = usage
    end = draw(st.sampled_from(["[DONE]", "[DONE]", "EOF", "error", "error_chunk"]))
    return Answer(reasoning, text, refusal, calls, finish, usage, chunks, end, think_tags, stop_sequences)


def _context(answer: Answer) -> RequestContext:
    ctx = RequestContext(
        message_id="msg_prop", requested_model="claude-sonnet-4-5", tool_names=ToolNameMap(64),
        stop_sequences=answer.stop_sequences, input_estimate=1234, think_tags=answer.think_tags,
    )
    for name in CLIENT_NAMES:
        ctx.tool_names.upstream(name)
    if answer.visible_max_tokens:
        ctx.max_tokens, ctx.visible_max_tokens = 1024, answer.visible_max_tokens
    return ctx


def _stream(answer: Answer) -> list[dict[str, Any]]:
    bridge = ChatStreamBridge(_context(answer))
    events = _bridged(answer, bridge)
    told = [ev for ev in events if ev["type"] == "message_delta"]
    if told:  # the audit record keeps what the client was told
        assert (bridge.stop_reason, msgspec.to_builtins(bridge.final_usage)) == (told[0]["delta"]["stop_reason"], told[0]["usage"])
    return events


def _bridged(answer: Answer, bridge: ChatStreamBridge) -> list[dict[str, Any]]:
    events: list[A.StreamEvent] = []
    for chunk in answer.chunks:
        events += bridge.on_chunk(msgspec.convert(chunk, C.ChatChunk))
    if answer.end == "[DONE]":
        events += bridge.on_done()
    elif answer.end == "EOF":
        events += bridge.on_eof()
    elif answer.end == "error":
        events += bridge.on_error("overloaded_error", "upstream timed out")
    else:
        events += bridge.on_chunk(C.ChatChunk(error={"message": "boom"}))
        events += bridge.on_eof()
    assert bridge.ended
    return wire_events(events)


def _check_equivalent(answer: Answer) -> dict[str, Any] | None:
    events = _stream(answer)
    end = check_grammar(events)
    clean = answer.end == "[DONE]" or (answer.end == "EOF" and answer.finish is not None)
    assert end == ("message_stop" if clean else "error"), (answer.end, answer.finish, end)
    if not clean:
        return None
    streamed = reassemble(events)
    expected = msgspec.to_builtins(translate_response(answer.response(), _context(answer)))
    assert streamed["content"] == expected["content"]
    assert streamed["stop_reason"] == expected["stop_reason"]
    assert streamed["stop_sequence"] == expected["stop_sequence"]
    assert streamed["id"] == expected["id"] and streamed["model"] == expected["model"]
    if answer.usage is not None:
        assert streamed["usage"] == expected["usage"]
    else:  # no usage from the upstream: the request's estimate, and an output estimate rather than 0
        assert streamed["usage"]["input_tokens"] == expected["usage"]["input_tokens"] == 1234
    return streamed


@SETTINGS
@given(answers())
def test_stream_is_well_formed_and_reassembles_to_the_json_translation(answer: Answer) -> None:
    _check_equivalent(answer)


@SETTINGS
@given(answers(think_tags=True))
def test_think_tags_stream_reassembles_to_the_json_translation(answer: Answer) -> None:
    _check_equivalent(answer)


@SETTINGS
@given(answers(), st.integers(1, 12))
def test_stream_cut_at_the_client_max_tokens_reassembles_to_the_json_translation(answer: Answer, budget: int) -> None:
    """A raised budget: the visible answer (text and whole tool calls) stays within the client's max_tokens,
    streamed exactly as the JSON answer is cut; usage stays the upstream's."""
    answer.visible_max_tokens = budget
    streamed = _check_equivalent(answer)
    if streamed is None:
        return
    visible = sum(len(b["text"]) for b in streamed["content"] if b["type"] == "text")
    visible += sum(len(json.dumps(b["input"], ensure_ascii=False, separators=(",", ":"))) for b in streamed["content"] if b["type"] == "tool_use")
    assert visible <= budget * 4
    uncut = msgspec.to_builtins(translate_response(answer.response(), _context(Answer(**{**answer.__dict__, "visible_max_tokens": 0}))))
    if streamed["content"] != uncut["content"]:
        assert streamed["stop_reason"] == "max_tokens" and streamed["stop_sequence"] is None
    else:
        assert streamed["stop_reason"] == uncut["stop_reason"]
    assert streamed["usage"] == uncut["usage"] or answer.usage is None


# ---- arbitrary chunk soup: only the grammar holds ----------------------------------------------------------

_soup_delta = st.one_of(
    st.builds(lambda t: {"content": t}, texts),
    st.builds(lambda t: {"reasoning_content": t}, texts),
    st.builds(lambda t: {"reasoning": t}, texts),
    st.builds(lambda t: {"refusal": t}, texts),
    st.builds(
        lambda calls: {"tool_calls": calls},
        st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "index": st.integers(0, 3),
                    "id": st.sampled_from(["call_a", "call_b", "call_c"]),
                    "function": st.fixed_dictionaries({}, optional={"name": st.sampled_from(CLIENT_NAMES), "arguments": st.one_of(st.sampled_from(['{"a": 1}', '{"a"', ': "x"}', "}", '"{\\"a\\": 1}"', ""]), tool_arguments)}),
                },
            ),
            min_size=1,
            max_size=3,
        ),
    ),
)
_soup_chunk = st.one_of(
    st.builds(lambda d, f: {"choices": [{"index": 0, "delta": d, "finish_reason": f}]}, _soup_delta, st.sampled_from([None, None, None, "stop", "tool_calls", "length"])),
    st.just({"choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 3}}),
    st.just({"choices": [{"index": 1, "delta": {"content": "second choice"}}]}),
)


@SETTINGS
@given(st.lists(_soup_chunk, max_size=25), st.sampled_from(["[DONE]", "EOF", "error"]), st.booleans())
def test_any_chunk_sequence_yields_a_valid_event_sequence(chunks: list[dict[str, Any]], end: str, think_tags: bool) -> None:
    ctx = RequestContext(message_id="msg_soup", requested_model="m", tool_names=ToolNameMap(64), think_tags=think_tags)
    bridge = ChatStreamBridge(ctx)
    events: list[A.StreamEvent] = []
    for chunk in chunks:
        events += bridge.on_chunk(msgspec.convert(chunk, C.ChatChunk))
    events += bridge.on_done() if end == "[DONE]" else bridge.on_eof() if end == "EOF" else bridge.on_error("api_error", "x")
    finished = any(c["choices"] and c["choices"][0].get("finish_reason") for c in chunks if c["choices"] and c["choices"][0]["index"] == 0)
    wire = wire_events(events)
    result = check_grammar(wire)
    if end == "error" or (end == "EOF" and not finished):
        assert result == "error"
    else:
        assert result == "message_stop"
    # Garbage argument fragments stream live and stay garbage (the JSON path reports them): only the
    # structure is promised for arbitrary input; tests/test_parallel_tool_calls.py pins the content.
