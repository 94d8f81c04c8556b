"""Fallback over real sockets: a primary route whose upstream fails before the first byte (refused, 500, 429,
silent past first_byte, dead before its first chunk) is retried a bounded number of times, then the next
candidate answers and the client sees a normal answer. After the first byte, never: the client gets an
Anthropic `error` event. Errors a retry cannot fix (400) go straight to the client."""

from __future__ import annotations

from typing import Iterator

import anthropic
import pytest

from tests.anthropic_events import check_sse_grammar, sse_events
from tests.gateway import Gateway, free_port, run_gateway
from tests.routing_helpers import (
    BACKUP_TEXT,
    KEYS_ENV,
    PRIMARY_TEXT,
    USER_HI,
    config_yaml,
    post_messages,
    route,
    sdk,
    stream_text,
)
from tests.upstreams import (
    ChatReply,
    Disconnect,
    ErrorReply,
    Gate,
    Hang,
    Held,
    RawStream,
)

pytestmark = pytest.mark.timeout(20)

RETRY = {"attempts": 2, "backoff": 0.05, "max_backoff": 1}
NO_BREAKER = {"failures": 1000, "cooldown": 1}  # breakers are tested in test_circuit_breaker.py


def _server_error() -> ErrorReply:
    return ErrorReply(500, {"error": {"message": "The server had an error", "type": "server_error"}})


def _rate_limited(retry_after: str) -> ErrorReply:
    return ErrorReply(429, {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}},
                      {"retry-after": retry_after})


def _role() -> dict:
    return {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-x",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}


def _content(text: str) -> dict:
    return {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-x",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}




@pytest.fixture(scope="module")
def gateway(upstreams) -> Iterator[Gateway]:
    primary, backup = upstreams
    closed = f"http://127.0.0.1:{free_port()}/v1"
    text = config_yaml([
        route("primary", primary.base_url, fallbacks=["backup"], retry=RETRY, breaker=NO_BREAKER),
        route("refused", closed, fallbacks=["backup"], retry=RETRY, breaker=NO_BREAKER),
        route("backup", backup.base_url, model="gpt-5-mini", retry={"attempts": 1}, breaker=NO_BREAKER),
    ])
    with run_gateway(text, env=KEYS_ENV) as gw:
        yield gw


def ask(gateway: Gateway, stream: bool, model: str = "primary") -> str:
    """One request through the SDK; the answer's text (the SDK raises on any error)."""
    with sdk(gateway) as client:
        if stream:
            with client.messages.stream(model=model, max_tokens=100, messages=USER_HI) as s:
                message = s.get_final_message()
        else:
            message = client.messages.create(model=model, max_tokens=100, messages=USER_HI)
    assert message.type == "message" and message.role == "assistant"
    assert message.stop_reason == "end_turn"
    return "".join(block.text for block in message.content if block.type == "text")


def ask_error(gateway: Gateway, stream: bool, model: str = "primary") -> anthropic.APIStatusError:
    with sdk(gateway) as client, pytest.raises(anthropic.APIStatusError) as caught:
        if stream:
            with client.messages.stream(model=model, max_tokens=100, messages=USER_HI) as s:
                s.get_final_message()
        else:
            client.messages.create(model=model, max_tokens=100, messages=USER_HI)
    body = caught.value.body
    assert isinstance(body, dict) and body["type"] == "error" and set(body["error"]) >= {"type", "message"}, body
    return caught.value


# ---- before the first byte: the next candidate answers ---------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_refused_connection_falls_back(stream, gateway, backup):
    assert ask(gateway, stream, model="refused") == BACKUP_TEXT
    assert len(backup.requests) == 1
    assert backup.last_body["model"] == "gpt-5-mini"  # translated for the fallback route, not the primary


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_500_is_retried_attempts_times_then_falls_back(stream, gateway, primary, backup):
    primary.script(_server_error())
    assert ask(gateway, stream) == BACKUP_TEXT
    assert len(primary.requests) == RETRY["attempts"]
    assert len(backup.requests) == 1


def test_500_then_success_is_answered_by_the_primary_on_retry(gateway, primary, backup):
    primary.script([_server_error(), ChatReply(text=PRIMARY_TEXT)])
    assert ask(gateway, False) == PRIMARY_TEXT
    assert len(primary.requests) == 2 and not backup.requests


# How long the gateway waits before a retry is pinned in test_retry_after_honoured.py (the wait select takes,
# recorded); here, over real sockets, which upstream gets asked how often.


def test_429_retry_after_within_max_backoff_retries_the_primary(gateway, primary, backup):
    primary.script([_rate_limited("0.2"), ChatReply(text=PRIMARY_TEXT)])
    assert ask(gateway, False) == PRIMARY_TEXT
    assert len(primary.requests) == 2 and not backup.requests


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_429_every_time_falls_back_after_the_retries(stream, gateway, primary, backup):
    primary.script(_rate_limited("0.2"))
    assert ask(gateway, stream) == BACKUP_TEXT
    assert len(primary.requests) == RETRY["attempts"]
    assert len(backup.requests) == 1


def test_429_retry_after_beyond_max_backoff_goes_to_the_next_candidate_without_a_retry(gateway, primary, backup):
    primary.script(_rate_limited("30"))
    assert ask(gateway, False) == BACKUP_TEXT
    assert len(primary.requests) == 1, "a retry-after over max_backoff must not be waited for on this route"
    assert len(backup.requests) == 1


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_silence_past_first_byte_falls_back(stream, gateway, primary, backup):
    # The primary holds every request until the test ends: only the first_byte timeout can move on.
    gate = Gate()
    primary.script(Held(gate, then=ChatReply(text=PRIMARY_TEXT)))
    try:
        assert ask(gateway, stream) == BACKUP_TEXT
    finally:
        gate.open()
    assert len(primary.requests) == RETRY["attempts"] and len(backup.requests) == 1


def test_stream_that_dies_before_its_first_chunk_falls_back(gateway, primary, backup):
    primary.script(RawStream([], disconnect_after=0, done=False))  # 200 and headers, then the socket closes
    assert ask(gateway, True) == BACKUP_TEXT
    assert len(primary.requests) == RETRY["attempts"] and len(backup.requests) == 1


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_disconnect_without_answering_falls_back(stream, gateway, primary, backup):
    primary.script(Disconnect())
    assert ask(gateway, stream) == BACKUP_TEXT
    assert len(backup.requests) == 1


def test_stream_whose_first_chunk_is_an_upstream_error_falls_back(gateway, primary, backup):
    # Some servers answer 200 and put the failure in the stream; nothing reached the client yet.
    primary.script(RawStream([{"error": {"message": "model overloaded", "type": "server_error"}}], done=False))
    text = ask(gateway, True)
    assert text == BACKUP_TEXT
    assert len(backup.requests) == 1


# ---- not retried, not fallen back ------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_400_is_neither_retried_nor_fallen_back(stream, gateway, primary, backup):
    primary.script(ErrorReply(400, {"error": {"message": "Invalid 'messages[0].content': too long.",
                                              "type": "invalid_request_error", "code": "invalid_value"}}))
    err = ask_error(gateway, stream)
    assert err.status_code == 400 and err.body["error"]["type"] == "invalid_request_error"
    assert "too long" in err.body["error"]["message"]
    assert len(primary.requests) == 1
    assert not backup.requests


# ---- every candidate failed -------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_every_candidate_failing_is_529_naming_them(stream, gateway, primary, backup):
    primary.script(_server_error())
    backup.script(Hang(15))
    err = ask_error(gateway, stream)
    assert err.status_code == 529, err.response.text
    assert err.body["error"]["type"] == "overloaded_error"
    message = err.body["error"]["message"]
    assert "primary" in message and "backup" in message, message
    assert len(primary.requests) == RETRY["attempts"] and len(backup.requests) == 1


def test_every_candidate_rate_limited_is_429_with_retry_after(gateway, primary, backup):
    primary.script(_rate_limited("30"))
    backup.script(_rate_limited("20"))
    err = ask_error(gateway, False)
    assert err.status_code == 429 and err.body["error"]["type"] == "rate_limit_error"
    retry_after = err.response.headers.get("retry-after")
    assert retry_after is not None and float(retry_after) > 0, dict(err.response.headers)


def test_rate_limit_then_server_error_is_529_not_429(gateway, primary, backup):
    primary.script(_rate_limited("30"))
    backup.script(_server_error())
    err = ask_error(gateway, False)
    assert err.status_code == 529 and err.body["error"]["type"] == "overloaded_error"


def test_refused_with_no_fallback_left_is_529(gateway, backup):
    backup.script(Disconnect())
    err = ask_error(gateway, False, model="refused")
    assert err.status_code == 529 and err.body["error"]["type"] == "overloaded_error"
    assert "refused" in err.body["error"]["message"] and "backup" in err.body["error"]["message"]


# ---- after the first byte: an error event, and the fallback is not called ---------------------------


def test_disconnect_after_the_first_byte_is_an_error_event_not_a_fallback(gateway, primary, backup):
    primary.script(RawStream([_role(), _content("Hel"), _content("lo")], disconnect_after=3))
    with sdk(gateway) as client, pytest.raises(anthropic.APIError):
        with client.messages.stream(model="primary", max_tokens=100, messages=USER_HI) as s:
            s.get_final_message()
    response = post_messages(gateway, {"model": "primary", "max_tokens": 100, "messages": USER_HI, "stream": True})
    assert response.status == 200
    events = sse_events(response.body)
    assert check_sse_grammar(events) == "error", [n for n, _ in events]
    assert stream_text(events) == "Hello"
    assert len(primary.requests) == 2  # one per request: no retry once bytes went out
    assert not backup.requests, "the fallback must not be called after the first byte"


def test_idle_after_the_first_byte_is_an_error_event_not_a_fallback(gateway, primary, backup):
    # "Hel" goes out, then the primary holds its next chunk until the test ends: only the idle timeout can end it.
    gate = Gate()
    primary.script(RawStream([_role(), _content("Hel"), _content("lo")], gate=gate, gate_before=2))
    try:
        response = post_messages(gateway, {"model": "primary", "max_tokens": 100, "messages": USER_HI, "stream": True})
    finally:
        gate.open()
    assert response.status == 200
    events = sse_events(response.body)
    assert check_sse_grammar(events) == "error", [n for n, _ in events]
    assert events[-1][1]["error"]["type"] in ("overloaded_error", "api_error")
    assert stream_text(events) == "Hel"
    assert len(primary.requests) == 1 and not backup.requests
