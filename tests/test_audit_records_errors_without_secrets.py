"""Failed requests are audited too (a malformed body, a wrong or missing key, an upstream that is down), with
whatever is known of who sent them, and no record, response or log line holds a secret, not even when the
upstream quotes the gateway's own credential back. On SQLite and on PostgreSQL."""

from __future__ import annotations

import json

import pytest

from dragoman.config.secrets import key_fingerprint
from tests.audit_gateway import BOOM, AuditEnv, post
from tests.audit_helpers import (
    ALICE_KEY,
    PLAIN_KEY,
    PRICED,
    UPSTREAM_KEY,
    WRONG_KEY,
    all_records,
    assert_no_secrets,
    messages_body,
    wait_record,
    wait_records,
)
from tests.upstreams import ErrorReply

pytestmark = pytest.mark.timeout(30)


def test_errors_are_recorded_without_secrets(audit_env: AuditEnv) -> None:
    malformed = post(audit_env, b'{"model": "priced", "messages": [', ALICE_KEY)
    assert malformed.status == 400
    wrong = post(audit_env, messages_body(PRICED), WRONG_KEY)
    assert wrong.status == 401
    bearer = audit_env.gateway.request("POST", "/v1/messages", messages_body(PRICED),
                                 {"anthropic-version": "2023-06-01", "authorization": f"Bearer {WRONG_KEY}"})
    assert bearer.status == 401
    missing = post(audit_env, messages_body(PRICED), None)
    assert missing.status == 401
    down = post(audit_env, messages_body("down"), PLAIN_KEY, **{"x-dragoman-developer": "erin"})
    assert down.status == 529, down.text
    assert down.json()["error"]["type"] == "overloaded_error"
    ids = {name: r.headers["request-id"] for name, r in
           [("malformed", malformed), ("wrong", wrong), ("bearer", bearer), ("missing", missing), ("down", down)]}
    recs = wait_records(audit_env.store, ids.values())

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
    assert_no_secrets(json.dumps(all_records(audit_env.store)), f"the {audit_env.kind} audit records")
    assert_no_secrets(audit_env.gateway.stderr_text(), "the gateway's stderr")
    # the malformed request came with a valid key: who sent it is known and must be attributed
    rec = recs[ids["malformed"]]
    assert (rec["key_id"], rec["developer"], rec["team"], rec["repo"]) == ("team-web-alice", "alice", "web", "shop"), rec


def test_upstream_error_echoing_the_key_is_not_recorded_or_logged(audit_env: AuditEnv) -> None:
    """An upstream that quotes the gateway's own credential back in its error text."""
    audit_env.bad.reset(ErrorReply(503, {"error": {"message": f"upstream exploded; Authorization: Bearer {UPSTREAM_KEY}",
                                             "type": "server_error"}}))
    try:
        resp = post(audit_env, messages_body("down"), PLAIN_KEY)
    finally:
        audit_env.bad.reset(ErrorReply(500, {"error": {"message": BOOM, "type": "server_error"}}))
    assert resp.status == 529
    rec = wait_record(audit_env.store, resp.headers["request-id"])
    assert rec["status"] == 529
    assert_no_secrets(resp.text, "the 529 response")
    assert_no_secrets(json.dumps(rec), "the 529 record")
    assert_no_secrets(audit_env.gateway.stderr_text(), "the gateway's stderr")

