"""Usage with cached prompt tokens, one rule on every path (design §3; translate/usage.py): Anthropic's
`input_tokens` excludes the cached tokens, which are reported as `cache_read_input_tokens`; output tokens are
the upstream's count. Chat and Responses, JSON answers and streams, give the client the same numbers, and never
more cached tokens than the prompt they are part of."""

from __future__ import annotations

import msgspec
import pytest

from dragoman.protocols import anthropic as A
from dragoman.protocols import openai_chat as C
from dragoman.protocols import openai_responses as R
from dragoman.translate.chat.response import translate_response as chat_response
from dragoman.translate.chat.stream import ChatStreamBridge
from dragoman.translate.request_context import RequestContext
from dragoman.translate.responses.response import translate_response as responses_response
from dragoman.translate.responses.stream import ResponsesStreamBridge
from dragoman.translate.tool_names import ToolNameMap
from dragoman.translate.usage import NOTE_CACHED_CAPPED

KEY = b"usage-key"
EXPECTED = {"input_tokens": 300, "output_tokens": 7, "cache_read_input_tokens": 1200}
CHAT_USAGE = {"prompt_tokens": 1500, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 1200}}
RESPONSES_USAGE = {"input_tokens": 1500, "output_tokens": 7, "input_tokens_details": {"cached_tokens": 1200}}
RESPONSE = {"id": "resp_1", "status": "completed", "model": "gpt-5", "usage": RESPONSES_USAGE,
            "output": [{"type": "message", "id": "m1", "role": "assistant", "content": [{"type": "output_text", "text": "Hi"}]}]}


def _ctx() -> RequestContext:
    return RequestContext(message_id="msg_u", requested_model="claude", tool_names=ToolNameMap(64), input_estimate=99)


def _usage(usage: A.Usage | A.MessageDeltaUsage) -> dict:
    got = msgspec.to_builtins(usage)
    return {key: got.get(key) for key in EXPECTED}


def _chat_json(ctx: RequestContext, usage: dict) -> dict:
    body = {"id": "c1", "model": "gpt-4.1", "usage": usage,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}]}
    return _usage(chat_response(msgspec.convert(body, C.ChatResponse), ctx).usage)


def _chat_stream(ctx: RequestContext, usage: dict) -> dict:
    bridge = ChatStreamBridge(ctx)
    events = bridge.on_chunk(msgspec.convert({"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": "stop"}]}, C.ChatChunk))
    events += bridge.on_chunk(msgspec.convert({"choices": [], "usage": usage}, C.ChatChunk))
    events += bridge.on_done()
    return _usage(next(e for e in events if isinstance(e, A.MessageDelta)).usage)


def _responses_json(ctx: RequestContext, usage: dict) -> dict:
    return _usage(responses_response(msgspec.convert({**RESPONSE, "usage": usage}, R.Response), ctx, KEY).usage)


def _responses_stream(ctx: RequestContext, usage: dict) -> dict:
    bridge = ResponsesStreamBridge(ctx, KEY)
    answer = {"type": "response.completed", "response": {**RESPONSE, "usage": usage}}
    events = bridge.on_event(R.decode_event(msgspec.json.encode(answer)))
    return _usage(next(e for e in events if isinstance(e, A.MessageDelta)).usage)


PATHS = [(_chat_json, CHAT_USAGE), (_chat_stream, CHAT_USAGE), (_responses_json, RESPONSES_USAGE),
         (_responses_stream, RESPONSES_USAGE)]
IDS = ["chat-json", "chat-stream", "responses-json", "responses-stream"]


@pytest.mark.parametrize(("answer", "usage"), PATHS, ids=IDS)
def test_cached_tokens_are_cache_reads_not_input(answer, usage) -> None:
    ctx = _ctx()
    assert answer(ctx, usage) == EXPECTED
    assert NOTE_CACHED_CAPPED not in ctx.notes


@pytest.mark.parametrize(("answer", "usage"), PATHS, ids=IDS)
def test_cached_tokens_past_the_prompt_are_capped_at_it_and_noted(answer, usage) -> None:
    """Cached tokens are part of the prompt: an upstream claiming 900 M of them on a 100-token prompt would bill
    900 M cache reads (about $1,125 on gpt-4o) for tokens nobody sent."""
    prompt = "prompt_tokens" if "prompt_tokens" in usage else "input_tokens"
    details = "prompt_tokens_details" if prompt == "prompt_tokens" else "input_tokens_details"
    ctx = _ctx()
    claimed = {**usage, prompt: 100, details: {"cached_tokens": 900_000_000}}
    assert answer(ctx, claimed) == {"input_tokens": 0, "output_tokens": 7, "cache_read_input_tokens": 100}
    assert NOTE_CACHED_CAPPED in ctx.notes
