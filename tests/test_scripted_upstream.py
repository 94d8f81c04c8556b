"""The scripted OpenAI Chat upstream itself: what it sends is what every end-to-end test relies on."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket

import aiohttp
import pytest

from tests.upstreams import ChatReply, Disconnect, ErrorReply, Gate, Hang, Held, RawStream, ScriptedChatUpstream

pytestmark = pytest.mark.timeout(30)


def _post(upstream: ScriptedChatUpstream, body: dict | bytes, headers: dict | None = None,
          path: str = "/v1/chat/completions", timeout: float = 10) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", upstream.port, timeout=timeout)
    try:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        conn.request("POST", path, data, {"content-type": "application/json", **(headers or {})})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def _sse_data(raw: bytes) -> list:
    """The `data:` payloads of an SSE body, JSON-decoded except `[DONE]`."""
    out = []
    for event in raw.decode().split("\n\n"):
        for line in event.splitlines():
            if line.startswith("data: "):
                payload = line[len("data: "):]
                out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


STREAM = {"model": "gpt-5", "stream": True, "stream_options": {"include_usage": True}, "messages": []}


def test_urls_point_at_the_ephemeral_port(chat_upstream):
    assert chat_upstream.base_url == f"http://127.0.0.1:{chat_upstream.port}/v1"
    assert chat_upstream.chat_url == chat_upstream.base_url + "/chat/completions"


def test_text_reply_is_a_json_completion_when_not_streamed(chat_upstream):
    chat_upstream.script(ChatReply(text="hello there", usage=(120, 7, 100), model="gpt-5-2025"))
    status, headers, raw = _post(chat_upstream, {"model": "gpt-5", "messages": []})
    assert status == 200 and headers["content-type"].startswith("application/json")
    body = json.loads(raw)
    assert body["object"] == "chat.completion" and body["model"] == "gpt-5-2025"
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"] == "hello there"
    assert "tool_calls" not in choice["message"] and choice["finish_reason"] == "stop"
    assert body["usage"]["prompt_tokens"] == 120 and body["usage"]["completion_tokens"] == 7
    assert body["usage"]["prompt_tokens_details"]["cached_tokens"] == 100


def test_tool_calls_and_reasoning_in_a_json_completion(chat_upstream):
    calls = [("call_1", "Read", '{"file_path": "/a"}'), ("call_2", "Bash", '{"command": "ls"}')]
    chat_upstream.script(ChatReply(tool_calls=calls, reasoning="thinking..."))
    body = json.loads(_post(chat_upstream, {"messages": []})[2])
    message = body["choices"][0]["message"]
    assert message["content"] is None and message["reasoning_content"] == "thinking..."
    assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in message["tool_calls"]] == calls
    assert body["choices"][0]["finish_reason"] == "tool_calls"


def test_explicit_finish_reason_wins(chat_upstream):
    chat_upstream.script(ChatReply(text="cut", finish_reason="length"))
    assert json.loads(_post(chat_upstream, {})[2])["choices"][0]["finish_reason"] == "length"


def test_streamed_reply_follows_openai_chunk_order(chat_upstream):
    calls = [("call_a", "Read", '{"file_path": "/tmp/a.txt"}'), ("call_b", "Grep", '{"pattern": "x+", "path": "."}')]
    chat_upstream.script(ChatReply(text="Reading both files now.", reasoning="I should read.", tool_calls=calls,
                                   usage=(50, 20, 10)))
    status, headers, raw = _post(chat_upstream, STREAM)
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    data = _sse_data(raw)
    assert data[-1] == "[DONE]"
    chunks = data[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    reasoning = [i for i, d in enumerate(deltas) if d.get("reasoning_content")]
    content = [i for i, d in enumerate(deltas) if d.get("content")]
    tools = [i for i, d in enumerate(deltas) if d.get("tool_calls")]
    assert len(reasoning) > 1 and len(content) > 1, "text and reasoning are split into several deltas"
    assert max(reasoning) < min(content) < max(content) < min(tools)
    assert "".join(deltas[i]["reasoning_content"] for i in reasoning) == "I should read."
    assert "".join(deltas[i]["content"] for i in content) == "Reading both files now."
    for index, (call_id, name, args) in enumerate(calls):
        entries = [d["tool_calls"][0] for d in deltas if d.get("tool_calls") and d["tool_calls"][0]["index"] == index]
        first, rest = entries[0], entries[1:]
        assert first == {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
        assert len(rest) > 1 and all(set(e) == {"index", "function"} for e in rest)
        assert "".join(e["function"]["arguments"] for e in rest) == args
    finish = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finish) == 1 and finish[0]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-2] is finish[0] or chunks.index(finish[0]) == len(chunks) - 2
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] == 50
    assert chunks[-1]["usage"]["prompt_tokens_details"]["cached_tokens"] == 10


def test_usage_chunk_only_when_asked(chat_upstream):
    chat_upstream.script(ChatReply(text="hi"))
    data = _sse_data(_post(chat_upstream, {"stream": True})[2])
    assert data[-1] == "[DONE]"
    assert all(c["choices"] for c in data[:-1]) and all("usage" not in c for c in data[:-1])
    assert data[-2]["choices"][0]["finish_reason"] == "stop"


def test_list_script_is_served_in_order_then_reports_exhaustion(chat_upstream):
    chat_upstream.script([ChatReply(text="one"), ChatReply(text="two")])
    texts = [json.loads(_post(chat_upstream, {})[2])["choices"][0]["message"]["content"] for _ in range(2)]
    assert texts == ["one", "two"]
    status, _, raw = _post(chat_upstream, {})
    assert status == 500 and "exhausted" in json.loads(raw)["error"]["message"]


def test_single_reply_is_served_to_every_request(chat_upstream):
    chat_upstream.script(ChatReply(text="again"))
    for _ in range(3):
        assert json.loads(_post(chat_upstream, {})[2])["choices"][0]["message"]["content"] == "again"


def test_callable_script_sees_the_body(chat_upstream):
    chat_upstream.script(lambda body: ChatReply(text=f"model={body['model']}"))
    raw = _post(chat_upstream, {"model": "gpt-5", "messages": []})[2]
    assert json.loads(raw)["choices"][0]["message"]["content"] == "model=gpt-5"


def test_a_raising_callable_becomes_a_500(chat_upstream):
    chat_upstream.script(lambda body: 1 / 0)
    status, _, raw = _post(chat_upstream, {})
    assert status == 500 and "ZeroDivisionError" in json.loads(raw)["error"]["message"]


def test_requests_are_recorded_with_headers_and_body(chat_upstream):
    chat_upstream.script(ChatReply(text="x"))
    _post(chat_upstream, {"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]},
          headers={"Authorization": "Bearer sk-upstream-test"})
    (request,) = chat_upstream.requests
    assert request.method == "POST" and request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-upstream-test"
    assert request.body["messages"][0]["content"] == "hi"
    assert chat_upstream.last_body == request.body


def test_reset_forgets_requests_and_script(chat_upstream):
    chat_upstream.script(ChatReply(text="x"))
    _post(chat_upstream, {})
    chat_upstream.reset()
    assert chat_upstream.requests == []
    assert _post(chat_upstream, {})[0] == 500  # no script installed


def test_error_reply_keeps_status_headers_and_body(chat_upstream):
    body = {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}
    chat_upstream.script(ErrorReply(429, body, {"retry-after": "7"}))
    status, headers, raw = _post(chat_upstream, {})
    assert (status, headers["retry-after"], json.loads(raw)) == (429, "7", body)


def test_unknown_path_is_404(chat_upstream):
    assert _post(chat_upstream, {}, path="/v1/responses")[0] == 404


def test_disconnect_closes_without_an_answer(chat_upstream):
    chat_upstream.script(Disconnect())
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        _post(chat_upstream, {})


def test_hang_sends_nothing_then_closes(chat_upstream):
    chat_upstream.script(Hang(0.2))
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        _post(chat_upstream, {})


def test_hang_then_answers(chat_upstream):
    chat_upstream.script(Hang(0.2, then=ChatReply(text="late")))
    assert json.loads(_post(chat_upstream, {})[2])["choices"][0]["message"]["content"] == "late"


def test_hang_is_cut_short_by_reset(chat_upstream):
    # Left alone it would answer "late" after 20 s; reset() must close it without that answer.
    chat_upstream.script(Hang(20, then=ChatReply(text="late")))
    conn = http.client.HTTPConnection("127.0.0.1", chat_upstream.port, timeout=25)
    conn.request("POST", "/v1/chat/completions", b"{}", {"content-type": "application/json"})
    chat_upstream.wait_for_requests(1)
    chat_upstream.reset()
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        conn.getresponse()
    conn.close()


def test_held_reply_answers_only_once_its_gate_opens(chat_upstream):
    gate = Gate()
    chat_upstream.script(Held(gate, then=ChatReply(text="released")))
    conn = http.client.HTTPConnection("127.0.0.1", chat_upstream.port, timeout=10)
    conn.request("POST", "/v1/chat/completions", b"{}", {"content-type": "application/json"})
    assert gate.reached.wait(10), "the reply never reached its gate"
    conn.sock.setblocking(False)
    with pytest.raises(BlockingIOError):  # open, and not a byte of the answer yet
        conn.sock.recv(1)
    conn.sock.setblocking(True)
    gate.open()
    assert json.loads(conn.getresponse().read())["choices"][0]["message"]["content"] == "released"
    conn.close()


async def _read_around_gate(url: str, gate: Gate, body: dict, before: int) -> tuple[list[bytes], list[bytes]]:
    """The first `before` `data:` lines, read while `gate` is still shut; then the rest, once it is opened."""
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json=body) as response:
            data = (line async for line in response.content if line.startswith(b"data:"))
            held = [await asyncio.wait_for(anext(data), 10) for _ in range(before)]
            assert await asyncio.to_thread(gate.reached.wait, 10), "the stream never reached its gate"
            gate.open()
            rest = [line async for line in data]
    return held, rest


def test_a_stream_chunk_is_held_until_its_gate_opens(chat_upstream):
    gate = Gate()
    chat_upstream.script(RawStream([{"n": 1}, {"n": 2}, {"n": 3}], gate=gate, gate_before=1))
    held, rest = asyncio.run(_read_around_gate(chat_upstream.chat_url, gate, STREAM, 1))
    # The client read chunk 0 while chunk 1 was still held back at the gate.
    assert held == [b'data: {"n":1}\n']
    assert rest == [b'data: {"n":2}\n', b'data: {"n":3}\n', b"data: [DONE]\n"]


def test_a_chat_reply_can_hold_its_stream_at_a_gate(chat_upstream):
    gate = Gate()
    chat_upstream.script(ChatReply(text="abcd", pieces=4, gate=gate, gate_before=2))
    held, rest = asyncio.run(_read_around_gate(chat_upstream.chat_url, gate, STREAM, 2))
    # role, then "a"; "b" waits at the gate.
    assert [json.loads(line[5:])["choices"][0]["delta"] for line in held] == [{"role": "assistant", "content": ""}, {"content": "a"}]
    assert "".join(json.loads(line[5:])["choices"][0]["delta"].get("content") or "" for line in rest[:-2]) == "bcd"


def test_chunk_delay_keeps_every_chunk_in_order(chat_upstream):
    chat_upstream.script(ChatReply(text="abcd", pieces=4, chunk_delay=0.01))
    data = _sse_data(_post(chat_upstream, STREAM)[2])
    # role + 4 content + finish + usage = 7 chunks, then [DONE]
    assert len(data) == 8 and data[-1] == "[DONE]"
    assert "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in data[1:5]) == "abcd"


def test_raw_stream_sends_dicts_and_bytes_verbatim(chat_upstream):
    chat_upstream.script(RawStream([{"a": 1}, b": keep-alive comment\n\n", b"data: {\"b\":2}\n\n"]))
    status, _, raw = _post(chat_upstream, STREAM)
    assert status == 200
    assert raw == b'data: {"a":1}\n\n: keep-alive comment\n\ndata: {"b":2}\n\ndata: [DONE]\n\n'


def test_raw_stream_without_done(chat_upstream):
    chat_upstream.script(RawStream([{"a": 1}], done=False))
    assert _post(chat_upstream, STREAM)[2] == b'data: {"a":1}\n\n'


def test_raw_stream_disconnect_after_cuts_the_body(chat_upstream):
    chat_upstream.script(RawStream([{"n": 1}, {"n": 2}, {"n": 3}], disconnect_after=2))

    async def read() -> tuple[list[bytes], BaseException | None]:
        lines: list[bytes] = []
        async with aiohttp.ClientSession() as session:
            async with session.post(chat_upstream.chat_url, json=STREAM) as response:
                assert response.status == 200
                try:
                    async for line in response.content:
                        lines.append(line)
                except aiohttp.ClientPayloadError as exc:
                    return lines, exc
        return lines, None

    lines, error = asyncio.run(read())
    assert error is not None, "the client must see an incomplete body, not a clean end"
    payloads = [line for line in lines if line.startswith(b"data:")]
    assert payloads == [b'data: {"n":1}\n', b'data: {"n":2}\n']


def test_concurrent_requests_are_served(chat_upstream):
    gate = Gate()
    chat_upstream.script(Held(gate, then=ChatReply(text="ok")))

    async def many() -> list[int]:
        async with aiohttp.ClientSession() as session:
            async def one() -> int:
                async with session.post(chat_upstream.chat_url, json={}) as response:
                    await response.read()
                    return response.status

            async def release_once_all_arrived() -> None:
                # All five are being handled at once: none can finish before the gate opens.
                await asyncio.to_thread(chat_upstream.wait_for_requests, 5)
                gate.open()

            *statuses, _ = await asyncio.gather(*(one() for _ in range(5)), release_once_all_arrived())
            return statuses

    assert asyncio.run(many()) == [200] * 5


def test_stop_releases_the_port():
    upstream = ScriptedChatUpstream(ChatReply(text="x"))
    port = upstream.port
    assert _post(upstream, {})[0] == 200
    upstream.stop()
    upstream.stop()  # idempotent
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_context_manager_stops_a_hanging_server_without_waiting_out_the_hang():
    # stop() bounds its own shutdown (10 s) below the hang (25 s): waiting the hang out would raise there.
    with ScriptedChatUpstream(Hang(25, then=ChatReply(text="late"))) as upstream:
        conn = http.client.HTTPConnection("127.0.0.1", upstream.port, timeout=28)
        conn.request("POST", "/v1/chat/completions", b"{}")
        upstream.wait_for_requests(1)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        conn.getresponse()
    conn.close()
