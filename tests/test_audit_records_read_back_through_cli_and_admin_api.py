"""The audit records read back, on SQLite and on PostgreSQL: through the store API, `dragoman logs` (JSON, table,
CSV), `dragoman costs` grouped by developer, repo, route and model (every grouping summing to the whole store),
and the admin API behind its admin key, all agreeing field for field."""

from __future__ import annotations

import pytest

from tests.audit_gateway import LEDGER, USAGE, AuditEnv, dated, post, unique
from tests.audit_helpers import (
    ADMIN_KEY,
    ALICE_KEY,
    PLAIN_KEY,
    PRICED,
    SECRETS,
    all_records,
    assert_no_secrets,
    cli,
    cli_json,
    cost,
    messages_body,
    wait_record,
    wait_records,
)

pytestmark = pytest.mark.timeout(30)


def test_records_read_back_through_cli_costs_and_admin_api(audit_env: AuditEnv) -> None:
    store_url = audit_env.store
    dev, repo = unique("carol"), unique("ledger-repo")
    who = {"x-dragoman-developer": dev, "x-dragoman-repo": repo}
    ok_ids = []
    for _ in range(3):
        resp = post(audit_env, messages_body("ledger"), PLAIN_KEY, **who)
        assert resp.status == 200, resp.text
        ok_ids.append(resp.headers["request-id"])
    failed = post(audit_env, messages_body("down"), PLAIN_KEY, **who)
    assert failed.status == 529
    ids = [*ok_ids, failed.headers["request-id"]]
    by_id = wait_records(store_url, ids)
    expected_cost = 3 * cost(USAGE, LEDGER)
    assert expected_cost == pytest.approx(3 * (1000 * 3.0 + 200 * 0.3 + 300 * 12.0) / 1e6)

    # the store API
    from dragoman.observe.stores import open_store

    store = open_store(store_url, migrate=False)
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
    logged = cli_json("logs", "--store", store_url, "--format", "json", "--developer", dev, "--limit", "100")
    assert sorted(r["request_id"] for r in logged) == sorted(ids)
    for row in logged:
        assert row == by_id[row["request_id"]], row["request_id"]
    only_errors = cli_json("logs", "--store", store_url, "--format", "json", "--developer", dev, "--status", "error")
    assert [r["request_id"] for r in only_errors] == [failed.headers["request-id"]]

    # dragoman costs --by developer|repo|model|route --format json
    by_dev = {r["developer"]: r for r in cli_json("costs", "--store", store_url, "--by", "developer", "--format", "json")}
    assert by_dev[dev] == mine
    by_repo = {r["repo"]: r for r in cli_json("costs", "--store", store_url, "--by", "repo", "--format", "json")}
    assert by_repo[repo]["requests"] == 4 and by_repo[repo]["errors"] == 1
    assert by_repo[repo]["cost_usd"] == pytest.approx(expected_cost, abs=1e-6)
    all_rows = all_records(store_url)
    by_route = {r["route"]: r for r in cli_json("costs", "--store", store_url, "--by", "route", "--format", "json")}
    ledger_rows = [r for r in all_rows if r["route"] == "ledger"]
    assert by_route["ledger"]["requests"] == len(ledger_rows)
    assert by_route["ledger"]["cost_usd"] == pytest.approx(len(ledger_rows) * cost(USAGE, LEDGER), abs=1e-6)
    by_model = {r["model"]: r for r in cli_json("costs", "--store", store_url, "--by", "model", "--format", "json")}
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
    gw = audit_env.gateway
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
        for hdrs, status in (({}, 401), ({"x-api-key": "adm-wrong"}, 401),  # user keys: known, and refused by role
                             ({"x-api-key": PLAIN_KEY}, 403), ({"authorization": f"Bearer {ALICE_KEY}"}, 403)):
            denied = gw.request("GET", path, headers=hdrs)
            assert denied.status == status, (path, hdrs, denied.status)
            assert denied.json()["error"]["type"] == ("authentication_error" if status == 401 else "permission_error")
            assert "data" not in denied.json()
            assert_no_secrets(denied.text, "a refusal from the admin API")
    assert_no_secrets(api.text, "the admin API's rows", [s for s in SECRETS if s != ADMIN_KEY] + [ADMIN_KEY])


def test_logs_cli_table_and_csv_name_the_request(audit_env: AuditEnv) -> None:
    resp = post(audit_env, messages_body(PRICED), ALICE_KEY)
    rid = resp.headers["request-id"]
    wait_record(audit_env.store, rid)
    for fmt in ("table", "csv"):
        result = cli("logs", "--store", audit_env.store, "--format", fmt, "--request-id", rid)
        assert result.returncode == 0, result.stderr
        assert rid in result.stdout and "alice" in result.stdout and PRICED in result.stdout
        assert_no_secrets(result.stdout + result.stderr, f"dragoman logs --format {fmt}")

