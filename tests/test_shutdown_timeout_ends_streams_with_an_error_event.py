"""SIGTERM with answers still running past `server.shutdown_timeout`, against a real gateway process: a stream
whose upstream has stalled ends with an Anthropic `error` event (`overloaded_error`, the gateway is shutting down)
instead of being cut, and its record says 200 with `stream_error`, as for any stream that fails mid-way; a request
still waiting for the upstream's first byte, and one whose body is still arriving, are answered 529
`overloaded_error`. Nothing is recorded as 500, and the process exits cleanly."""

from __future__ import annotations

import http.client
import json
import signal
import threading
from pathlib import Path

import pytest

from tests.audit_helpers import ENV, all_records, config, messages_body, route
from tests.gateway import Gateway, run_gateway
from tests.http_raw import assert_anthropic_error, connect, parse, read_until_closed
from tests.upstreams import ChatReply, Hang, RawStream, ScriptedChatUpstream
from tests.upstreams.openai_chat import render_chunks

pytestmark = pytest.mark.timeout(60)

STALL = 25.0  # the upstream's silence after its first chunk (or before any answer): far past the drain limit
SLOW = {"connect": 5, "first_byte": 60, "idle": 60}  # the upstream's own timeouts must not fire first


def _reply(body: dict) -> RawStream | Hang:
    if body.get("stream"):
        return RawStream(render_chunks(ChatReply(text="partial answer", pieces=2)), delay=STALL)
    return Hang(STALL)


def _open_stream(gw: Gateway) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse, bytearray]:
    """A streamed request, read until its message_start event has arrived."""
    conn = gw.connection(timeout=30)
    conn.request("POST", "/v1/messages", json.dumps(messages_body("r", "long", stream=True)),
                 {"content-type": "application/json", "anthropic-version": "2023-06-01"})
    resp = conn.getresponse()
    assert resp.status == 200
    seen = bytearray()
    while b"event: message_start" not in seen:
        data = resp.read1(65536)
        assert data, f"stream closed before message_start: {bytes(seen)!r}"
        seen += data
    return conn, resp, seen


def test_streams_past_the_drain_limit_end_with_an_overloaded_error_event(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/audit.db"
    with ScriptedChatUpstream(_reply) as up:
        text = config([route("r", up.base_url, timeout=SLOW)], store=store)
        text += "server:\n  shutdown_timeout: 1\n"
        with run_gateway(text, env={**ENV, "DRAGOMAN_AUDIT_STORE": ""}) as gw:
            conn, resp, stream = _open_stream(gw)
            waiting: dict[str, object] = {}

            def wait_for_first_byte() -> None:
                waiting["answer"] = gw.request("POST", "/v1/messages", messages_body("r", "hung"),
                                               {"anthropic-version": "2023-06-01"})

            thread = threading.Thread(target=wait_for_first_byte, daemon=True)
            thread.start()
            up.wait_for_requests(2)  # both are with the upstream now: one stalled mid-stream, one before its head
            uploading = connect(gw.port)  # a third request whose body is still arriving
            uploading.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
                              b"content-length: 1000\r\n\r\n{\"model\":")
            gw.proc.send_signal(signal.SIGTERM)

            while data := resp.read1(65536):  # the rest of the stream, until the gateway ends it
                stream += data
            conn.close()
            with uploading:
                upload_answer = parse(read_until_closed(uploading))
            thread.join(30)
            assert gw.proc.wait(30) in (0, -signal.SIGTERM), gw.stderr_text()
            stderr = gw.stderr_text()
            records = all_records(store)
    print(stderr)
    assert "Traceback" not in stderr and "cancel" not in stderr.lower(), stderr

    events = [block for block in bytes(stream).decode().split("\n\n") if block.strip()]
    last = events[-1]
    assert last.startswith("event: error\n"), events[-3:]
    error = json.loads(last.split("data: ", 1)[1])
    assert error["error"]["type"] == "overloaded_error" and "shutting down" in error["error"]["message"], error
    assert not any(e.startswith("event: message_stop") for e in events)

    answer = waiting["answer"]
    assert answer.status == 529, answer.text  # type: ignore[attr-defined]
    body = answer.json()  # type: ignore[attr-defined]
    assert body["error"]["type"] == "overloaded_error" and "shutting down" in body["error"]["message"], body

    message = assert_anthropic_error(upload_answer, 529, "overloaded_error")
    assert "shutting down" in message

    assert not [r for r in records if r["status"] >= 500 and r["status"] != 529], records
    by_stream = {r["stream"]: r for r in records if r["requested_model"]}
    assert len(by_stream) == 2, records
    assert (by_stream[True]["status"], by_stream[True]["error_type"]) == (200, "stream_error"), by_stream[True]
    assert (by_stream[False]["status"], by_stream[False]["error_type"]) == (529, "overloaded_error"), by_stream[False]
