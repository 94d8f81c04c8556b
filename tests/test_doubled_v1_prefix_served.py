"""The widely copied setup ends ANTHROPIC_BASE_URL in /v1, so the SDK and Claude Code call /v1/v1/messages: every
endpoint is served under a doubled /v1 as under one, the gateway says once how to fix the client, and every
404 for an unknown path is logged with its method and path."""

from __future__ import annotations

import anthropic

from tests.gateway import Gateway
from tests.routing_helpers import wait_until
from tests.upstreams import ChatReply, ScriptedChatUpstream

HINT = "drop the /v1 suffix from ANTHROPIC_BASE_URL"


def _client(gateway: Gateway) -> anthropic.Anthropic:
    # What the guide's `export ANTHROPIC_BASE_URL="https://gateway.example.com/v1"` gives the SDK.
    return anthropic.Anthropic(base_url=gateway.base_url + "/v1", api_key="sk-client", max_retries=0, timeout=15)


def test_sdk_with_base_url_ending_in_v1_reaches_every_endpoint(gateway: Gateway, chat_upstream: ScriptedChatUpstream) -> None:
    chat_upstream.script(ChatReply(text="served under /v1/v1"))
    client = _client(gateway)
    message = client.messages.create(model="gpt-5-via-gateway", max_tokens=20, messages=[{"role": "user", "content": "hi"}])
    assert message.content[0].text == "served under /v1/v1"
    with client.messages.stream(model="gpt-5-via-gateway", max_tokens=20,
                                messages=[{"role": "user", "content": "hi"}]) as stream:
        assert stream.get_final_message().content[0].text == "served under /v1/v1"
    assert [r.path for r in chat_upstream.requests] == ["/v1/chat/completions"] * 2
    count = client.messages.count_tokens(model="gpt-5-via-gateway", messages=[{"role": "user", "content": "hello there"}])
    assert count.input_tokens > 0
    assert [m.id for m in client.models.list()] == ["gpt-5-via-gateway"]
    assert client.models.retrieve("gpt-5-via-gateway").id == "gpt-5-via-gateway"


def test_doubled_v1_hint_is_logged_once_per_process(gateway: Gateway, chat_upstream: ScriptedChatUpstream) -> None:
    chat_upstream.script(ChatReply(text="ok"))
    client = _client(gateway)
    for _ in range(3):
        client.messages.create(model="gpt-5-via-gateway", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    client.models.list()
    wait_until(lambda: HINT in gateway.stderr_text(), 5, "the doubled /v1 warning")
    log = gateway.stderr_text()
    assert log.count(HINT) == 1, log
    assert "WARNING" in next(line for line in log.splitlines() if HINT in line)


def test_unknown_path_is_a_404_logged_with_method_and_path(gateway: Gateway) -> None:
    for method, path in (("POST", "/v2/messages"), ("GET", "/v1/v1/nope"), ("POST", "/v2/messages")):
        response = gateway.request(method, path, {"x": 1} if method == "POST" else None)
        assert response.status == 404
        assert response.json()["error"]["type"] == "not_found_error"
    wait_until(lambda: "404 GET /v1/v1/nope" in gateway.stderr_text(), 5, "the 404 log line")
    log = gateway.stderr_text()
    assert log.count("404 POST /v2/messages: no such endpoint") == 1, log  # the repeat is not logged again
