"""A client that leaves before the first byte takes its upstream call with it: 100 clients leaving during a 3 s
upstream wait used to leave 100 upstream connections open until the upstream answered. Now the gateway watches
for the client's disconnect while it waits on the upstream (streamed or not), cancels the upstream request at
once, and the audit record says 499 `client_disconnected`."""

from __future__ import annotations

import json
from typing import Iterator

import pytest

from tests.audit_helpers import ENV, all_records, config, headers, messages_body, route, wait_for
from tests.gateway import Gateway, run_gateway
from tests.upstreams import ChatReply, Hold, RawStream, ScriptedChatUpstream
from tests.upstreams.openai_chat import render_chunks

pytestmark = pytest.mark.timeout(60)

CLIENTS = 20
# Far longer than any wait below: only the client's leaving can end the upstream call before release().
PATIENT = {"connect": 5, "first_byte": 120, "idle": 120}


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedChatUpstream]:
    with ScriptedChatUpstream() as up:
        yield up


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('gone')}/audit.db"


@pytest.fixture(scope="module")
def gateway(upstream: ScriptedChatUpstream, store: str) -> Iterator[Gateway]:
    text = config([route("slow", upstream.base_url, timeout=PATIENT)], store=store)
    with run_gateway(text, env={**ENV, "DRAGOMAN_AUDIT_STORE": ""}) as gw:
        yield gw


def _held(body: dict) -> Hold | RawStream:
    """JSON: held before the answer's head; streamed: the head is sent, the first event held."""
    late = ChatReply(text="too late")
    return RawStream(render_chunks(late), hold_after=0) if body.get("stream") else Hold(then=late)


def test_clients_leaving_before_the_first_byte_close_their_upstream_connections(gateway, upstream, store):
    upstream.reset(_held)
    connections = []
    for i in range(CLIENTS):
        conn = gateway.connection(timeout=30)
        body = messages_body("slow", f"question {i}", stream=bool(i % 2))  # half streamed, half not
        conn.request("POST", "/v1/messages", json.dumps(body), {"content-type": "application/json", **headers(None)})
        connections.append(conn)
    upstream.wait_for_requests(CLIENTS)  # every request is upstream now, held there

    for conn in connections:
        conn.close()  # the clients leave before any byte of an answer
    assert upstream.wait_for_hangups(CLIENTS) == CLIENTS  # the gateway hung up on the upstream: no release needed

    def recorded() -> list[dict] | None:
        rows = [r for r in all_records(store) if r["status"] == 499]
        return rows if len(rows) >= CLIENTS else None

    gone = wait_for(recorded, 10, "a 499 record per client")
    assert len(gone) == CLIENTS
    assert {r["error_type"] for r in gone} == {"client_disconnected"}
    assert sorted(r["stream"] for r in gone) == [False] * (CLIENTS // 2) + [True] * (CLIENTS // 2)

    upstream.release()
    resp = gateway.request("POST", "/v1/messages", messages_body("slow"), headers(None))
    assert resp.status == 200 and resp.json()["content"][0]["text"] == "too late", resp.text
