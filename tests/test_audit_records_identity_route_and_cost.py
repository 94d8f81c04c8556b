"""Each request's audit record says who sent it, what they asked for, where it went and what it cost, on SQLite
and on PostgreSQL: the key's identity over the client's headers, identity from headers and from Claude Code's
metadata, the policy and branch that chose the route, every candidate tried, tokens, price (a route's override
or the built-in table), notes and latencies. Records are read back through the store API and their fields
asserted one by one."""

from __future__ import annotations

import json
import time

import anthropic
import pytest

from dragoman.config.secrets import key_fingerprint
from tests.anthropic_events import sse_events
from tests.audit_gateway import CHUNK_DELAY, USAGE, AuditEnv, dated, post, unique
from tests.audit_helpers import (
    ALICE_KEY,
    BUILTIN,
    GPT5_MINI,
    OVERRIDE,
    PLAIN_KEY,
    POLICY,
    PRICED,
    SMALL_BRANCH,
    assert_sane_latencies,
    cost,
    messages_body,
    wait_record,
)
from tests.shared_fixtures import CLAUDE_CODE_FIXTURES

pytestmark = pytest.mark.timeout(30)


def _sdk(audit_env: AuditEnv, key: str, extra: dict[str, str] | None = None) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=audit_env.gateway.base_url, api_key=key, max_retries=0, timeout=20,
                               default_headers=extra or {})


def test_key_identity_wins_over_headers_and_route_pricing_overrides_the_table(audit_env: AuditEnv) -> None:
    client = _sdk(audit_env, ALICE_KEY, {"x-dragoman-developer": "mallory", "x-dragoman-repo": "evil",
                                         "x-dragoman-team": "red"})
    sent = time.time()
    raw = client.messages.with_raw_response.create(model=PRICED, max_tokens=64,
                                                   messages=[{"role": "user", "content": "hi"}])
    answered = time.time()
    message = raw.parse()
    assert message.content[0].text == "Hello from upstream"
    request_id = raw.headers["request-id"]
    rec = wait_record(audit_env.store, request_id)

    assert rec["request_id"] == request_id
    assert rec["key_id"] == "team-web-alice"
    assert rec["developer"] == "alice"  # the key's identity is the admin's word: headers cannot override it
    assert rec["team"] == "web"
    assert rec["repo"] == "shop"
    assert rec["session"] is None
    assert rec["requested_model"] == PRICED
    assert rec["policy"] is None and rec["branch"] is None  # a route asked for by name: no policy applies
    assert rec["route"] == PRICED
    assert rec["provider"] == "openai"
    assert rec["upstream_model"] == dated("gpt-5")
    assert rec["status"] == 200
    assert rec["error_type"] is None
    assert rec["stream"] is False
    assert rec["stream_events"] == 0
    assert [(c["route"], c["outcome"], c["status"], c["model"]) for c in rec["candidates"]] == [
        (PRICED, "ok", 200, "gpt-5")]
    assert rec["candidates"][0]["upstream"] == "127.0.0.1"
    assert rec["input_tokens"] == 1000
    assert rec["output_tokens"] == 300
    assert rec["cache_read_tokens"] == 200
    assert rec["reasoning_tokens"] == 0
    # 1000 × $2 + 200 × $0.5 + 300 × $8 per million, from the route's pricing: block, not gpt-5's list price
    assert rec["cost_usd"] == pytest.approx(0.0045, abs=1e-9)
    assert rec["cost_usd"] == pytest.approx(cost(USAGE, OVERRIDE), abs=1e-9)
    assert 0 < rec["input_estimate"] < 200  # a one-line request
    assert rec["notes"] == ["max_tokens raised"]  # 64 → 1024 for a reasoning model
    assert_sane_latencies(rec)
    assert sent <= rec["time"] <= answered  # when the gateway took the request: between our send and its answer
    assert rec["time_iso"].endswith("+00:00")


def test_header_identity_streamed_and_priced_from_the_builtin_table(audit_env: AuditEnv) -> None:
    dev, repo = unique("bob"), unique("api")
    resp = post(audit_env, messages_body(BUILTIN, stream=True), PLAIN_KEY, **{
        "x-dragoman-developer": dev, "x-dragoman-repo": repo, "x-dragoman-team": "platform"})
    assert resp.status == 200, resp.text
    events = sse_events(resp.body)
    assert events[-1][0] == "message_stop"
    rec = wait_record(audit_env.store, resp.headers["request-id"])

    assert rec["key_id"] == key_fingerprint(PLAIN_KEY)
    assert rec["key_id"] != PLAIN_KEY and PLAIN_KEY not in rec["key_id"]
    assert rec["developer"] == dev
    assert rec["team"] == "platform"
    assert rec["repo"] == repo
    assert rec["session"] is None
    assert rec["requested_model"] == BUILTIN
    assert rec["policy"] is None and rec["branch"] is None
    assert rec["route"] == BUILTIN
    assert rec["status"] == 200 and rec["error_type"] is None
    assert rec["stream"] is True
    assert rec["stream_events"] == len(events)  # every Anthropic event the client got
    assert (rec["input_tokens"], rec["output_tokens"], rec["cache_read_tokens"]) == (1000, 300, 200)
    # gpt-5-mini's list price: 1000 × $0.25 + 200 × $0.025 + 300 × $2 per million
    assert rec["cost_usd"] == pytest.approx(0.000855, abs=1e-9)
    assert rec["cost_usd"] == pytest.approx(cost(USAGE, GPT5_MINI), abs=1e-9)
    assert_sane_latencies(rec, streamed_delay=CHUNK_DELAY * 3)
    # the model that answered, as for a non-streamed request (the upstream names its snapshot in every chunk)
    assert rec["upstream_model"] == dated("gpt-5-mini")


@pytest.mark.parametrize("fixture, session_header", [
    ("claude_code_2.1.197_first_turn.json", "cc-session-header-1"),
    ("claude_code_2.1.328_after_parallel_reads.json", None),
])
def test_claude_code_fixture_identity_policy_and_notes(audit_env: AuditEnv, fixture: str, session_header: str | None) -> None:
    raw = (CLAUDE_CODE_FIXTURES / fixture).read_bytes()
    body = json.loads(raw)
    user = json.loads(body["metadata"]["user_id"])
    repo = unique("project")  # as ANTHROPIC_CUSTOM_HEADERS would send it
    extra = {"x-dragoman-repo": repo}
    if session_header:
        extra["X-Claude-Code-Session-Id"] = session_header
    resp = post(audit_env, raw, PLAIN_KEY, **extra)
    assert resp.status == 200, resp.text
    events = sse_events(resp.body)
    rec = wait_record(audit_env.store, resp.headers["request-id"])

    assert rec["key_id"] == key_fingerprint(PLAIN_KEY)
    assert rec["developer"] == "device:" + user["device_id"][:16]  # no account uuid: the machine
    assert rec["team"] is None
    assert rec["repo"] == repo
    assert rec["session"] == (session_header or user["session_id"])
    assert rec["requested_model"] == body["model"]
    assert rec["policy"] == POLICY
    assert rec["branch"] == "else"  # tens of thousands of tokens: not the small branch
    assert rec["route"] == PRICED
    assert rec["stream"] is True
    assert rec["stream_events"] == len(events)
    assert rec["status"] == 200 and rec["error_type"] is None
    assert "cache_control dropped" in rec["notes"]
    assert "context_management dropped" in rec["notes"]
    assert len(rec["notes"]) == len(set(rec["notes"]))
    # an estimate of the input tokens: Claude Code bodies run 4.9-5.2 bytes per o200k token
    assert len(raw) / 7 <= rec["input_estimate"] <= len(raw) / 3, (rec["input_estimate"], len(raw))
    assert rec["cost_usd"] == pytest.approx(cost(USAGE, OVERRIDE), abs=1e-9)
    assert_sane_latencies(rec, streamed_delay=CHUNK_DELAY * 3)


def test_policy_small_branch(audit_env: AuditEnv) -> None:
    resp = post(audit_env, messages_body("claude-haiku-4-5", "what is 2+2?"), ALICE_KEY)
    assert resp.status == 200, resp.text
    rec = wait_record(audit_env.store, resp.headers["request-id"])
    assert rec["requested_model"] == "claude-haiku-4-5"
    assert rec["policy"] == POLICY
    assert rec["branch"] == SMALL_BRANCH
    assert rec["route"] == BUILTIN
    assert rec["upstream_model"] == dated("gpt-5-mini")
    assert rec["cost_usd"] == pytest.approx(cost(USAGE, GPT5_MINI), abs=1e-9)


def test_fallback_records_both_candidates(audit_env: AuditEnv) -> None:
    resp = post(audit_env, messages_body("flaky"), ALICE_KEY)
    assert resp.status == 200, resp.text
    rec = wait_record(audit_env.store, resp.headers["request-id"])
    first, second = rec["candidates"]
    assert (first["route"], first["outcome"], first["error_type"], first["model"]) == (
        "flaky", "error", "overloaded_error", "gpt-5")
    assert (second["route"], second["outcome"], second["status"], second["error_type"], second["model"]) == (
        BUILTIN, "ok", 200, None, "gpt-5-mini")
    for cand in (first, second):
        assert cand["upstream"] == "127.0.0.1"
        assert cand["latency_ms"] is not None and cand["latency_ms"] >= 0
    assert rec["route"] == BUILTIN
    assert rec["upstream_model"] == dated("gpt-5-mini")
    assert rec["status"] == 200 and rec["error_type"] is None
    assert rec["cost_usd"] == pytest.approx(cost(USAGE, GPT5_MINI), abs=1e-9)
    # time waiting on both upstreams counts as upstream time, not gateway overhead
    assert rec["upstream_ms"] >= first["latency_ms"] + second["latency_ms"] - 1.0
    assert_sane_latencies(rec)
    assert first["status"] == 500  # the upstream's HTTP status (record.Candidate.status), not the client's 529

