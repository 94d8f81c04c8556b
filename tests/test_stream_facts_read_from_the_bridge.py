"""What the correctness loop reads of a translated stream — its tool calls, whether it said anything, its last block —
is taken from what the stream's bridge noted as it opened each block (translate/stream_bridge.py `Made`) and the
inputs it kept, not from each event (loop/answer.py StreamFacts). It must be what the client got: for any Chat chunk
sequence and any Responses event sequence, ended in any way, through the real relays, it equals what the loop reads
from the client's bytes themselves (`from_stream`). When the bridge cuts the answer at the client's max_tokens, the
relay shows the facts each batch instead, and the same holds."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from dragoman.exchange.dialects.chat import chat_relay
from dragoman.exchange.dialects.responses import responses_relay
from dragoman.loop.answer import ParsedAnswer, StreamFacts, from_stream
from dragoman.translate.request_context import RequestContext
from tests.property_strategies import SETTINGS
from tests.test_responses_stream_properties import KEY, _ctx, _scenario
from tests.test_stream_properties import _soup_chunk

BUDGETS = st.sampled_from([0, 0, 3, 12])  # 0: no cut; else the client's max_tokens, the upstream given 1024


def _relayed(ctx: RequestContext, relay: Any, frames: list[bytes], end: str) -> tuple[ParsedAnswer, bytes]:
    """The facts as the loop reads them once the stream is over, and the bytes the client got."""
    facts = ctx.stream_facts
    out = [relay.feed(frame) for frame in frames]
    out.append(relay.eof() if end == "EOF" else b"")
    return facts.answer(), b"".join(out)


def _loop_on(ctx: RequestContext, budget: int) -> RequestContext:
    ctx.kept_arguments = {}
    ctx.stream_facts = StreamFacts(ctx.kept_arguments)
    if budget:
        ctx.max_tokens, ctx.visible_max_tokens = 1024, budget
    return ctx


def _calls(answer: ParsedAnswer) -> list[tuple]:
    # A call whose block never stopped is not judged (loop/checks.py): only its id, name and that it is open count.
    return [(c.id, c.name, c.closed) + ((c.input, c.raw) if c.closed else ()) for c in answer.tool_calls]


def _assert_same(made: ParsedAnswer, client_bytes: bytes) -> None:
    read = from_stream([client_bytes])
    assert _calls(made) == _calls(read)
    assert made.has_text == read.has_text
    # The checks ask of the last block only whether it is a tool_use (an answer cut in a call); the bytes reader's
    # fast path for an answer without tool calls does not tell text from thinking.
    assert (made.last_block == "tool_use") == (read.last_block == "tool_use")


@SETTINGS
@given(st.lists(_soup_chunk, max_size=25), st.sampled_from(["[DONE]", "EOF"]), BUDGETS)
def test_a_chat_streams_facts_are_what_its_client_got(chunks: list[dict[str, Any]], end: str, budget: int) -> None:
    ctx = _loop_on(RequestContext(message_id="msg_facts", requested_model="m", tool_names=_ctx().tool_names), budget)
    relay = chat_relay(ctx, "route")
    frames = [b"data: " + json.dumps(chunk).encode() + b"\n\n" for chunk in chunks]
    frames += [b"data: [DONE]\n\n"] if end == "[DONE]" else []
    _assert_same(*_relayed(ctx, relay, frames, end))


@SETTINGS
@given(_scenario(), BUDGETS)
def test_a_responses_streams_facts_are_what_its_client_got(scenario: tuple[list[dict], dict, str], budget: int) -> None:
    events, _, _ = scenario
    ctx = _loop_on(_ctx(), budget)
    relay = responses_relay(ctx, KEY, "route")
    frames = [f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode() for event in events]
    _assert_same(*_relayed(ctx, relay, frames, "EOF"))


def test_only_a_cutting_bridge_has_its_batches_shown() -> None:
    plain, cutting = _loop_on(_ctx(), 0), _loop_on(_ctx(), 5)
    assert chat_relay(plain, "route")._facts is None
    assert chat_relay(cutting, "route")._facts is cutting.stream_facts
