"""An upstream cannot grow the gateway's memory without bound (a 100 MB SSE line with no newline once cost 273 MB
of RSS before failing): a stream event is held up to 4 MiB (`MAX_EVENT_BYTES`), a JSON answer read up to 16 MiB
(`MAX_ANSWER_BYTES`). Over the limit before the first byte is a retryable 529 (a fallback answers instead); after
it, the stream ends with an `error` event. The gateway keeps serving."""

from __future__ import annotations

import json
from typing import Iterator

import pytest

from dragoman.protocols.sse import MAX_EVENT_BYTES, EventTooLarge, SSEDecoder
from dragoman.upstreams.client import MAX_ANSWER_BYTES
from tests.anthropic_events import check_sse_grammar, sse_events
from tests.gateway import Gateway, run_gateway
from tests.routing_helpers import KEYS_ENV, config_yaml, post_messages, post_stream_then, route, stream_text
from tests.upstreams import ChatReply, RawBody, RawStream, ScriptedChatUpstream
from tests.upstreams.anthropic_messages import MessageReply, RawSSE, ScriptedAnthropicUpstream, render_message_events
from tests.upstreams.openai_chat import render_chunks

pytestmark = pytest.mark.timeout(60)

ONE_TRY = {"attempts": 1}
OVER = 3 << 20  # how far past the limit the upstreams go: a few MB, not 100
EVENT_LIMIT = f"larger than the gateway's limit of {MAX_EVENT_BYTES >> 20} MiB"
ANSWER_LIMIT = f"larger than the gateway's limit of {MAX_ANSWER_BYTES >> 20} MiB"
ENDLESS_LINE = b"data: {\"choices\":[{\"delta\":{\"content\":\"" + b"a" * (MAX_EVENT_BYTES + OVER)  # no newline, ever


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[ScriptedChatUpstream, ScriptedAnthropicUpstream, ScriptedChatUpstream]]:
    with ScriptedChatUpstream() as chat, ScriptedAnthropicUpstream() as claude, ScriptedChatUpstream() as backup:
        yield chat, claude, backup


@pytest.fixture(scope="module")
def gateway(servers) -> Iterator[Gateway]:
    chat, claude, backup = servers
    text = config_yaml([
        route("chat", chat.base_url, retry=ONE_TRY),
        route("claude", claude.base_url, provider="anthropic", api_key_ref="anthropic_prod",
              translation={"passthrough": True}, retry=ONE_TRY),
        route("chat-then-backup", chat.base_url, retry=ONE_TRY, fallbacks=["backup"]),
        route("backup", backup.base_url, retry=ONE_TRY),
    ])
    with run_gateway(text, env=KEYS_ENV) as gw:
        yield gw


@pytest.fixture
def upstreams(servers) -> Iterator[tuple[ScriptedChatUpstream, ScriptedAnthropicUpstream, ScriptedChatUpstream]]:
    servers[2].reset(ChatReply(text="answered by the backup"))
    yield servers
    for server in servers:
        server.reset()


def _body(model: str, stream: bool) -> dict:
    return {"model": model, "max_tokens": 32, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}


def _still_serving(gateway: Gateway, chat: ScriptedChatUpstream) -> None:
    chat.reset(ChatReply(text="still here"))
    resp = post_messages(gateway, _body("chat", False))
    assert resp.status == 200 and resp.json()["content"][0]["text"] == "still here", resp.text


def test_an_endless_stream_line_before_the_first_byte_is_a_529(gateway, upstreams):
    chat = upstreams[0]
    chat.reset(RawStream([ENDLESS_LINE], done=False))
    resp = post_messages(gateway, _body("chat", True))
    assert resp.status == 529 and resp.json()["error"]["type"] == "overloaded_error", resp.text[:300]
    assert EVENT_LIMIT in resp.json()["error"]["message"]
    _still_serving(gateway, chat)


def test_an_endless_stream_line_before_the_first_byte_falls_back(gateway, upstreams):
    chat, _, backup = upstreams
    chat.reset(RawStream([ENDLESS_LINE], done=False))
    resp = post_messages(gateway, _body("chat-then-backup", True))
    assert resp.status == 200, resp.text[:300]
    assert stream_text(sse_events(resp.body)) == "answered by the backup" and len(backup.requests) == 1


@pytest.mark.parametrize("kind", ["chat", "claude"])
def test_an_endless_stream_line_after_the_first_byte_ends_with_an_error_event(gateway, upstreams, kind):
    chat, claude = upstreams[0], upstreams[1]
    if kind == "chat":
        chat.reset(RawStream([*render_chunks(ChatReply(text="partial"))[:2], ENDLESS_LINE], done=False, hold_after=2))
        upstream = chat
    else:
        opening = render_message_events(MessageReply(text="partial"))[:4]
        claude.reset(RawSSE([*opening, b"event: content_block_delta\n" + ENDLESS_LINE], hold_after=len(opening)))
        upstream = claude
    resp = post_stream_then(gateway, _body(kind, True), upstream.release)
    assert resp.status == 200
    events = sse_events(resp.body)
    assert check_sse_grammar(events) == "error"
    assert EVENT_LIMIT in events[-1][1]["error"]["message"]
    _still_serving(gateway, chat)


@pytest.mark.parametrize("kind", ["chat", "claude"])
def test_a_json_answer_over_the_limit_is_a_529(gateway, upstreams, kind):
    chat, claude = upstreams[0], upstreams[1]
    huge = json.dumps({"padding": "a" * (MAX_ANSWER_BYTES + OVER)}).encode()
    (chat if kind == "chat" else claude).reset(RawBody(huge, "application/json"))
    resp = post_messages(gateway, _body(kind, False))
    assert resp.status == 529 and ANSWER_LIMIT in resp.json()["error"]["message"], resp.text[:300]
    _still_serving(gateway, chat)


# ---- the decoder's bound -------------------------------------------------------------------------------------


def test_the_decoder_refuses_an_event_over_its_limit_however_it_arrives():
    with pytest.raises(EventTooLarge):
        SSEDecoder(limit=100).feed(b"data: " + b"x" * 101)  # one line, no newline
    decoder = SSEDecoder(limit=100)
    with pytest.raises(EventTooLarge):
        for _ in range(30):
            decoder.feed(b"data: 12345\n")  # many short lines of one event that never ends


def test_the_decoder_limit_is_per_event():
    decoder = SSEDecoder(limit=100)
    frames = []
    for i in range(50):  # 50 events of 60 bytes: 3000 bytes in all, each under the limit
        frames += decoder.feed(b"data: " + str(i).encode() * 30 + b"\n\n")
    assert len(frames) == 50
