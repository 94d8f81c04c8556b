"""The scripted OpenAI Responses upstream itself: what it sends is what the Responses end-to-end tests rely on.
Its streams are also fed through the real SSE decoder, event decoder and bridge, so the scripted wire format
and the gateway's parsing cannot drift apart."""

from __future__ import annotations

import http.client
import json

import msgspec
import pytest

from dragoman.protocols import openai_responses as R
from dragoman.protocols.sse import SSEDecoder
from dragoman.translate.request_context import RequestContext
from dragoman.translate.responses.stream import ResponsesStreamBridge
from dragoman.translate.responses.response import translate_response
from dragoman.translate.tool_names import ToolNameMap
from tests.anthropic_events import check_grammar, reassemble, wire_events
from tests.upstreams.openai_responses import (
    Disconnect,
    ErrorReply,
    RawStream,
    ResponsesReply,
    ScriptedResponsesUpstream,
    openai_error,
    sse_events,
)

pytestmark = pytest.mark.timeout(30)
KEY = b"scripted-test-key"


@pytest.fixture(scope="module")
def upstream():
    with ScriptedResponsesUpstream() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(upstream: ScriptedResponsesUpstream):
    upstream.reset()
    yield
    upstream.reset()


def _post(upstream: ScriptedResponsesUpstream, body: dict, path: str = "/v1/responses") -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", upstream.port, timeout=10)
    try:
        conn.request("POST", path, json.dumps(body).encode(), {"content-type": "application/json"})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def _frames(raw: bytes) -> list[tuple[str, dict]]:
    decoder = SSEDecoder()
    frames = decoder.feed(raw) + decoder.close()
    return [((name or b"").decode(), json.loads(data)) for name, data in frames]


def _ctx() -> RequestContext:
    return RequestContext(message_id="msg_scripted", requested_model="claude-x", tool_names=ToolNameMap(64))


def _bridge(raw: bytes) -> list[dict]:
    bridge = ResponsesStreamBridge(_ctx(), KEY)
    decoder = SSEDecoder()
    events = []
    for _, data in decoder.feed(raw) + decoder.close():
        event = R.decode_event(data)
        if event is not None:
            events += bridge.on_event(event)
    events += bridge.on_eof()
    return wire_events(events)


def test_urls_and_recorded_bodies(upstream: ScriptedResponsesUpstream) -> None:
    assert upstream.responses_url == f"http://127.0.0.1:{upstream.port}/v1/responses"
    assert upstream.base_url.endswith("/v1")
    upstream.script(ResponsesReply(text="hi"))
    status, _, _ = _post(upstream, {"model": "gpt-5", "input": [], "store": False})
    assert status == 200
    assert upstream.bodies == [{"model": "gpt-5", "input": [], "store": False}]
    assert upstream.last_body["model"] == "gpt-5"


def test_json_text_reply_is_a_response_object(upstream: ScriptedResponsesUpstream) -> None:
    upstream.script(ResponsesReply(text="hello", usage=(100, 7, 60, 3)))
    status, headers, raw = _post(upstream, {"model": "gpt-5", "input": []})
    assert status == 200 and headers["content-type"].startswith("application/json")
    body = json.loads(raw)
    assert body["object"] == "response" and body["status"] == "completed"
    assert body["output"][0]["content"][0] == {"type": "output_text", "text": "hello", "annotations": [], "logprobs": []}
    assert body["usage"]["input_tokens_details"] == {"cached_tokens": 60}
    message = translate_response(msgspec.json.decode(raw, type=R.Response), _ctx(), KEY)
    assert message.usage.input_tokens == 40 and message.usage.cache_read_input_tokens == 60


def test_stream_is_named_events_with_sequence_numbers_and_no_done(upstream: ScriptedResponsesUpstream) -> None:
    upstream.script(ResponsesReply(text="hello world"))
    status, headers, raw = _post(upstream, {"model": "gpt-5", "input": [], "stream": True})
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    frames = _frames(raw)
    assert all(name == data["type"] for name, data in frames)
    assert [data["sequence_number"] for _, data in frames] == list(range(len(frames)))
    kinds = [name for name, _ in frames]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert b"[DONE]" not in raw
    deltas = [data["delta"] for name, data in frames if name == "response.output_text.delta"]
    assert len(deltas) > 1 and "".join(deltas) == "hello world"


def test_parallel_function_calls_stream_fragmented_and_bridge_in_order(upstream: ScriptedResponsesUpstream) -> None:
    calls = [(f"call_{n}_Qm7tRz4kLp2Vw8Nf", "Read", json.dumps({"file_path": f"/tmp/f{n}.py"})) for n in range(3)]
    upstream.script(ResponsesReply(function_calls=calls, pieces=5))
    _, _, raw = _post(upstream, {"model": "gpt-5", "input": [], "stream": True})
    frames = _frames(raw)
    fragments = [d for name, d in frames if name == "response.function_call_arguments.delta"]
    assert len(fragments) >= 3 * 3
    events = _bridge(raw)
    assert check_grammar(events) == "message_stop"
    message = reassemble(events)
    assert [(b["id"], b["name"], b["input"]) for b in message["content"]] == [
        (call_id, name, json.loads(args)) for call_id, name, args in calls
    ]
    assert message["stop_reason"] == "tool_use"


def test_reasoning_reply_carries_encrypted_content_and_summary(upstream: ScriptedResponsesUpstream) -> None:
    upstream.script(ResponsesReply(reasoning=["First.", "Second."], text="done", encrypted_content="ENC123"))
    _, _, raw = _post(upstream, {"model": "gpt-5", "input": [], "stream": True})
    frames = _frames(raw)
    added = [d["item"] for n, d in frames if n == "response.output_item.added" and d["item"]["type"] == "reasoning"]
    done = [d["item"] for n, d in frames if n == "response.output_item.done" and d["item"]["type"] == "reasoning"]
    assert added[0]["summary"] == [] and "encrypted_content" not in added[0]
    assert done[0]["encrypted_content"] == "ENC123" and len(done[0]["summary"]) == 2
    message = reassemble(_bridge(raw))
    assert message["content"][0]["type"] == "thinking"
    assert message["content"][0]["thinking"] == "First.\n\nSecond."
    assert message["content"][0]["signature"].startswith("dgm1.")


def test_incomplete_reply(upstream: ScriptedResponsesUpstream) -> None:
    upstream.script([ResponsesReply(text="cut", status="incomplete")] * 2)
    _, _, raw = _post(upstream, {"model": "gpt-5", "input": []})
    assert json.loads(raw)["incomplete_details"] == {"reason": "max_output_tokens"}
    _, _, raw = _post(upstream, {"model": "gpt-5", "input": [], "stream": True})
    assert _frames(raw)[-1][0] == "response.incomplete"
    assert reassemble(_bridge(raw))["stop_reason"] == "max_tokens"


def test_failed_reply_streams_response_failed(upstream: ScriptedResponsesUpstream) -> None:
    upstream.script(ResponsesReply(status="failed", error=("server_error", "boom")))
    _, _, raw = _post(upstream, {"model": "gpt-5", "input": [], "stream": True})
    name, data = _frames(raw)[-1]
    assert name == "response.failed" and data["response"]["error"] == {"code": "server_error", "message": "boom"}
    events = _bridge(raw)
    assert check_grammar(events) == "error" and "boom" in events[-1]["error"]["message"]


def test_error_event_mid_stream(upstream: ScriptedResponsesUpstream) -> None:
    upstream.script([ResponsesReply(text="partial answer", error_after=5, error=("rate_limit_exceeded", "slow"))] * 2)
    _, _, raw = _post(upstream, {"model": "gpt-5", "input": [], "stream": True})
    frames = _frames(raw)
    assert len(frames) == 6 and frames[-1][0] == "error" and frames[-1][1]["code"] == "rate_limit_exceeded"
    events = _bridge(raw)
    assert check_grammar(events) == "error" and events[-1]["error"]["type"] == "rate_limit_error"
    status, _, raw = _post(upstream, {"model": "gpt-5", "input": []})
    assert status == 500 and json.loads(raw)["error"]["code"] == "rate_limit_exceeded"


def test_http_error_reply_and_unknown_path(upstream: ScriptedResponsesUpstream) -> None:
    upstream.script(ErrorReply(429, openai_error("slow down", "rate_limit_error"), {"retry-after": "7"}))
    status, headers, raw = _post(upstream, {"model": "gpt-5", "input": []})
    assert status == 429 and headers["retry-after"] == "7" and json.loads(raw)["error"]["message"] == "slow down"
    status, _, _ = _post(upstream, {"model": "gpt-5"}, path="/v1/chat/completions")
    assert status == 404


def test_raw_stream_and_callable_script(upstream: ScriptedResponsesUpstream) -> None:
    chunks = sse_events([{"type": "response.created", "response": {"id": "r", "status": "in_progress", "output": []}}])
    upstream.script(lambda body: RawStream(chunks, done=False) if body.get("stream") else ResponsesReply(text=body["model"]))
    _, _, raw = _post(upstream, {"model": "echo-me", "input": []})
    assert json.loads(raw)["output"][0]["content"][0]["text"] == "echo-me"
    _, _, raw = _post(upstream, {"model": "gpt-5", "input": [], "stream": True})
    assert raw.startswith(b"event: response.created\ndata: ") and b"[DONE]" not in raw
    events = _bridge(raw)  # the stream ended without response.completed
    assert check_grammar(events) == "error"


def test_disconnect(upstream: ScriptedResponsesUpstream) -> None:
    upstream.script(Disconnect())
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        _post(upstream, {"model": "gpt-5", "input": []})
