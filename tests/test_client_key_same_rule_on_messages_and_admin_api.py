"""One rule finds the key a client presents, on the Messages API and on the admin API alike: `x-api-key`, or
`Authorization: Bearer <key>` with the scheme in any case; anything else is a missing key (401), and every refusal
is the same Anthropic-shaped error body. An admin key is no API key (401); an API key is a user's, whose role
may not call the admin API (403)."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from tests.gateway import Gateway, RawResponse
from tests.upstreams import ChatReply, ScriptedChatUpstream

GATEWAY_KEY = "sk-gw-rule-3c9d1e"
ADMIN_KEY = "adm-rule-77f0a2"
MESSAGE = {"model": "gpt-5-via-gateway", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}


class Endpoint(NamedTuple):
    method: str
    path: str
    body: dict | None
    key: str  # the key it takes
    other_key: str  # a valid key of the other endpoint, which this one must refuse
    name: str  # how errors name its key

    def call(self, gateway: Gateway, headers: dict[str, str]) -> RawResponse:
        return gateway.request(self.method, self.path, self.body, headers=headers)


ENDPOINTS = [
    pytest.param(Endpoint("POST", "/v1/messages", MESSAGE, GATEWAY_KEY, ADMIN_KEY, "API key"), id="messages"),
    pytest.param(Endpoint("GET", "/api/requests", None, ADMIN_KEY, GATEWAY_KEY, "admin key"), id="admin-api"),
]
PRESENTED = [
    pytest.param(lambda key: {"x-api-key": key}, id="x-api-key"),
    pytest.param(lambda key: {"authorization": f"Bearer {key}"}, id="Bearer"),
    pytest.param(lambda key: {"authorization": f"bearer {key}"}, id="bearer"),
    pytest.param(lambda key: {"authorization": f"BEARER {key}"}, id="BEARER"),
]
NOT_PRESENTED = [
    pytest.param({}, id="no-header"),
    pytest.param({"authorization": "Basic c2stZ3ctcnVsZQ=="}, id="basic-scheme"),
    pytest.param({"authorization": "Token whatever"}, id="other-scheme"),
]


@pytest.fixture
def gateway(gateway_for, chat_upstream: ScriptedChatUpstream) -> Gateway:  # noqa: ANN001 - a fixture
    chat_upstream.script(ChatReply(text="ok"))
    return gateway_for(chat_upstream, auth_keys=[GATEWAY_KEY], env={"DRAGOMAN_ADMIN_KEYS": ADMIN_KEY})


def _error(response: RawResponse) -> dict:
    body = response.json()
    assert set(body) == {"type", "error"} and body["type"] == "error", body
    assert set(body["error"]) == {"type", "message"}, body
    return body["error"]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("header", PRESENTED)
def test_key_is_accepted_in_every_form(gateway: Gateway, endpoint: Endpoint, header) -> None:  # noqa: ANN001
    response = endpoint.call(gateway, header(endpoint.key))
    assert response.status == 200, response.text


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("headers", NOT_PRESENTED)
def test_no_key_in_a_known_form_is_a_missing_key(gateway: Gateway, endpoint: Endpoint, headers: dict) -> None:
    response = endpoint.call(gateway, headers)
    assert response.status == 401
    missing = f"missing {endpoint.name}: send it as x-api-key or Authorization: Bearer"
    assert _error(response) == {"type": "authentication_error", "message": missing}


def test_an_admin_key_is_no_api_key(gateway: Gateway) -> None:
    endpoint = ENDPOINTS[0].values[0]
    for headers in ({"x-api-key": ADMIN_KEY}, {"authorization": f"bearer {ADMIN_KEY}"}):
        response = endpoint.call(gateway, headers)
        assert response.status == 401
        assert _error(response) == {"type": "authentication_error", "message": "invalid API key"}


def test_an_api_key_is_known_on_the_admin_api_and_refused_there_by_its_role(gateway: Gateway) -> None:
    endpoint = ENDPOINTS[1].values[0]
    for headers in ({"x-api-key": GATEWAY_KEY}, {"authorization": f"bearer {GATEWAY_KEY}"}):
        response = endpoint.call(gateway, headers)
        assert response.status == 403
        assert _error(response) == {"type": "permission_error",
                                    "message": "this key's role is user: the admin API takes viewer and admin keys"}
