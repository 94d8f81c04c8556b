"""An upstream that quotes the gateway's key in an error ("Incorrect API key provided: sk-…", as OpenAI does in
a mid-stream error chunk) never gets the key to the client, the gateway's log, the audit record or a span: every
upstream error text, from an HTTP body, a Chat error chunk, a Responses failure or a relayed Anthropic `error`
event, passes the same redaction. Its message still reaches the client, with the key replaced by [REDACTED].
Redaction comes before the message is cut to its length: a key straddling the cut is not shown in part, and a huge
text is redacted through a bounded window."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import yaml

import dragoman.redaction
from dragoman.redaction import REDACTED, redact, redact_cut
from tests.anthropic_events import check_sse_grammar, sse_events
from tests.audit_helpers import all_records, assert_no_secrets, wait_for, wait_record
from tests.gateway import Gateway, RawResponse, run_gateway
from tests.otlp_receiver import otlp_receiver
from tests.routing_helpers import post_messages, post_stream_then, route
from tests.upstreams import ErrorReply, RawBody, RawStream, ScriptedChatUpstream
from tests.upstreams.anthropic_messages import MessageReply, RawSSE, ScriptedAnthropicUpstream, render_message_events
from tests.upstreams.openai_responses import ResponsesReply, ScriptedResponsesUpstream, render_events
from tests.upstreams.openai_responses import sse_events as responses_sse

pytestmark = pytest.mark.timeout(60)

OPENAI_KEY = "sk-proj-leakcheck-0d7c1e9a4b"
ANTHROPIC_KEY = "sk-ant-api03-leakcheck-77aa11bb22"
AZURE_STYLE_KEY = "3f9c0d7e5b2a4c6d8e1f0a2b3c4d5e6f"  # no sk- prefix: only the route's own secret can catch it
SECRETS = (OPENAI_KEY, ANTHROPIC_KEY, AZURE_STYLE_KEY)
ENV = {"OPENAI_PROD": OPENAI_KEY, "ANTHROPIC_PROD": ANTHROPIC_KEY, "RESPONSES_PROD": AZURE_STYLE_KEY,
       "DRAGOMAN_AUDIT_STORE": "", "OTEL_BSP_SCHEDULE_DELAY": "50",
       "OTEL_EXPORTER_OTLP_HEADERS": "", "OTEL_EXPORTER_OTLP_TRACES_HEADERS": ""}
ONE_TRY = {"attempts": 1}


def _wrong_key(key: str) -> str:
    return f"Incorrect API key provided: {key}. You can find your API key at https://platform.openai.com/account/api-keys."


def _chat_error_chunk(key: str) -> dict:
    return {"error": {"message": _wrong_key(key), "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}}


CHAT_TEXT = {"id": "c1", "object": "chat.completion.chunk", "model": "gpt-5",
             "choices": [{"index": 0, "delta": {"role": "assistant", "content": "partial"}, "finish_reason": None}]}


def _anthropic_error_event(key: str, error_type: str = "authentication_error") -> bytes:
    body = {"type": "error", "error": {"type": error_type, "message": _wrong_key(key)}, "request_id": "req_up"}
    return f"event: error\ndata: {json.dumps(body)}\n\n".encode()


@dataclass
class SpanSink:
    """An OTLP/HTTP receiver keeping every export as raw (decompressed) bytes: a key leaked anywhere in a span,
    attribute or status message shows up in them."""

    posts: list[bytes]
    lock: threading.Lock

    def text(self) -> str:
        with self.lock:
            return b"".join(self.posts).decode("latin-1")


@pytest.fixture(scope="module")
def spans() -> Iterator[tuple[SpanSink, int]]:
    sink = SpanSink([], threading.Lock())

    def on_export(data: bytes, headers: dict[str, str]) -> None:
        with sink.lock:
            sink.posts.append(data)

    with otlp_receiver(on_export) as port:
        yield sink, port


@dataclass
class Setup:
    gateway: Gateway
    store: str
    chat: ScriptedChatUpstream
    claude: ScriptedAnthropicUpstream
    responses: ScriptedResponsesUpstream


@pytest.fixture(scope="module")
def setup(spans, tmp_path_factory) -> Iterator[Setup]:
    _, port = spans
    store = f"sqlite:///{tmp_path_factory.mktemp('redaction')}/audit.db"
    with ScriptedChatUpstream() as chat, ScriptedAnthropicUpstream() as claude, ScriptedResponsesUpstream() as responses:
        routes = [
            route("chat", chat.base_url, retry=ONE_TRY),
            route("claude", claude.base_url, provider="anthropic", model="claude-opus-4-1", api_key_ref="anthropic_prod",
                  translation={"passthrough": True}, retry=ONE_TRY),
            route("responses", responses.responses_url, api_key_ref="responses_prod", retry=ONE_TRY),
        ]
        text = yaml.safe_dump({
            "audit": {"store": store, "flush_interval": 0.05},
            "tracing": {"enabled": True, "otlp_endpoint": f"http://127.0.0.1:{port}/v1/traces", "capture_bodies": True},
            "routes": routes,
        }, sort_keys=False)
        with run_gateway(text, env=ENV) as gw:
            yield Setup(gw, store, chat, claude, responses)


def _scripted(setup: Setup, case: str) -> tuple[str, bool]:
    """Script the upstream for `case`; (route, stream) to ask for."""
    if case == "chat_http_body":
        setup.chat.reset(ErrorReply(500, _chat_error_chunk(OPENAI_KEY)))
        return "chat", False
    if case == "chat_error_chunk_first":
        setup.chat.reset(RawStream([_chat_error_chunk(OPENAI_KEY)], done=False))
        return "chat", True
    if case == "chat_error_chunk_later":
        setup.chat.reset(RawStream([CHAT_TEXT, _chat_error_chunk(OPENAI_KEY)], done=False, hold_after=1))
        return "chat", True
    if case == "passthrough_error_event_first":
        # an api_error: its text is relayed (an authentication_error's never is: the gateway's own message, a 502)
        setup.claude.reset(RawSSE([_anthropic_error_event(ANTHROPIC_KEY, "api_error")]))
        return "claude", True
    if case == "passthrough_error_event_later":
        opening = render_message_events(MessageReply(text="partial"))[:4]  # message_start … first delta
        setup.claude.reset(RawSSE([*opening, _anthropic_error_event(ANTHROPIC_KEY)], hold_after=len(opening)))
        return "claude", True
    if case == "responses_failed_answer":
        failed = {"id": "resp_1", "object": "response", "status": "failed", "model": "gpt-5", "output": [],
                  "error": {"code": "server_error", "message": _wrong_key(AZURE_STYLE_KEY)}}
        setup.responses.reset(RawBody(json.dumps(failed).encode(), "application/json"))
        return "responses", False
    if case == "responses_error_event_later":
        opening = render_events(ResponsesReply(text="partial"))[:-1]
        error = {"type": "error", "code": "invalid_api_key", "message": _wrong_key(AZURE_STYLE_KEY), "sequence_number": 99}
        setup.responses.reset(RawStream(responses_sse([*opening, error]), hold_after=len(opening)))
        return "responses", True
    raise AssertionError(case)


# (case, status the client gets, whether the message arrives in an `error` event after the first byte)
CASES = [
    ("chat_http_body", 529, False),
    ("chat_error_chunk_first", 529, False),
    ("chat_error_chunk_later", 200, True),
    ("passthrough_error_event_first", 529, False),
    ("passthrough_error_event_later", 200, True),
    ("responses_failed_answer", 529, False),
    ("responses_error_event_later", 200, True),
]


@pytest.mark.parametrize(("case", "status", "in_stream"), CASES, ids=[c[0] for c in CASES])
def test_a_key_quoted_by_the_upstream_reaches_no_client_log_record_or_span(setup: Setup, spans, case, status, in_stream):
    sink, _ = spans
    route_name, stream = _scripted(setup, case)
    body = {"model": route_name, "max_tokens": 64, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    resp = _stream_then_release(setup, body) if in_stream else post_messages(setup.gateway, body)
    assert resp.status == status, resp.text
    request_id = resp.headers["request-id"]
    if in_stream:
        events = sse_events(resp.body)
        assert check_sse_grammar(events) == "error"
        message = events[-1][1]["error"]["message"]
    else:
        message = resp.json()["error"]["message"]
        # the WARNING line the gateway logs for a 529 quotes the same redacted message
        wait_for(lambda: request_id in setup.gateway.stderr_text(), 10, "the gateway's log line")
        line = next(ln for ln in setup.gateway.stderr_text().splitlines() if request_id in ln)
        assert "WARNING" in line and REDACTED in line, line
    assert "Incorrect API key provided" in message and REDACTED in message, message  # relayed, not swallowed
    assert_no_secrets(resp.text, "the client's answer", SECRETS)

    record = wait_record(setup.store, request_id)
    assert record["status"] == status
    wait_for(lambda: request_id in sink.text(), 10, f"the span of {request_id}")
    assert_no_secrets(setup.gateway.stderr_text(), "the gateway's log", SECRETS)
    assert_no_secrets(json.dumps(all_records(setup.store)), "the audit store", SECRETS)
    assert_no_secrets(sink.text(), "the exported spans", SECRETS)


def _stream_then_release(setup: Setup, body: dict) -> RawResponse:
    """The error then comes after the first byte, whatever the reads' timing."""
    return post_stream_then(setup.gateway, body, lambda: [u.release() for u in (setup.chat, setup.claude, setup.responses)])


def test_a_clean_passthrough_error_event_is_relayed_byte_for_byte(setup: Setup):
    event = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    opening = render_message_events(MessageReply(text="partial"))[:4]
    setup.claude.reset(RawSSE([*opening, event], hold_after=len(opening)))
    resp = _stream_then_release(setup, {"model": "claude", "max_tokens": 64, "stream": True,
                                        "messages": [{"role": "user", "content": "hi"}]})
    assert resp.status == 200 and resp.body == b"".join(opening) + event


def test_redact_hides_the_route_secret_and_half_masked_keys():
    assert redact(_wrong_key(AZURE_STYLE_KEY), AZURE_STYLE_KEY) == _wrong_key(REDACTED)
    masked = "Incorrect API key provided: sk-proj-********************************************2b3c."
    assert "2b3c" not in redact(masked) and REDACTED in redact(masked)
    assert redact("tool name shortened: mcp__github__create_pull_request", "sk-x") == (
        "tool name shortened: mcp__github__create_pull_request"
    )


# The upstream's message is cut at 1000 characters: the key starts 14 characters before the cut.
ACROSS_THE_CUT = "x" * 985 + " " + AZURE_STYLE_KEY + " tail"


@pytest.mark.parametrize("reply", [
    ErrorReply(400, {"error": {"message": ACROSS_THE_CUT, "type": "invalid_request_error"}}),
    RawBody(ACROSS_THE_CUT.encode(), "text/plain", status=500),
], ids=["json_message", "text_body"])
def test_a_key_straddling_the_message_cut_is_not_shown_in_part(setup: Setup, spans, reply):
    sink, _ = spans
    setup.responses.reset(reply)
    resp = post_messages(setup.gateway, {"model": "responses", "max_tokens": 64,
                                         "messages": [{"role": "user", "content": "hi"}]})
    assert resp.status in (400, 529), resp.text
    message = resp.json()["error"]["message"]
    assert message.endswith("x " + REDACTED) or (" " + REDACTED + " ") in message, message
    request_id = resp.headers["request-id"]
    wait_record(setup.store, request_id)
    wait_for(lambda: request_id in sink.text(), 10, f"the span of {request_id}")
    head = AZURE_STYLE_KEY[:8]  # what the cut would have left of it
    for where, text in [("the client's answer", resp.text), ("the gateway's log", setup.gateway.stderr_text()),
                        ("the audit store", json.dumps(all_records(setup.store))), ("the exported spans", sink.text())]:
        assert head not in text, f"{where} holds the key's first characters"


@pytest.mark.parametrize("start", range(990, 1000))  # the key begins 10 to 1 characters before the cut
def test_redact_cut_redacts_a_secret_at_any_offset_before_cutting(start):
    text = "x" * start + AZURE_STYLE_KEY + "y" * 5000
    shown = redact_cut(text, 1000, AZURE_STYLE_KEY)
    assert len(shown) == 1000 and AZURE_STYLE_KEY[:4] not in shown and REDACTED[:1] in shown


def test_redact_cut_shows_nothing_a_shrinking_redaction_pulls_in_from_past_its_window():
    # Long secrets back to back: each one redacted pulls later text forward, up to the window's end, where a secret
    # is cut in two and not recognised. That cut-off start must not be shown.
    secret = "Q" + "0123456789abcdef" * 12
    shown = redact_cut(secret * 200, 1000, secret)
    assert secret[:8] not in shown and set(shown.replace(REDACTED, "")) == set()


def test_redact_cut_reads_a_bounded_window_of_a_huge_text(monkeypatch):
    read = []
    real = dragoman.redaction.redact
    monkeypatch.setattr(dragoman.redaction, "redact", lambda text, secret=None: read.append(len(text)) or real(text, secret))
    shown = redact_cut("z" * (16 << 20) + " " + OPENAI_KEY, 1000, OPENAI_KEY)
    assert shown == "z" * 1000 and read and max(read) < 10_000
