"""The loop shifts traffic over real sockets: a weighted route's primary candidate degrades on command (unknown
tool names, schema-violating arguments, empty answers, invalid tool JSON, cut streams) and is demoted within the
stated number of its calls (min_calls for a new candidate); traffic moves to the healthy candidate, probes keep
exactly `probe_share` of it on the degraded one; once it heals its probes bring it back; every request's record
says what the loop did, and no client request fails because of the loop.

Verdicts come from the verdicts branch's Assessor (dragoman/loop/assess.py), which the gateway feeds its
`verdict_sinks` (the scoreboard, the clusters) with: without it there is nothing to shift on."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import yaml

from tests.gateway import Gateway, run_gateway
from tests.routing_helpers import KEYS_ENV, post_messages, route, wait_until
from tests.upstreams import ChatReply, ErrorReply, RawStream, ScriptedChatUpstream

pytestmark = pytest.mark.timeout(120)

ADMIN = {"x-api-key": "adm-shift"}
SHAPE = "tools|8k|json|nothink"
MIN_CALLS = 4
PROBE_EVERY = 4  # probe_share 0.25
BASH = {"name": "Bash", "description": "Run a shell command",
        "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"],
                         "additionalProperties": False}}
HEALTHY = ChatReply(text="Listing.", tool_calls=[("call_ok", "Bash", json.dumps({"command": "ls"}))], model="gpt-a")


def _cut_stream() -> RawStream:
    return RawStream([{"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-a",
                       "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Half an ans"},
                                    "finish_reason": None}]}], done=False)


DEGRADED = {
    "unknown_tool": ChatReply(tool_calls=[("call_x", "Frobnicate", "{}")], model="gpt-a"),
    "schema_violation": ChatReply(tool_calls=[("call_x", "Bash", json.dumps({"cmd": "ls"}))], model="gpt-a"),
    "empty_answer": ChatReply(text="", usage=(10, 0, 0), model="gpt-a"),
    "invalid_tool_json": ChatReply(tool_calls=[("call_x", "Bash", 'not json at all')], model="gpt-a"),
}


def _config(a: ScriptedChatUpstream, b: ScriptedChatUpstream) -> str:
    return yaml.safe_dump({
        "routes": [route("a", a.chat_url, model="gpt-a"), route("b", b.chat_url, model="gpt-b"),
                   {"name": "w", "candidates": [{"route": "a", "weight": 50}, {"route": "b", "weight": 50}]}],
        "default_route": "w",
        "admin": {"keys": ["adm-shift"]},
        "audit": {"flush_interval": 0.05},
        "loop": {"shift": {"window": 10, "min_calls": MIN_CALLS, "demote_below": 0.5, "restore_above": 0.7,
                           "probe_share": 1 / PROBE_EVERY}},
    }, sort_keys=False)


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[ScriptedChatUpstream, ScriptedChatUpstream]]:
    with ScriptedChatUpstream() as a, ScriptedChatUpstream() as b:
        yield a, b


@pytest.fixture
def shifted(pair: tuple[ScriptedChatUpstream, ScriptedChatUpstream]) -> Iterator[tuple[Gateway, ScriptedChatUpstream,
                                                                                         ScriptedChatUpstream]]:
    a, b = pair
    a.reset(HEALTHY)
    b.reset(ChatReply(text="Listing.", tool_calls=[("call_b", "Bash", json.dumps({"command": "ls"}))], model="gpt-b"))
    with run_gateway(_config(a, b), env=KEYS_ENV) as gateway:
        yield gateway, a, b


def _ask(gateway: Gateway, stream: bool = False) -> int:
    body = {"model": "claude-sonnet-4-5", "max_tokens": 256, "tools": [BASH], "stream": stream,
            "messages": [{"role": "user", "content": "list the files"}]}
    return post_messages(gateway, body).status


def _scores(gateway: Gateway) -> dict:
    response = gateway.request("GET", "/api/scores?since=1h", headers=ADMIN)
    assert response.status == 200, response.body
    return response.json()


def _state(gateway: Gateway, route_name: str) -> str | None:
    states = {row["state"] for row in _scores(gateway)["data"] if row["route"] == route_name and row["shape"] == SHAPE}
    return "demoted" if states & {"demoted", "probing"} else states.pop() if states else None


def _until(gateway: Gateway, state: str, limit: int) -> int:
    """Send requests until route a's state is `state` (at most `limit`): how many it took; every one answered."""
    for sent in range(limit):
        if _state(gateway, "a") == state:
            return sent
        assert _ask(gateway) == 200
    wait_until(lambda: _state(gateway, "a") == state, 10, f"route a {state}")
    return limit


@pytest.mark.parametrize("degradation", sorted(DEGRADED))
def test_a_degraded_candidate_is_demoted_probed_and_restored(shifted, degradation: str) -> None:  # noqa: ANN001
    gateway, a, b = shifted
    a.script(DEGRADED[degradation])
    _until(gateway, "demoted", 60)
    (demotion,) = [e for e in _scores(gateway)["events"] if e["kind"] == "demoted"]
    assert (demotion["route"], demotion["shape"], demotion["calls"]) == ("a", SHAPE, MIN_CALLS)  # the stated bound
    assert demotion["score"] < 0.5

    # Demoted: every 4th request of the shape probes it, the rest go to b; all of them answer.
    before_a, before_b = len(a.requests), len(b.requests)
    assert [_ask(gateway) for _ in range(2 * PROBE_EVERY)] == [200] * (2 * PROBE_EVERY)
    assert (len(a.requests) - before_a, len(b.requests) - before_b) == (2, 2 * PROBE_EVERY - 2)

    # It heals: its probes pass, and it is restored (2 failed probes + 5 passing = 0.71 > 0.7: within 7 probes).
    a.script(HEALTHY)
    _until(gateway, "active", 7 * PROBE_EVERY + 8)
    kinds = [e["kind"] for e in _scores(gateway)["events"]]
    assert kinds == ["demoted", "restored"]

    def records() -> list[dict]:
        return gateway.request("GET", "/api/requests?since=1h&limit=1000", headers=ADMIN).json()["data"]

    def events() -> list[str]:
        return [event for record in records() for event in record["loop_events"]]

    # The audit writer commits every 0.5 s: the records of the last turns may not be in the store yet.
    wait_until(lambda: f"avoided: a (demoted for {SHAPE})" in events(), 10, "the avoided calls' records")
    events, records = events(), records()
    assert any(e.startswith(f"probe: a (demoted for {SHAPE}, score 0.00 over {MIN_CALLS} calls)") for e in events)
    assert all(record["status"] == 200 for record in records)
    assert any(degradation in record["verdict_kinds"] for record in records if record["route"] == "a")
    metrics = gateway.request("GET", "/metrics").body.decode()
    assert f'dragoman_loop_demotions_total{{route="a",shape="{SHAPE}"}} 1.0' in metrics
    assert f'dragoman_loop_restorations_total{{route="a",shape="{SHAPE}"}} 1.0' in metrics
    scores = [line for line in metrics.splitlines() if line.startswith("dragoman_loop_score{")
              and 'route="a"' in line and f'shape="{SHAPE}"' in line]
    assert scores and 0.0 <= float(scores[0].rsplit(" ", 1)[1]) <= 1.0  # read from the scoreboard at scrape time


def test_a_cut_stream_demotes_for_the_streamed_shape_only(shifted) -> None:  # noqa: ANN001
    gateway, a, _ = shifted
    a.script(_cut_stream())
    streamed = SHAPE.replace("json", "stream")
    for _ in range(60):
        _ask(gateway, stream=True)  # a cut stream reaches the client as an error event: the upstream's failure
        rows = [r for r in _scores(gateway)["data"] if r["route"] == "a"]
        if any(r["state"] != "active" and r["shape"] == streamed for r in rows):
            break
    assert [e["shape"] for e in _scores(gateway)["events"]] == [streamed]
    assert _state(gateway, "a") in (None, "active")  # JSON requests of the same tools shape are untouched


def test_a_candidate_that_is_down_fails_no_more_requests_once_its_breaker_opens() -> None:
    # Error answers get no verdict (nothing for the loop to demote): the breaker must steer the pick.
    with ScriptedChatUpstream() as a, ScriptedChatUpstream() as b:
        a.reset(ErrorReply(503, {"error": {"message": "down", "type": "server_error"}}))
        b.reset(ChatReply(text="hello", model="gpt-b"))
        config = yaml.safe_dump({
            "routes": [route("a", a.chat_url, model="gpt-a", retry={"attempts": 1},
                             breaker={"failures": 2, "cooldown": 600}),
                       route("b", b.chat_url, model="gpt-b"),
                       {"name": "w", "candidates": [{"route": "a", "weight": 50}, {"route": "b", "weight": 50}]}],
            "default_route": "w", "admin": {"keys": ["adm-shift"]}, "audit": {"flush_interval": 0.05},
        }, sort_keys=False)
        with run_gateway(config, env=KEYS_ENV) as gateway:
            body = {"model": "w", "max_tokens": 32, "messages": [{"role": "user", "content": "hi"}]}
            statuses = [post_messages(gateway, body).status for _ in range(40)]
            # Its two failures opened its breaker; from then on every request went to b and answered.
            assert len(a.requests) == 2 and statuses.count(200) == 38, statuses
            wait_until(lambda: len(_records(gateway)) == 40, 10, "40 audit records")
            events = [event for record in _records(gateway) for event in record["loop_events"]]
            assert "avoided: a (circuit breaker open)" in events


def _records(gateway: Gateway) -> list[dict]:
    return gateway.request("GET", "/api/requests?since=1h&limit=1000", headers=ADMIN).json()["data"]
