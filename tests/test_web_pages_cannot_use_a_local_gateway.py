"""With auth off (the zero-config default), a web page must not be able to use a gateway on 127.0.0.1
(dragoman/request_guard.py), against a real gateway process:

- a cross-origin POST with `content-type: text/plain` (sent by browsers without a CORS preflight) gets 403, and
  is audited like any refused Messages request;
- a POST that is not `application/json` gets 400, whatever its origin;
- a DNS-rebinding page's Host (its own name, resolved to 127.0.0.1) gets 403; localhost, 127.0.0.1 and [::1]
  with the port are served, and so is a name listed in `server.allowed_hosts`;
- an origin listed in `server.cors_origins` gets its preflight answered and CORS headers on the answer;
- the anthropic SDK, which sends no Origin, is served as before.
"""

from __future__ import annotations

import json
from typing import Iterator

import anthropic
import pytest

from tests.audit_helpers import wait_record
from tests.gateway import ROUTE_NAME, UPSTREAM_ENV, Gateway, run_gateway
from tests.http_raw import assert_anthropic_error, config_with_server
from tests.routing_helpers import USER_HI
from tests.upstreams import ChatReply, ScriptedChatUpstream

ALLOWED_ORIGIN = "https://app.example.com"
ALLOWED_HOST = "gateway.internal"
BODY = json.dumps({"model": ROUTE_NAME, "max_tokens": 16, "messages": USER_HI})


@pytest.fixture
def upstream(chat_upstream: ScriptedChatUpstream) -> ScriptedChatUpstream:
    chat_upstream.reset(ChatReply(text="hello"))
    return chat_upstream


@pytest.fixture(scope="module")
def configured(_module_chat_upstream: ScriptedChatUpstream) -> Iterator[Gateway]:
    text = config_with_server(_module_chat_upstream.chat_url, cors_origins=[ALLOWED_ORIGIN], allowed_hosts=[ALLOWED_HOST])
    with run_gateway(text, env=UPSTREAM_ENV) as gateway:
        yield gateway


def _post(gateway: Gateway, headers: dict[str, str]):  # noqa: ANN202 - a RawResponse
    return gateway.request("POST", "/v1/messages", BODY, {"anthropic-version": "2023-06-01", **headers})


def test_cross_origin_text_plain_post_is_refused(gateway: Gateway, upstream: ScriptedChatUpstream) -> None:
    response = _post(gateway, {"origin": "http://evil.example", "content-type": "text/plain"})
    assert_anthropic_error(response, 403, "permission_error")
    assert "cors_origins" in response.json()["error"]["message"]
    assert upstream.requests == []


def test_refused_messages_request_is_audited(gateway: Gateway, upstream: ScriptedChatUpstream) -> None:
    response = _post(gateway, {"origin": "http://evil.example"})
    assert response.status == 403
    record = wait_record(gateway.audit_store, response.headers["request-id"])
    assert (record["status"], record["error_type"]) == (403, "permission_error"), record


def test_any_unlisted_origin_is_refused_even_with_json(gateway: Gateway, upstream: ScriptedChatUpstream) -> None:
    for origin in ("http://evil.example", "null", f"http://127.0.0.1:{gateway.port}"):
        assert_anthropic_error(_post(gateway, {"origin": origin}), 403, "permission_error")
    assert upstream.requests == []


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                          "application/jsonx", None])
def test_post_that_is_not_json_is_refused(gateway: Gateway, upstream: ScriptedChatUpstream, content_type: str | None) -> None:
    conn = gateway.connection()
    try:
        conn.putrequest("POST", "/v1/messages")
        if content_type is not None:
            conn.putheader("content-type", content_type)
        conn.putheader("content-length", str(len(BODY)))
        conn.endheaders(BODY.encode())
        response = conn.getresponse()
        status, body = response.status, json.loads(response.read())
    finally:
        conn.close()
    assert status == 400 and body["error"]["type"] == "invalid_request_error", body
    assert "application/json" in body["error"]["message"]
    assert upstream.requests == []


def test_json_with_parameters_is_served(gateway: Gateway, upstream: ScriptedChatUpstream) -> None:
    response = _post(gateway, {"content-type": "Application/JSON; charset=utf-8"})
    assert response.status == 200, response.text
    assert response.json()["content"][0]["text"] == "hello"


def test_dns_rebinding_host_is_refused(gateway: Gateway, upstream: ScriptedChatUpstream) -> None:
    for host in (f"evil.example:{gateway.port}", "evil.example", f"{ALLOWED_HOST}:{gateway.port}",
                 f"localhost.evil.example:{gateway.port}"):
        assert_anthropic_error(_post(gateway, {"host": host}), 403, "permission_error")
        assert_anthropic_error(gateway.request("GET", "/v1/models", headers={"host": host}), 403, "permission_error")
    assert upstream.requests == []


def test_loopback_names_with_the_port_are_served(gateway: Gateway, upstream: ScriptedChatUpstream) -> None:
    for host in (f"127.0.0.1:{gateway.port}", f"localhost:{gateway.port}", f"[::1]:{gateway.port}", "localhost",
                 f"LOCALHOST:{gateway.port}"):
        response = _post(gateway, {"host": host})
        assert response.status == 200, (host, response.text)


def test_configured_host_is_served_on_any_port(configured: Gateway, upstream: ScriptedChatUpstream) -> None:
    for host in (f"{ALLOWED_HOST}:{configured.port}", f"{ALLOWED_HOST}:9443", ALLOWED_HOST):
        assert _post(configured, {"host": host}).status == 200, host
    assert_anthropic_error(_post(configured, {"host": "other.internal"}), 403, "permission_error")


def test_configured_origin_gets_preflight_and_cors_headers(configured: Gateway, upstream: ScriptedChatUpstream) -> None:
    preflight = configured.request("OPTIONS", "/v1/messages", headers={
        "origin": ALLOWED_ORIGIN, "access-control-request-method": "POST",
        "access-control-request-headers": "content-type, x-api-key, anthropic-version"})
    assert preflight.status == 204, preflight.text
    assert preflight.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert preflight.headers["access-control-allow-headers"] == "content-type, x-api-key, anthropic-version"

    response = _post(configured, {"origin": ALLOWED_ORIGIN})
    assert response.status == 200, response.text
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "request-id" in response.headers["access-control-expose-headers"]

    refused = configured.request("OPTIONS", "/v1/messages", headers={
        "origin": "https://other.example.com", "access-control-request-method": "POST"})
    assert_anthropic_error(refused, 403, "permission_error")
    assert "access-control-allow-origin" not in refused.headers


def test_sdk_sends_no_origin_and_is_served(gateway: Gateway, upstream: ScriptedChatUpstream) -> None:
    with anthropic.Anthropic(base_url=gateway.base_url, api_key="unused", max_retries=0, timeout=10) as client:
        message = client.messages.create(model=ROUTE_NAME, max_tokens=16, messages=USER_HI)
    assert message.content[0].text == "hello"
