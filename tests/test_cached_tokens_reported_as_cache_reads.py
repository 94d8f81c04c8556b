"""Usage with cached prompt tokens, one rule on every path (design §3; translate/usage.py): Anthropic's
`input_tokens` excludes the cached tokens, which are reported as `cache_read_input_tokens`; output tokens are
the upstream's count. Chat and Responses, JSON answers and streams, give the client the same numbers."""

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


def _chat_json() -> dict:
    body = {"id": "c1", "model": "gpt-4.1", "usage": CHAT_USAGE,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}]}
    return _usage(chat_response(msgspec.convert(body, C.ChatResponse), _ctx()).usage)


def _chat_stream() -> dict:
    bridge = ChatStreamBridge(_ctx())
    events = bridge.on_chunk(msgspec.convert({"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": "stop"}]}, C.ChatChunk))
    events += bridge.on_chunk(msgspec.convert({"choices": [], "usage": CHAT_USAGE}, C.ChatChunk))
    events += bridge.on_done()
    return _usage(next(e for e in events if isinstance(e, A.MessageDelta)).usage)


def _responses_json() -> dict:
    return _usage(responses_response(msgspec.convert(RESPONSE, R.Response), _ctx(), KEY).usage)


def _responses_stream() -> dict:
    bridge = ResponsesStreamBridge(_ctx(), KEY)
    events = bridge.on_event(R.decode_event(msgspec.json.encode({"type": "response.completed", "response": RESPONSE})))
    return _usage(next(e for e in events if isinstance(e, A.MessageDelta)).usage)


@pytest.mark.parametrize("answer", [_chat_json, _chat_stream, _responses_json, _responses_stream],
                         ids=["chat-json", "chat-stream", "responses-json", "responses-stream"])
def test_cached_tokens_are_cache_reads_not_input(answer) -> None:
    assert answer() == EXPECTED
