"""/api/routes shows the live routes (host, never a key; breaker state; the last hour's traffic) and
/api/costs.csv is byte for byte what `dragoman costs --format csv` prints for the same store and parameters."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.audit_helpers import UPSTREAM_KEY
from tests.dashboard_gateway import ADMIN_KEY, DashboardEnv, run_dashboard_gateway

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashboardEnv]:
    with run_dashboard_gateway(tmp_path_factory.mktemp("dash")) as running:
        yield running


def test_routes_show_hosts_and_breakers_never_keys(env: DashboardEnv) -> None:
    response = env.get("/api/routes", **{"x-api-key": ADMIN_KEY})
    assert response.status == 200 and UPSTREAM_KEY not in response.text
    body = response.json()
    assert body["default_route"] == "main"
    by_name = {route["name"]: route for route in body["data"]}
    assert set(by_name) == {"main", "backup"}
    main = by_name["main"]
    assert main["host"] == f"127.0.0.1:{env.upstream.port}" and main["model"] == "gpt-5" and main["api"] == "chat"
    assert main["breaker"]["state"] == "closed" and main["breaker"]["failures"] == 1000
    assert main["last_hour"]["requests"] >= 1  # the newest seeded record, 40 minutes before the start, went to main


@pytest.mark.parametrize("by", ["developer", "repo", "route"])
def test_the_csv_export_is_what_dragoman_costs_prints(env: DashboardEnv, by: str) -> None:
    response = env.get(f"/api/costs.csv?by={by}&since=30d", **{"x-api-key": ADMIN_KEY})
    assert response.status == 200 and response.headers["content-type"].startswith("text/csv")
    cli = subprocess.run([sys.executable, "-m", "dragoman", "costs", "--by", by, "--since", "30d", "--format", "csv",
                          "--store", env.store], capture_output=True, text=True, check=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert response.text == cli.stdout
    assert len(cli.stdout.splitlines()) > 2


def test_a_bad_csv_parameter_is_a_400_naming_it(env: DashboardEnv) -> None:
    response = env.get("/api/costs.csv?by=planet", **{"x-api-key": ADMIN_KEY})
    assert response.status == 400 and "by='planet'" in response.json()["error"]["message"]
