"""deploy/dragoman.yaml governs the keys README's compose and Kubernetes sections hand to clients
(DRAGOMAN_API_KEYS, which carry no developer or team): one key holding its concurrent streams is refused the
next with 429 while the other key is still served, and its budgets are counted. The file is served as shipped
except for its upstream (a scripted one on loopback) and its counters (in memory: the file's Redis host is
compose's)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import yaml

from dragoman.config.secrets import key_fingerprint
from tests.audit_helpers import headers, messages_body, route
from tests.deploy_files import TEAM_CONFIG, TEAM_ENV
from tests.gateway import Gateway, run_gateway
from tests.upstreams import ChatReply, ScriptedChatUpstream
from tests.upstreams.openai_chat import Gate

FIRST, SECOND = TEAM_ENV["DRAGOMAN_API_KEYS"].split(",")
ADMIN = TEAM_ENV["DRAGOMAN_ADMIN_KEYS"]


def _deploy_config(chat_url: str) -> str:
    config = yaml.safe_load(TEAM_CONFIG.read_text())
    for entry in config["routes"]:
        entry["upstream"] = route(entry["name"], chat_url, model=entry["upstream"]["model"])["upstream"]
    limits = config["governance"]["limits"]
    assert limits.pop("redis_url").startswith("redis://")
    limits["backend"] = "memory"
    return yaml.safe_dump(config, sort_keys=False)


@pytest.fixture()
def gateway() -> Iterator[tuple[Gateway, Gate]]:
    gate = Gate()
    with ScriptedChatUpstream() as upstream:
        upstream.reset(ChatReply(text="hello", usage=(10, 5, 0), gate=gate, gate_before=2))
        with run_gateway(_deploy_config(upstream.chat_url), env=TEAM_ENV) as gw:
            try:
                yield gw, gate
            finally:
                gate.open()


def _open_stream(gw: Gateway, key: str):  # noqa: ANN202
    """A streamed answer that has started and is held at the upstream's gate: it holds one stream slot."""
    held = gw.connection()
    held.request("POST", "/v1/messages", json.dumps(messages_body("claude-sonnet-4-5", stream=True)),
                 {**headers(key), "content-type": "application/json"})
    response = held.getresponse()
    assert response.status == 200, response.read()
    assert b"event: message_start" in response.read1(65536)
    return held


def test_a_dragoman_api_keys_key_is_held_to_the_deploy_configs_concurrent_stream_limit(gateway) -> None:
    gw, _ = gateway
    limit = yaml.safe_load(TEAM_CONFIG.read_text())["governance"]["limits"]["rules"][0]
    assert limit["scope"] == "key:*"
    held = [_open_stream(gw, FIRST) for _ in range(limit["concurrent_streams"])]
    refused = gw.request("POST", "/v1/messages", messages_body("claude-sonnet-4-5", stream=True), headers(FIRST))
    assert refused.status == 429
    assert f"key:{key_fingerprint(FIRST)} has {limit['concurrent_streams']} concurrent stream" in \
        refused.json()["error"]["message"]
    held.append(_open_stream(gw, SECOND))  # each key counts on its own
    for connection in held:
        connection.close()


def test_a_dragoman_api_keys_keys_spend_is_counted_against_its_own_and_the_global_budget(gateway) -> None:
    gw, gate = gateway
    gate.open()
    answer = gw.request("POST", "/v1/messages", messages_body("claude-sonnet-4-5"), headers(FIRST))
    assert answer.status == 200
    assert "anthropic-ratelimit-requests-limit" in answer.headers
    budgets = gw.request("GET", "/api/budgets", headers={"x-api-key": ADMIN}).json()["data"]
    assert {(b["scope"], b["period"]) for b in budgets} >= {("global", "month"),
                                                            (f"key:{key_fingerprint(FIRST)}", "day")}
