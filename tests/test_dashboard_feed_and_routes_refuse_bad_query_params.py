"""/api/feed and /api/routes check their query parameters like every other admin API endpoint (admin_api.py's
rule): an unknown name or an unreadable `after_id` is a 400 naming it, never silently ignored (a feed that
ignores `after_id=abc` starts at the newest record and the client never learns its resume point was wrong)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.dashboard_gateway import ADMIN_KEY, DashboardEnv, run_dashboard_gateway


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashboardEnv]:
    with run_dashboard_gateway(tmp_path_factory.mktemp("dash")) as running:
        yield running


@pytest.mark.parametrize("query, named", [("after_id=abc", "after_id"), ("after_id=-1", "after_id"),
                                          ("after_id=" + "9" * 40, "after_id"), ("since=1h", "since")])
def test_the_feed_refuses_a_bad_or_unknown_query_parameter(env: DashboardEnv, query: str, named: str) -> None:
    answer = env.gateway.request("GET", f"/api/feed?{query}", headers={"x-api-key": ADMIN_KEY}, timeout=10)
    assert answer.status == 400, answer.text
    assert answer.json()["error"]["type"] == "invalid_request_error"
    assert named in answer.json()["error"]["message"]


def test_routes_refuse_an_unknown_query_parameter(env: DashboardEnv) -> None:
    answer = env.gateway.request("GET", "/api/routes?route=main", headers={"x-api-key": ADMIN_KEY})
    assert answer.status == 400, answer.text
    assert "route" in answer.json()["error"]["message"]
    assert env.gateway.request("GET", "/api/routes", headers={"x-api-key": ADMIN_KEY}).status == 200
