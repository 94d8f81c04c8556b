"""An upstream's answer must be what was asked for: JSON for a JSON request, text/event-stream for a streamed one,
on every upstream kind. A passthrough upstream answering 200 with an HTML page (a proxy's login page, a captive
portal) used to be relayed as 200 `application/json`; now a wrong content type is a retryable 529, like a 5xx:
the next candidate may answer properly."""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.anthropic_events import sse_events
from tests.gateway import Gateway, run_gateway
from tests.routing_helpers import KEYS_ENV, config_yaml, post_messages, route, stream_text
from tests.upstreams import ChatReply, RawBody, ScriptedChatUpstream
from tests.upstreams.anthropic_messages import ScriptedAnthropicUpstream
from tests.upstreams.openai_responses import ScriptedResponsesUpstream

pytestmark = pytest.mark.timeout(30)

ONE_TRY = {"attempts": 1}
HTML = RawBody(b"<!doctype html><html><body>Please sign in</body></html>", "text/html; charset=utf-8")
JSON_BODY = RawBody(b'{"id":"x","object":"chat.completion","choices":[]}', "application/json")
SSE_BODY = RawBody(b'data: {"choices":[]}\n\n', "text/event-stream")


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[ScriptedChatUpstream, ScriptedAnthropicUpstream, ScriptedResponsesUpstream, ScriptedChatUpstream]]:
    with ScriptedChatUpstream() as chat, ScriptedAnthropicUpstream() as claude, ScriptedResponsesUpstream() as responses, \
            ScriptedChatUpstream() as backup:
        yield chat, claude, responses, backup


@pytest.fixture(scope="module")
def gateway(servers) -> Iterator[Gateway]:
    chat, claude, responses, backup = servers
    passthrough = dict(provider="anthropic", api_key_ref="anthropic_prod", translation={"passthrough": True})
    text = config_yaml([
        route("chat", chat.base_url, retry=ONE_TRY),
        route("claude", claude.base_url, retry=ONE_TRY, **passthrough),
        route("responses", responses.responses_url, retry=ONE_TRY),
        route("claude-then-backup", claude.base_url, retry=ONE_TRY, fallbacks=["backup"], **passthrough),
        route("backup", backup.base_url, retry=ONE_TRY),
    ])
    with run_gateway(text, env=KEYS_ENV) as gw:
        yield gw


@pytest.fixture
def upstreams(servers) -> Iterator[dict[str, ScriptedChatUpstream]]:
    chat, claude, responses, backup = servers
    backup.reset(ChatReply(text="answered by the backup"))
    yield {"chat": chat, "claude": claude, "responses": responses, "backup": backup}
    for server in servers:
        server.reset()


def _ask(gateway: Gateway, model: str, stream: bool):
    return post_messages(gateway, {"model": model, "max_tokens": 32, "stream": stream,
                                   "messages": [{"role": "user", "content": "hi"}]})


# (route, stream, what the upstream answers 200 with, the content type the error names, what was wanted)
WRONG = [
    ("claude", False, HTML, "text/html", "JSON"),
    ("chat", False, HTML, "text/html", "JSON"),
    ("responses", False, HTML, "text/html", "JSON"),
    ("chat", False, SSE_BODY, "text/event-stream", "JSON"),
    ("claude", True, HTML, "text/html", "text/event-stream"),
    ("chat", True, JSON_BODY, "application/json", "text/event-stream"),
    ("responses", True, HTML, "text/html", "text/event-stream"),
]


@pytest.mark.parametrize(("route_name", "stream", "reply", "got", "wanted"), WRONG,
                         ids=[f"{r}-{'stream' if s else 'json'}-{g}" for r, s, _, g, _ in WRONG])
def test_a_wrong_content_type_is_a_retryable_error(gateway, upstreams, route_name, stream, reply, got, wanted):
    upstreams[route_name].reset(reply)
    resp = _ask(gateway, route_name, stream)
    assert resp.status == 529, resp.text
    assert resp.headers["content-type"] == "application/json" and resp.headers.get("x-should-retry") == "true"
    error = resp.json()["error"]
    assert error["type"] == "overloaded_error"
    assert f"answered with content type {got}, not {wanted}" in error["message"], error
    assert "sign in" not in resp.text


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_an_html_page_from_a_passthrough_upstream_falls_back_to_the_next_route(gateway, upstreams, stream):
    upstreams["claude"].reset(HTML)
    resp = _ask(gateway, "claude-then-backup", stream)
    assert resp.status == 200, resp.text
    text = stream_text(sse_events(resp.body)) if stream else resp.json()["content"][0]["text"]
    assert text == "answered by the backup"


def test_a_passthrough_json_answer_that_is_not_json_is_an_error(gateway, upstreams):
    upstreams["claude"].reset(RawBody(b"<html>not json at all</html>", "application/json"))
    resp = _ask(gateway, "claude", False)
    assert resp.status == 529 and "sent an answer that is not JSON" in resp.json()["error"]["message"], resp.text
