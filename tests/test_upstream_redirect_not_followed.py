"""An upstream that answers 307 never gets the gateway to send its credential elsewhere: aiohttp, following a
redirect to another origin, strips only Authorization, so `x-api-key` (Anthropic) and `api-key` (Azure) went
along. Upstream calls follow no redirect; a 3xx is a 529 `overloaded_error` naming the target's host (never its
path or query, which may carry a token), retryable like a 5xx: a fallback route answers instead."""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.gateway import Gateway, run_gateway
from tests.routing_helpers import KEYS_ENV, config_yaml, post_messages, route
from tests.upstreams import ChatReply, Redirect, ScriptedChatUpstream
from tests.upstreams.anthropic_messages import ScriptedAnthropicUpstream

pytestmark = pytest.mark.timeout(30)

ONE_TRY = {"attempts": 1}
TOKEN = "sig=redirect-token-5e1f"
ENV = {**KEYS_ENV, "AZURE_PROD": "azure-upstream-key-c0ffee"}
# (route, the header that carries its credential, the credential)
KINDS = [
    ("openai", "authorization", "Bearer " + KEYS_ENV["OPENAI_PROD"]),
    ("anthropic", "x-api-key", KEYS_ENV["ANTHROPIC_PROD"]),
    ("azure", "api-key", ENV["AZURE_PROD"]),
]


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[ScriptedChatUpstream, ScriptedAnthropicUpstream, ScriptedChatUpstream]]:
    # `elsewhere` is the redirect target: another origin (another port) that records whatever reaches it.
    with ScriptedChatUpstream() as chat, ScriptedAnthropicUpstream() as claude, ScriptedChatUpstream() as elsewhere:
        yield chat, claude, elsewhere


@pytest.fixture(scope="module")
def gateway(servers) -> Iterator[Gateway]:
    chat, claude, _ = servers
    azure = route("azure", chat.base_url.removesuffix("/v1"), provider="azure_openai", api_key_ref="azure_prod",
                  retry=ONE_TRY)
    text = config_yaml([
        route("openai", chat.base_url, retry=ONE_TRY),
        route("anthropic", claude.base_url, provider="anthropic", api_key_ref="anthropic_prod",
              translation={"passthrough": True}, retry=ONE_TRY),
        azure,
        route("redirected-then-fallback", claude.base_url, provider="anthropic", api_key_ref="anthropic_prod",
              translation={"passthrough": True}, retry=ONE_TRY, fallbacks=["backup"]),
        route("backup", servers[2].base_url, retry=ONE_TRY),
    ])
    with run_gateway(text, env=ENV) as gw:
        yield gw


@pytest.fixture
def upstreams(servers) -> Iterator[tuple[ScriptedChatUpstream, ScriptedAnthropicUpstream, ScriptedChatUpstream]]:
    chat, claude, elsewhere = servers
    target = f"http://127.0.0.1:{elsewhere.port}/v1/chat/completions?{TOKEN}"
    chat.reset(Redirect(target))
    claude.reset(Redirect(target, status=308))
    elsewhere.reset(ChatReply(text="answered where the redirect pointed"))
    yield servers
    for server in servers:
        server.reset()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize(("route_name", "header", "credential"), KINDS, ids=[k[0] for k in KINDS])
def test_a_redirect_is_an_error_and_the_credential_stays_home(gateway, upstreams, route_name, header, credential, stream):
    chat, claude, elsewhere = upstreams
    resp = post_messages(gateway, {"model": route_name, "max_tokens": 32, "stream": stream,
                                   "messages": [{"role": "user", "content": "hi"}]})

    assert resp.status == 529, resp.text
    error = resp.json()["error"]
    assert error["type"] == "overloaded_error"
    assert f"redirected the request to 127.0.0.1:{elsewhere.port}" in error["message"], error
    assert TOKEN not in resp.text and "/v1/chat/completions" not in error["message"]
    origin = claude if route_name == "anthropic" else chat
    assert origin.requests[-1].headers[header] == credential  # the key went where it was configured to go…
    assert elsewhere.requests == []  # …and nowhere else: the answer came back without a request to the target


def test_a_redirect_before_the_first_byte_falls_back_to_the_next_route(gateway, upstreams):
    _, claude, elsewhere = upstreams
    resp = post_messages(gateway, {"model": "redirected-then-fallback", "max_tokens": 32,
                                   "messages": [{"role": "user", "content": "hi"}]})
    assert resp.status == 200, resp.text
    assert resp.json()["content"][0]["text"] == "answered where the redirect pointed"  # by `backup`, asked directly
    assert len(claude.requests) == 1
    assert [r.query for r in elsewhere.requests] == [""] and "x-api-key" not in elsewhere.requests[0].headers
