"""End to end over real sockets: an upstream that numbers its calls per answer (`call_0` in every answer) serves two
clients at once; each client's refusal in its next turn lands on its own earlier call's record, never on the other
client's, because the ids the clients see are unique to each answer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from dragoman.loop import verdict as V
from dragoman.observe.stores import open_store
from tests.audit_helpers import ENV, FAST, NO_BREAKER, NO_RETRY, headers
from tests.gateway import Gateway, run_gateway
from tests.upstreams import ChatReply, ScriptedChatUpstream
from tests.waiting import wait_for

pytestmark = pytest.mark.timeout(60)

ROUTE = "chat-route"
READ = {"name": "Read", "description": "Read a file",
        "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}},
                         "required": ["file_path"]}}
REFUSED = "<tool_use_error>InputValidationError: Read failed</tool_use_error>"


@pytest.fixture
def setup(tmp_path) -> Iterator[tuple[Gateway, ScriptedChatUpstream, str]]:
    store = f"sqlite:///{tmp_path / 'audit.db'}"
    with ScriptedChatUpstream() as chat:
        route = {"name": ROUTE, "upstream": {"provider": "openai", "model": "gpt-5", "endpoint": chat.base_url,
                                             "api_key_ref": "openai_prod", "timeout": FAST},
                 "retry": NO_RETRY, "breaker": NO_BREAKER}
        text = yaml.safe_dump({"audit": {"store": store, "flush_interval": 0.05}, "loop": {"enabled": True},
                               "routes": [route]}, sort_keys=False)
        with run_gateway(text, env=ENV) as gateway:
            yield gateway, chat, store


def _post(gateway: Gateway, messages: list[dict]) -> tuple[str, dict]:
    body = {"model": ROUTE, "max_tokens": 256, "tools": [READ], "messages": messages}
    resp = gateway.request("POST", "/v1/messages", body, headers(None))
    assert resp.status == 200, resp.body
    return resp.headers["request-id"], json.loads(resp.body)


def _next_turns(store: str, request_ids: list[str]) -> dict[str, str | None]:
    opened = open_store(store, migrate=False)

    def settled() -> dict[str, str | None] | None:
        rows = {r["request_id"]: r["next_turn"] for r in opened.query_requests({}, limit=100)}
        return rows if all(rows.get(i) is not None for i in request_ids) else None

    try:
        return wait_for(settled, 10, "the next turns attributed")
    finally:
        opened.close()


def test_two_clients_whose_answers_both_use_call_0_are_each_attributed_their_own_call(setup) -> None:
    gateway, chat, store = setup
    chat.reset([ChatReply(tool_calls=[("call_0", "Read", '{"file_path": "/a.txt"}')]),
                ChatReply(tool_calls=[("call_0", "Read", '{"file_path": "/b.txt"}')]),
                ChatReply(text="Fixing it."), ChatReply(text="Done.")])
    asks = {"a": [{"role": "user", "content": "read a"}], "b": [{"role": "user", "content": "read b"}]}
    with ThreadPoolExecutor(2) as pool:  # both clients' first turns at once
        firsts = dict(zip(asks, pool.map(lambda messages: _post(gateway, messages), asks.values())))
    calls = {client: next(b for b in answer["content"] if b["type"] == "tool_use")
             for client, (_, answer) in firsts.items()}
    assert calls["a"]["id"] != calls["b"]["id"]  # each answer's own id, though the upstream said call_0 twice
    # Client a's call is refused; client b's worked.
    results = {"a": {"type": "tool_result", "tool_use_id": calls["a"]["id"], "content": REFUSED, "is_error": True},
               "b": {"type": "tool_result", "tool_use_id": calls["b"]["id"], "content": "contents of b"}}
    for client in ("a", "b"):
        _post(gateway, [*asks[client], {"role": "assistant", "content": [calls[client]]},
                        {"role": "user", "content": [results[client]]}])
    first_a, first_b = firsts["a"][0], firsts["b"][0]
    assert {k: v for k, v in _next_turns(store, [first_a, first_b]).items() if k in (first_a, first_b)} == {
        first_a: V.CLIENT_REFUSED, first_b: "ok"}
