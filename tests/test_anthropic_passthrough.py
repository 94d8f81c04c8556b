"""Anthropic passthrough over real sockets: a route `provider: anthropic`, `translation: {passthrough: true}`
sends the client's body as is (but for `model` when the route names another) with the route's credential,
forwards the client's `anthropic-version` / `anthropic-beta` as sent, and relays the stream byte for byte."""

from __future__ import annotations

import http.client
import json
from typing import Iterator

import anthropic
import pytest

from tests.anthropic_events import check_sse_grammar, sse_events
from tests.gateway import Gateway, run_gateway
from tests.routing_helpers import (
    KEYS_ENV, USER_HI, config_yaml, post_messages, route, sdk,
)
from tests.upstreams import ChatReply, ScriptedChatUpstream
from tests.upstreams.anthropic_messages import (
    AnthropicError, MessageReply, RawSSE, ScriptedAnthropicUpstream, render_message, render_message_events,
)

pytestmark = pytest.mark.timeout(20)

SAME = "claude-opus-4-8"  # route name == upstream model: the body goes up byte for byte
RENAMED = "claude-via-gateway"  # route whose upstream model is another name
UPSTREAM_MODEL = "claude-opus-upstream"
WITH_FALLBACK = "claude-with-chat-fallback"
UPSTREAM_KEY = KEYS_ENV["ANTHROPIC_PROD"]
CLIENT_KEY = "sk-client-key"
PASSTHROUGH = {"passthrough": True}
ONE_TRY = {"attempts": 1, "backoff": 0.05, "max_backoff": 1}
BETAS = "claude-code-20250219,interleaved-thinking-2025-05-14,brand-new-beta-2031-01-01"


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[ScriptedAnthropicUpstream, ScriptedChatUpstream]]:
    with ScriptedAnthropicUpstream() as upstream, ScriptedChatUpstream() as chat:
        yield upstream, chat


@pytest.fixture
def upstream(servers) -> Iterator[ScriptedAnthropicUpstream]:
    servers[0].reset(MessageReply())
    yield servers[0]
    servers[0].reset()


@pytest.fixture
def chat(servers) -> Iterator[ScriptedChatUpstream]:
    servers[1].reset(ChatReply(text="answered by the chat fallback"))
    yield servers[1]
    servers[1].reset()


@pytest.fixture(scope="module")
def gateway(servers) -> Iterator[Gateway]:
    upstream, chat = servers
    common = dict(provider="anthropic", api_key_ref="anthropic_prod", translation=PASSTHROUGH, retry=ONE_TRY)
    text = config_yaml([
        route(SAME, upstream.base_url, model=SAME, **common),
        route(RENAMED, upstream.base_url + "/v1", model=UPSTREAM_MODEL, **common),
        route(WITH_FALLBACK, upstream.messages_url, model=SAME, fallbacks=["chat-backup"], **common),
        route("chat-backup", chat.base_url, retry=ONE_TRY),
    ])
    with run_gateway(text, env=KEYS_ENV) as gw:
        yield gw


def _body(model: str = SAME, stream: bool = False, **extra) -> dict:
    return {"model": model, "max_tokens": 256, "messages": USER_HI, "stream": stream, **extra}


def _split_anywhere(data: bytes, sizes: tuple[int, ...] = (7, 50, 1, 120, 33)) -> list[bytes]:
    """Cut `data` into pieces at arbitrary offsets, mid-line and mid-event."""
    pieces, at, i = [], 0, 0
    while at < len(data):
        size = sizes[i % len(sizes)]
        pieces.append(data[at : at + size])
        at, i = at + size, i + 1
    return pieces


# ---- streams: byte for byte --------------------------------------------------------------------------


def test_streamed_sse_is_byte_identical(gateway, upstream):
    reply = MessageReply(text="Byte for byte, ünïcode ✓ and \"quotes\"", thinking="Let me think.",
                         tool_uses=[("toolu_01", "Bash", {"command": "ls -la"})])
    sent = RawSSE(_split_anywhere(b"".join(render_message_events(reply))))
    upstream.script(sent)
    response = post_messages(gateway, _body(stream=True))
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.body == sent.data
    assert check_sse_grammar(sse_events(response.body)) == "message_stop"


def test_unusual_but_valid_sse_passes_through_untouched(gateway, upstream):
    # Comments, unknown (future) events, CRLF line ends, extra fields, pings: none of it is the gateway's to edit.
    events = render_message_events(MessageReply(text="hello"))
    data = (b": keep-alive comment\n\n" + events[0]
            + b"event: brand_new_event_type\ndata: {\"type\":\"brand_new_event_type\",\"x\":[1,2]}\n\n"
            + events[1].replace(b"\n", b"\r\n") + b"id: 42\nretry: 1000\n" + b"".join(events[2:]))
    upstream.script(RawSSE([data]))
    response = post_messages(gateway, _body(stream=True))
    assert response.status == 200
    assert response.body == data


def test_streamed_answer_through_the_sdk(gateway, upstream):
    upstream.script(MessageReply(text="Hi from Claude", tool_uses=[("toolu_9", "Read", {"file_path": "/a"})]))
    with sdk(gateway) as client:
        with client.messages.stream(model=SAME, max_tokens=256, messages=USER_HI) as s:
            message = s.get_final_message()
    assert [b.type for b in message.content] == ["text", "tool_use"]
    assert message.content[0].text == "Hi from Claude"
    assert message.content[1].input == {"file_path": "/a"}
    assert message.stop_reason == "tool_use" and message.usage.output_tokens == 7


def test_json_answer_is_the_upstream_answer(gateway, upstream):
    reply = MessageReply(text="plain JSON answer", model="claude-upstream-20991231")
    upstream.script(reply)
    response = post_messages(gateway, _body())
    assert response.status == 200 and response.headers["content-type"].startswith("application/json")
    assert response.body == json.dumps(render_message(reply)).encode()  # what aiohttp's json_response sent
    with sdk(gateway) as client:
        message = client.messages.create(model=SAME, max_tokens=256, messages=USER_HI)
    assert message.content[0].text == "plain JSON answer" and message.usage.input_tokens == 12


# ---- the request the upstream receives -----------------------------------------------------------------


def test_body_goes_up_unchanged_when_the_model_is_the_same(gateway, upstream):
    # Odd spacing, key order, escapes and fields the gateway does not know: all must reach the upstream as sent.
    raw = ('{"stream":false,  "model":"%s","max_tokens":64,"messages":[{"role":"user","content":"caf\\u00e9 \u2713"}],'
           '"metadata":{"user_id":"u"},"context_management":{"edits":[]},"some_future_field":{"a":[1,2.50,null]},'
           '"system":[{"type":"text","text":"sys","cache_control":{"type":"ephemeral","ttl":"1h"}}]}' % SAME).encode()
    response = gateway.request("POST", "/v1/messages", raw, {"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"})
    assert response.status == 200, response.text
    assert upstream.last_request.raw == raw


def test_only_the_model_changes_when_the_route_names_another(gateway, upstream):
    body = _body(RENAMED, system="be brief", metadata={"user_id": "u1"}, temperature=0.2,
                 thinking={"type": "adaptive"}, some_future_field={"x": 1})
    response = post_messages(gateway, body)
    assert response.status == 200, response.text
    sent = upstream.last_body
    assert sent["model"] == UPSTREAM_MODEL
    assert {**sent, "model": RENAMED} == body
    assert list(sent) == list(body), "key order kept"
    assert upstream.last_request.path == "/v1/messages"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_credential_is_the_routes_and_betas_and_version_are_the_clients(stream, gateway, upstream):
    response = post_messages(gateway, _body(stream=stream), {
        "x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01", "anthropic-beta": BETAS,
        "x-claude-code-session-id": "sess-1"})
    assert response.status == 200, response.text
    headers = upstream.last_request.headers
    assert headers["x-api-key"] == UPSTREAM_KEY
    assert "authorization" not in headers
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["anthropic-beta"] == BETAS
    assert not any(CLIENT_KEY in value for value in headers.values()), headers


def test_bearer_token_of_the_client_is_not_forwarded(gateway, upstream):
    response = gateway.request("POST", "/v1/messages", _body(),
                               {"authorization": "Bearer sk-client-bearer", "anthropic-version": "2023-06-01"})
    assert response.status == 200, response.text
    headers = upstream.last_request.headers
    assert headers["x-api-key"] == UPSTREAM_KEY
    assert "authorization" not in headers
    assert not any("sk-client-bearer" in value for value in headers.values()), headers


def test_sdk_betas_and_a_newer_version_reach_the_upstream_as_sent(gateway, upstream):
    with sdk(gateway) as client:
        client.beta.messages.create(model=SAME, max_tokens=64, messages=USER_HI,
                                    betas=["context-management-2025-06-27", "not-yet-invented-2032-02-02"],
                                    extra_headers={"anthropic-version": "2031-01-01"})
    headers = upstream.last_request.headers
    assert headers["anthropic-beta"] == "context-management-2025-06-27,not-yet-invented-2032-02-02"
    assert headers["anthropic-version"] == "2031-01-01"
    assert headers["x-api-key"] == UPSTREAM_KEY


def test_anthropic_version_defaults_when_the_client_sends_none(gateway, upstream):
    response = gateway.request("POST", "/v1/messages", _body(), {"x-api-key": CLIENT_KEY})
    assert response.status == 200, response.text
    assert upstream.last_request.headers["anthropic-version"] == "2023-06-01"


def test_repeated_anthropic_beta_headers_all_reach_the_upstream(gateway, upstream):
    # HTTP allows a list header on several lines; each line's betas count (RFC 9110 §5.3).
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    try:
        body = json.dumps(_body()).encode()
        conn.putrequest("POST", "/v1/messages")
        for name, value in (("content-type", "application/json"), ("content-length", str(len(body))),
                            ("x-api-key", CLIENT_KEY), ("anthropic-version", "2023-06-01"),
                            ("anthropic-beta", "claude-code-20250219"), ("anthropic-beta", "brand-new-beta-2031-01-01")):
            conn.putheader(name, value)
        conn.endheaders(body)
        assert conn.getresponse().status == 200
    finally:
        conn.close()
    betas = {b.strip() for b in upstream.last_request.headers["anthropic-beta"].split(",")}
    assert betas == {"claude-code-20250219", "brand-new-beta-2031-01-01"}, upstream.last_request.headers


# ---- errors ---------------------------------------------------------------------------------------------

ERRORS = [
    # upstream (status, type) → what the client sees (status, type)
    ((400, "invalid_request_error"), (400, "invalid_request_error")),
    ((413, "request_too_large"), (413, "request_too_large")),
    # the route's model is missing upstream, or the gateway's own credential was refused: the gateway's upstream
    # failed a sound request (502), not the client's fault
    ((404, "not_found_error"), (502, "api_error")),
    ((401, "authentication_error"), (502, "api_error")),
    ((403, "permission_error"), (502, "api_error")),
    ((500, "api_error"), (529, "overloaded_error")),
    ((529, "overloaded_error"), (529, "overloaded_error")),
]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize(("upstream_error", "client_error"), ERRORS, ids=[str(u[0]) for u, _ in ERRORS])
def test_upstream_errors_map_to_anthropic_errors(upstream_error, client_error, stream, gateway, upstream):
    status, error_type = upstream_error
    upstream.script(AnthropicError(status, error_type, f"upstream says {error_type}; key {UPSTREAM_KEY}"))
    response = post_messages(gateway, _body(stream=stream))
    assert (response.status, response.json()["error"]["type"]) == client_error, response.text
    assert response.json()["type"] == "error"
    assert UPSTREAM_KEY not in response.text
    if client_error[0] == 400:
        assert "upstream says invalid_request_error" in response.json()["error"]["message"]


def test_upstream_rate_limit_is_a_429_keeping_retry_after(gateway, upstream):
    upstream.script(AnthropicError(429, "rate_limit_error", "Number of request tokens has exceeded your rate limit",
                                   {"retry-after": "17"}))
    with sdk(gateway) as client, pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(model=SAME, max_tokens=64, messages=USER_HI)
    assert caught.value.response.headers.get("retry-after") == "17"
    assert caught.value.body["error"]["type"] == "rate_limit_error"


def test_stream_opening_with_an_error_event_is_an_http_error(gateway, upstream):
    error = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    upstream.script(RawSSE([error]))
    response = post_messages(gateway, _body(stream=True))
    assert response.status == 529 and response.json()["error"]["type"] == "overloaded_error", response.text


def test_failed_passthrough_falls_back_to_a_chat_route(gateway, upstream, chat):
    upstream.script(AnthropicError(529, "overloaded_error", "Overloaded"))
    with sdk(gateway) as client:
        with client.messages.stream(model=WITH_FALLBACK, max_tokens=64, messages=USER_HI) as s:
            message = s.get_final_message()
    assert message.content[0].text == "answered by the chat fallback"
    assert len(upstream.requests) == 1 and len(chat.requests) == 1
    assert chat.last_body["model"] == "gpt-5"


# ---- failures after the first byte ---------------------------------------------------------------------


def test_disconnect_between_events_ends_with_an_error_event(gateway, upstream):
    events = render_message_events(MessageReply(text="cut short"))
    upstream.script(RawSSE(events, disconnect_after=4))
    response = post_messages(gateway, _body(stream=True))
    assert response.status == 200
    assert response.body.startswith(b"".join(events[:4]))
    parsed = sse_events(response.body)
    assert check_sse_grammar(parsed) == "error", [n for n, _ in parsed]


def test_disconnect_mid_event_still_gives_the_client_a_parseable_error_event(gateway, upstream):
    events = render_message_events(MessageReply(text="cut in the middle of an event"))
    upstream.script(RawSSE([events[0], events[1], events[2], events[3][:25]], disconnect_after=4))
    response = post_messages(gateway, _body(stream=True))
    assert response.status == 200
    parsed = sse_events(response.body)  # fails if the error event was glued onto the half-sent one
    assert check_sse_grammar(parsed) == "error", [n for n, _ in parsed]
    with sdk(gateway) as client, pytest.raises(anthropic.APIError):
        with client.messages.stream(model=SAME, max_tokens=64, messages=USER_HI) as s:
            s.get_final_message()


def test_idle_upstream_mid_stream_ends_with_an_error_event(gateway, upstream):
    events = render_message_events(MessageReply(text="slow"))
    upstream.script(RawSSE([events[0], b"".join(events[1:])], delay=4))
    response = post_messages(gateway, _body(stream=True))
    assert response.status == 200
    parsed = sse_events(response.body)
    assert check_sse_grammar(parsed) == "error", [n for n, _ in parsed]
    assert response.body.startswith(events[0])
