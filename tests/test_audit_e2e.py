"""The audit log end to end, over real sockets, on SQLite and on PostgreSQL: a gateway process, scripted OpenAI
upstreams, the anthropic SDK and raw HTTP. Each request's record is read back through the store API and its
fields asserted one by one; the same records through `dragoman logs`, `dragoman costs` and the admin API.

PostgreSQL comes from tests/observe_pg.py: when it is not installed the postgres cases FAIL with the install
command (they never skip)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import anthropic
import pytest

from dragoman.routing.config import key_fingerprint
from tests.anthropic_events import sse_events
from tests.audit_helpers import (
    ADMIN_KEY,
    ALICE,
    ALICE_KEY,
    BUILTIN,
    ENV,
    GPT5_MINI,
    OVERRIDE,
    PLAIN_KEY,
    POLICY,
    POLICY_RULE,
    PRICED,
    SECRETS,
    SMALL_BRANCH,
    UPSTREAM_KEY,
    WRONG_KEY,
    all_records,
    assert_no_secrets,
    assert_sane_latencies,
    cli,
    cli_json,
    config,
    cost,
    headers,
    messages_body,
    route,
    wait_record,
    wait_records,
)
from tests.gateway import Gateway, run_gateway
from tests.observe_pg import cluster
from tests.shared_fixtures import CLAUDE_CODE_FIXTURES
from tests.upstreams import ChatReply, ErrorReply, ScriptedChatUpstream

pytestmark = pytest.mark.timeout(30)

FIXTURES = CLAUDE_CODE_FIXTURES
USAGE = (1200, 300, 200)  # upstream prompt_tokens, completion_tokens, cached_tokens → input 1000, cache read 200
LEDGER = {"input": 3.0, "cached_input": 0.3, "output": 12.0}
CHUNK_DELAY = 0.04
BOOM = "The server had an error"


def dated(model: str) -> str:
    """The model name the scripted upstream reports back: a dated snapshot of what was asked for."""
    return f"{model}-2025-08-07"


def answer(body: dict) -> ChatReply:
    return ChatReply(text="Hello from upstream", usage=USAGE, model=dated(body.get("model", "x")),
                     chunk_delay=CHUNK_DELAY)


@dataclass
class Env:
    gateway: Gateway
    store: str
    good: ScriptedChatUpstream
    bad: ScriptedChatUpstream
    kind: str


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    if request.param == "sqlite":
        store = f"sqlite:///{tmp_path_factory.mktemp('audit')}/audit.db"
    else:
        store = cluster().new_database()  # fails (never skips) with the install hint when PostgreSQL is missing
    bad_reply = ErrorReply(500, {"error": {"message": BOOM, "type": "server_error"}})
    with ScriptedChatUpstream(answer) as good, ScriptedChatUpstream(bad_reply) as bad:
        routes = [
            route(PRICED, good.base_url, model="gpt-5", pricing=OVERRIDE),
            route(BUILTIN, good.base_url, model="gpt-5-mini"),
            route("ledger", good.base_url, model="gpt-4.1", pricing=LEDGER),
            route("flaky", bad.base_url, model="gpt-5", fallbacks=[BUILTIN]),
            route("down", bad.base_url, model="gpt-5"),
        ]
        text = config(
            routes, store=store, keys=[ALICE, PLAIN_KEY], admin=[ADMIN_KEY],
            policies=[{"name": POLICY, "applies_to": ["claude-*"], "rule": POLICY_RULE}],
        )
        with run_gateway(text, env={**ENV, "DRAGOMAN_AUDIT_STORE": ""}) as gateway:
            yield Env(gateway, store, good, bad, request.param)


def _sdk(env: Env, key: str, extra: dict[str, str] | None = None) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=env.gateway.base_url, api_key=key, max_retries=0, timeout=20,
                               default_headers=extra or {})


def _post(env: Env, body: dict | bytes | str, key: str | None, **more: str):
    return env.gateway.request("POST", "/v1/messages", body, headers(key, **more), timeout=20)


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# ---- who, what, where, how much --------------------------------------------------------------------------


def test_key_identity_wins_over_headers_and_route_pricing_overrides_the_table(env: Env) -> None:
    client = _sdk(env, ALICE_KEY, {"x-dragoman-developer": "mallory", "x-dragoman-repo": "evil",
                                   "x-dragoman-team": "red"})
    raw = client.messages.with_raw_response.create(model=PRICED, max_tokens=64,
                                                   messages=[{"role": "user", "content": "hi"}])
    message = raw.parse()
    assert message.content[0].text == "Hello from upstream"
    request_id = raw.headers["request-id"]
    rec = wait_record(env.store, request_id)

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
    assert abs(rec["time"] - time.time()) < 60
    assert rec["time_iso"].endswith("+00:00")


def test_header_identity_streamed_and_priced_from_the_builtin_table(env: Env) -> None:
    dev, repo = _unique("bob"), _unique("api")
    resp = _post(env, messages_body(BUILTIN, stream=True), PLAIN_KEY, **{
        "x-dragoman-developer": dev, "x-dragoman-repo": repo, "x-dragoman-team": "platform"})
    assert resp.status == 200, resp.text
    events = sse_events(resp.body)
    assert events[-1][0] == "message_stop"
    rec = wait_record(env.store, resp.headers["request-id"])

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
def test_claude_code_fixture_identity_policy_and_notes(env: Env, fixture: str, session_header: str | None) -> None:
    raw = (FIXTURES / fixture).read_bytes()
    body = json.loads(raw)
    user = json.loads(body["metadata"]["user_id"])
    repo = _unique("project")  # as ANTHROPIC_CUSTOM_HEADERS would send it
    extra = {"x-dragoman-repo": repo}
    if session_header:
        extra["X-Claude-Code-Session-Id"] = session_header
    resp = _post(env, raw, PLAIN_KEY, **extra)
    assert resp.status == 200, resp.text
    events = sse_events(resp.body)
    rec = wait_record(env.store, resp.headers["request-id"])

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


def test_policy_small_branch(env: Env) -> None:
    resp = _post(env, messages_body("claude-haiku-4-5", "what is 2+2?"), ALICE_KEY)
    assert resp.status == 200, resp.text
    rec = wait_record(env.store, resp.headers["request-id"])
    assert rec["requested_model"] == "claude-haiku-4-5"
    assert rec["policy"] == POLICY
    assert rec["branch"] == SMALL_BRANCH
    assert rec["route"] == BUILTIN
    assert rec["upstream_model"] == dated("gpt-5-mini")
    assert rec["cost_usd"] == pytest.approx(cost(USAGE, GPT5_MINI), abs=1e-9)


def test_fallback_records_both_candidates(env: Env) -> None:
    resp = _post(env, messages_body("flaky"), ALICE_KEY)
    assert resp.status == 200, resp.text
    rec = wait_record(env.store, resp.headers["request-id"])
    first, second = rec["candidates"]
    assert (first["route"], first["outcome"], first["error_type"], first["model"]) == (
        "flaky", "error", "overloaded_error", "gpt-5")
    assert (second["route"], second["outcome"], second["status"], second["error_type"], second["model"]) == (
        BUILTIN, "ok", 200, None, "gpt-5-mini")
    for cand in (first, second):
        assert cand["upstream"] == "127.0.0.1"
        assert cand["latency_ms"] is not None and 0 <= cand["latency_ms"] < 10_000
    assert rec["route"] == BUILTIN
    assert rec["upstream_model"] == dated("gpt-5-mini")
    assert rec["status"] == 200 and rec["error_type"] is None
    assert rec["cost_usd"] == pytest.approx(cost(USAGE, GPT5_MINI), abs=1e-9)
    # time waiting on both upstreams counts as upstream time, not gateway overhead
    assert rec["upstream_ms"] >= first["latency_ms"] + second["latency_ms"] - 1.0
    assert_sane_latencies(rec)
    assert first["status"] == 500  # the upstream's HTTP status (record.Candidate.status), not the client's 529


# ---- errors are recorded too, and no record or log line holds a secret ----------------------------------------


def test_errors_are_recorded_without_secrets(env: Env) -> None:
    malformed = _post(env, b'{"model": "priced", "messages": [', ALICE_KEY)
    assert malformed.status == 400
    wrong = _post(env, messages_body(PRICED), WRONG_KEY)
    assert wrong.status == 401
    bearer = env.gateway.request("POST", "/v1/messages", messages_body(PRICED),
                                 {"anthropic-version": "2023-06-01", "authorization": f"Bearer {WRONG_KEY}"})
    assert bearer.status == 401
    missing = _post(env, messages_body(PRICED), None)
    assert missing.status == 401
    down = _post(env, messages_body("down"), PLAIN_KEY, **{"x-dragoman-developer": "erin"})
    assert down.status == 529, down.text
    assert down.json()["error"]["type"] == "overloaded_error"
    ids = {name: r.headers["request-id"] for name, r in
           [("malformed", malformed), ("wrong", wrong), ("bearer", bearer), ("missing", missing), ("down", down)]}
    recs = wait_records(env.store, ids.values())

    rec = recs[ids["malformed"]]
    assert (rec["status"], rec["error_type"]) == (400, "invalid_request_error")
    assert not rec["requested_model"] and rec["candidates"] == [] and rec["route"] is None
    assert rec["cost_usd"] is None and rec["input_tokens"] == 0

    for name in ("wrong", "bearer", "missing"):
        rec = recs[ids[name]]
        assert (rec["status"], rec["error_type"]) == (401, "authentication_error"), name
        assert rec["key_id"] is None and rec["developer"] is None, name
        assert rec["candidates"] == [] and rec["cost_usd"] is None, name

    rec = recs[ids["down"]]
    assert (rec["status"], rec["error_type"]) == (529, "overloaded_error")
    assert rec["developer"] == "erin" and rec["key_id"] == key_fingerprint(PLAIN_KEY)
    assert rec["requested_model"] == "down" and rec["route"] == "down"
    assert [(c["route"], c["outcome"]) for c in rec["candidates"]] == [("down", "error")]
    assert not rec["cost_usd"] and rec["input_tokens"] == rec["output_tokens"] == 0  # nothing billed
    assert rec["ttfb_ms"] is None or rec["ttfb_ms"] <= rec["latency_total_ms"]
    assert rec["overhead_ms"] >= 0 and rec["upstream_ms"] > 0

    for response in (malformed, wrong, bearer, missing, down):
        assert_no_secrets(response.text, "an error response")
    assert_no_secrets(json.dumps(all_records(env.store)), f"the {env.kind} audit records")
    assert_no_secrets(env.gateway.stderr_text(), "the gateway's stderr")
    # the malformed request came with a valid key: who sent it is known and must be attributed
    rec = recs[ids["malformed"]]
    assert (rec["key_id"], rec["developer"], rec["team"], rec["repo"]) == ("team-web-alice", "alice", "web", "shop"), rec


def test_upstream_error_echoing_the_key_is_not_recorded_or_logged(env: Env) -> None:
    """An upstream that quotes the gateway's own credential back in its error text."""
    env.bad.reset(ErrorReply(503, {"error": {"message": f"upstream exploded; Authorization: Bearer {UPSTREAM_KEY}",
                                             "type": "server_error"}}))
    try:
        resp = _post(env, messages_body("down"), PLAIN_KEY)
    finally:
        env.bad.reset(ErrorReply(500, {"error": {"message": BOOM, "type": "server_error"}}))
    assert resp.status == 529
    rec = wait_record(env.store, resp.headers["request-id"])
    assert rec["status"] == 529
    assert_no_secrets(resp.text, "the 529 response")
    assert_no_secrets(json.dumps(rec), "the 529 record")
    assert_no_secrets(env.gateway.stderr_text(), "the gateway's stderr")


# ---- reading records back: store API, CLI, admin API ------------------------------------------------------


def test_records_read_back_through_cli_costs_and_admin_api(env: Env) -> None:
    dev, repo = _unique("carol"), _unique("ledger-repo")
    who = {"x-dragoman-developer": dev, "x-dragoman-repo": repo}
    ok_ids = []
    for _ in range(3):
        resp = _post(env, messages_body("ledger"), PLAIN_KEY, **who)
        assert resp.status == 200, resp.text
        ok_ids.append(resp.headers["request-id"])
    failed = _post(env, messages_body("down"), PLAIN_KEY, **who)
    assert failed.status == 529
    ids = [*ok_ids, failed.headers["request-id"]]
    by_id = wait_records(env.store, ids)
    expected_cost = 3 * cost(USAGE, LEDGER)
    assert expected_cost == pytest.approx(3 * (1000 * 3.0 + 200 * 0.3 + 300 * 12.0) / 1e6)

    # the store API
    from dragoman.observe.stores import open_store

    store = open_store(env.store, migrate=False)
    try:
        rows = store.query_requests({"developer": dev}, 100)
        errors = store.query_requests({"developer": dev, "status": "5xx"}, 100)
        costs_by_dev = {r["developer"]: r for r in store.query_costs("developer")}
    finally:
        store.close()
    assert sorted(r["request_id"] for r in rows) == sorted(ids)
    assert [r["request_id"] for r in errors] == [failed.headers["request-id"]]
    mine = costs_by_dev[dev]
    assert (mine["requests"], mine["errors"], mine["unpriced"]) == (4, 1, 0)
    assert (mine["input_tokens"], mine["output_tokens"], mine["cache_read_tokens"]) == (3000, 900, 600)
    assert mine["cost_usd"] == pytest.approx(expected_cost, abs=1e-6)

    # dragoman logs --format json: the same rows, field for field
    logged = cli_json("logs", "--store", env.store, "--format", "json", "--developer", dev, "--limit", "100")
    assert sorted(r["request_id"] for r in logged) == sorted(ids)
    for row in logged:
        assert row == by_id[row["request_id"]], row["request_id"]
    only_errors = cli_json("logs", "--store", env.store, "--format", "json", "--developer", dev, "--status", "error")
    assert [r["request_id"] for r in only_errors] == [failed.headers["request-id"]]

    # dragoman costs --by developer|repo|model|route --format json
    by_dev = {r["developer"]: r for r in cli_json("costs", "--store", env.store, "--by", "developer", "--format", "json")}
    assert by_dev[dev] == mine
    by_repo = {r["repo"]: r for r in cli_json("costs", "--store", env.store, "--by", "repo", "--format", "json")}
    assert by_repo[repo]["requests"] == 4 and by_repo[repo]["errors"] == 1
    assert by_repo[repo]["cost_usd"] == pytest.approx(expected_cost, abs=1e-6)
    all_rows = all_records(env.store)
    by_route = {r["route"]: r for r in cli_json("costs", "--store", env.store, "--by", "route", "--format", "json")}
    ledger_rows = [r for r in all_rows if r["route"] == "ledger"]
    assert by_route["ledger"]["requests"] == len(ledger_rows)
    assert by_route["ledger"]["cost_usd"] == pytest.approx(len(ledger_rows) * cost(USAGE, LEDGER), abs=1e-6)
    by_model = {r["model"]: r for r in cli_json("costs", "--store", env.store, "--by", "model", "--format", "json")}
    gpt41 = by_model[dated("gpt-4.1")]
    assert gpt41["requests"] == len(ledger_rows)
    assert gpt41["output_tokens"] == 300 * len(ledger_rows)
    assert gpt41["cost_usd"] == pytest.approx(len(ledger_rows) * cost(USAGE, LEDGER), abs=1e-6)
    # every group of every grouping sums to the whole store
    total = sum(r["cost_usd"] or 0 for r in all_rows)
    for grouping in (by_dev, by_repo, by_route, by_model):
        assert sum(r["requests"] for r in grouping.values()) == len(all_rows)
        assert sum(r["cost_usd"] or 0 for r in grouping.values()) == pytest.approx(total, abs=1e-5)

    # the admin API: the same data as JSON, behind an admin key
    gw = env.gateway
    api = gw.request("GET", f"/api/requests?developer={dev}&limit=50", headers={"x-api-key": ADMIN_KEY})
    assert api.status == 200, api.text
    assert sorted(r["request_id"] for r in api.json()["data"]) == sorted(ids)
    for row in api.json()["data"]:
        assert row == by_id[row["request_id"]]
    api_costs = gw.request("GET", "/api/costs?by=repo&since=1h", headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert api_costs.status == 200, api_costs.text
    assert api_costs.json()["by"] == "repo"
    assert {r["repo"]: r for r in api_costs.json()["data"]}[repo] == by_repo[repo]
    for path in ("/api/requests", "/api/costs?by=developer"):
        for hdrs in ({}, {"x-api-key": "adm-wrong"}, {"x-api-key": PLAIN_KEY}, {"authorization": f"Bearer {ALICE_KEY}"}):
            denied = gw.request("GET", path, headers=hdrs)
            assert denied.status == 401, (path, hdrs, denied.status)
            assert denied.json()["error"]["type"] == "authentication_error"
            assert "data" not in denied.json()
            assert_no_secrets(denied.text, "a 401 from the admin API")
    assert_no_secrets(api.text, "the admin API's rows", [s for s in SECRETS if s != ADMIN_KEY] + [ADMIN_KEY])


def test_logs_cli_table_and_csv_name_the_request(env: Env) -> None:
    resp = _post(env, messages_body(PRICED), ALICE_KEY)
    rid = resp.headers["request-id"]
    wait_record(env.store, rid)
    for fmt in ("table", "csv"):
        result = cli("logs", "--store", env.store, "--format", fmt, "--request-id", rid)
        assert result.returncode == 0, result.stderr
        assert rid in result.stdout and "alice" in result.stdout and PRICED in result.stdout
        assert_no_secrets(result.stdout + result.stderr, f"dragoman logs --format {fmt}")
