"""Fuzzing over real HTTP: attacking Messages bodies (tests/fuzz_bodies.py) posted to one running gateway on
/v1/messages (streamed and not) and /v1/messages/count_tokens never get a 5xx. Every answer is 200 or 400 with
an Anthropic error body of the right type, no request logs an unhandled error, and the process still serves.

The gateway (tests/attack_gateway.py) has a Chat, a Responses and an Anthropic passthrough route on scripted
upstreams that always answer 200, so no 5xx is allowed but one the upstream decides (`upstream_decides`).
CI runs a fixed, derandomized set of examples
(800 bodies, ~20 s); DRAGOMAN_FUZZ_EXAMPLES=5000 runs that many random ones locally.
"""

from __future__ import annotations

import collections
import json
import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.attack_gateway import CHAT, PASSTHROUGH, ROUTES, AttackGateway, attack_gateway
from tests.fuzz_bodies import request_body
from tests.gateway import RawResponse

LONG_RUN = int(os.environ.get("DRAGOMAN_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=LONG_RUN or 800, deadline=None, derandomize=not LONG_RUN, database=None,
    suppress_health_check=list(HealthCheck), print_blob=True,
)
pytestmark = pytest.mark.timeout(max(120, LONG_RUN))

MODELS = [*ROUTES, "claude-sonnet-4-5"]  # an unknown name goes to the default route
# (path, stream): True/False sets a well-typed `stream`, None leaves it to the fuzzer (any type, or absent).
VARIANTS = [("/v1/messages", False), ("/v1/messages", True), ("/v1/messages", None), ("/v1/messages/count_tokens", None)]
SENT: collections.Counter = collections.Counter()  # (path, stream, attack, status) of every fuzzed request


@pytest.fixture(scope="module")
def gateway() -> Iterator[AttackGateway]:
    with attack_gateway() as gw:
        yield gw


def check_answer(response: RawResponse, path: str) -> None:
    """200 with the endpoint's success shape, or 400 with an Anthropic invalid_request_error: nothing else."""
    assert response.status in (200, 400), f"{response.status}: {response.text[:500]}"
    if response.status == 400:
        body = response.json()
        assert set(body) == {"type", "error"} and body["type"] == "error", body
        assert body["error"]["type"] == "invalid_request_error", body
        assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
    elif path.endswith("count_tokens"):
        count = response.json()["input_tokens"]
        assert isinstance(count, int) and count >= 1, response.text
    elif response.headers.get("content-type", "").startswith("text/event-stream"):
        assert "event: message_stop" in response.text and "event: error" not in response.text, response.text[-500:]
    else:
        assert response.json()["type"] == "message", response.text[:500]


@FUZZ
@given(data=st.data())
def test_fuzzed_body_gets_200_or_400(gateway, data):
    path, stream = data.draw(st.sampled_from(VARIANTS), label="endpoint")
    body = request_body(data, MODELS, stream)
    gateway.forget_requests()
    try:
        response = gateway.request("POST", path, body.raw, {"anthropic-version": "2023-06-01"}, timeout=60)
    except OSError as exc:
        pytest.fail(f"no answer ({exc}); gateway exit code {gateway.proc.poll()}:\n{gateway.stderr_text()[-3000:]}")
    SENT[path, stream, body.attack, response.status] += 1
    if not upstream_decides(response, body.raw):
        check_answer(response, path)


def upstream_decides(response: RawResponse, raw: bytes) -> bool:
    """The one 5xx allowed. The passthrough sends the client's bytes upstream untouched, so invalid UTF-8 where
    the gateway's decode does not look (a key or value it skips as unknown) goes up as sent and the upstream
    answers: Anthropic with a 400 the client gets; the scripted upstream cannot parse the body, answers JSON to
    a request that asked for a stream, and the gateway reports that as a 529."""
    if response.status != 529 or response.json()["error"]["type"] != "overloaded_error":
        return False
    try:
        raw.decode()
    except UnicodeDecodeError:
        return PASSTHROUGH.encode() in raw
    return False


def test_fuzzing_reached_every_endpoint_and_attack():
    """A fuzzer whose bodies all fail validation would pass without testing translation: guard against it."""
    if not SENT:
        pytest.skip("the fuzz test did not run in this session")
    served = {(path, stream) for path, stream, _, status in SENT if status == 200}
    assert served == set(VARIANTS), SENT
    for attack in ("none", "deep", "huge", "bytes"):
        assert any(key[2] == attack for key in SENT), SENT
    assert any(key[2] == "deep" and key[3] == 200 for key in SENT), "no deep body within the limit was served"
    assert any(key[2] == "huge" and key[3] == 200 for key in SENT), "no huge body was served"
    ok = sum(count for key, count in SENT.items() if key[3] == 200)
    assert ok >= sum(SENT.values()) // 3, SENT


def test_gateway_serves_and_logged_no_unhandled_error_after_fuzzing(gateway):
    assert gateway.proc.poll() is None
    assert gateway.request("GET", "/healthz").status == 200
    ok = gateway.request("POST", "/v1/messages", {"model": CHAT, "max_tokens": 5, "messages": [
        {"role": "user", "content": "hi"}]})
    assert ok.status == 200 and ok.json()["content"][0]["text"] == "ok"
    logged = gateway.stderr_text()
    assert "unhandled error" not in logged and "Traceback" not in logged, logged[-3000:]


def test_fuzz_bodies_reach_every_attack():
    """The strategy produces what the fuzzer claims to send (a guard against a strategy that drifts)."""
    seen: set[str] = set()

    @settings(max_examples=300, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def draw(data):
        raw = request_body(data, MODELS, None).raw
        seen.add("deep" if b"[[[[[[[[[[" in raw or b'{"a":{"a":{"a":' in raw else "flat")
        seen.add("huge" if len(raw) > 300_000 else "small")
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            seen.add("not json")
            return
        if isinstance(body, dict) and isinstance(body.get("messages"), list):
            seen.add("messages list")
            blocks = [b for m in body["messages"] if isinstance(m, dict) and isinstance(m.get("content"), list)
                      for b in m["content"] if isinstance(b, dict)]
            seen.update(f"block {b['type']}" for b in blocks if b.get("type") in ("image", "tool_result", "tool_use"))
        if not isinstance(body, dict) or not isinstance(body.get("max_tokens"), int):
            seen.add("wrong or missing max_tokens")

    draw()
    assert seen >= {"deep", "flat", "huge", "small", "not json", "messages list", "wrong or missing max_tokens",
                    "block image", "block tool_result", "block tool_use"}, seen
