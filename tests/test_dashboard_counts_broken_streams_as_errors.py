"""A stream that broke after its first byte is recorded 200 with error_type stream_error: the client saw it fail.
Every error count and filter agrees on that — the dashboard's /api/stats (Overview tiles), the costs roll-up
(/api/costs, the Routes page's errors, `dragoman costs`), and status=error / status=ok (Requests page and
`dragoman logs --status`) — on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from dragoman.observe.record import AuditRecord
from dragoman.observe.stores import AuditStore, open_store
from dragoman.ui.api import stats
from tests.observe_pg import cluster

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_795_000_000.0 - 1_795_000_000.0 % 3600


def _records() -> list[AuditRecord]:
    base = {"route": "main", "developer": "ana"}
    return [AuditRecord(time=T0 + 10, request_id="req_ok", status=200, **base),
            AuditRecord(time=T0 + 20, request_id="req_broken_stream", status=200, error_type="stream_error", stream=True, **base),
            AuditRecord(time=T0 + 30, request_id="req_502", status=502, error_type="api_error", **base)]


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    url = f"sqlite:///{tmp_path}/audit.db" if request.param == "sqlite" else cluster().new_database()
    opened = open_store(url)
    opened.write(_records())
    opened.close()
    yield url


@pytest.fixture
def store(store_url: str) -> Iterator[AuditStore]:
    opened = open_store(store_url)
    yield opened
    opened.close()


def test_a_broken_stream_counts_as_an_error_in_the_overview_stats(store: AuditStore) -> None:
    body = msgspec.json.decode(stats(store, {"since": str(T0), "until": str(T0 + 3600), "bucket": "1h"}, T0 + 3600))
    assert [(b["requests"], b["errors"]) for b in body["data"]] == [(3, 2)]


def test_a_broken_stream_counts_as_an_error_in_the_costs_and_routes_roll_up(store: AuditStore) -> None:
    assert [(row["route"], row["requests"], row["errors"]) for row in store.query_costs("route", T0, None)] == [("main", 3, 2)]


def test_the_status_filters_put_a_broken_stream_with_the_errors(store: AuditStore) -> None:
    def ids(status: str) -> set[str]:
        return {row["request_id"] for row in store.query_requests({"status": status}, 10)}

    assert ids("error") == {"req_broken_stream", "req_502"}
    assert ids("ok") == {"req_ok"}


def test_dragoman_logs_and_costs_count_errors_as_the_dashboard_does(store_url: str) -> None:
    def cli(*args: str) -> list[dict]:
        done = subprocess.run([sys.executable, "-m", "dragoman", *args, "--store", store_url, "--format", "json"],
                              capture_output=True, text=True, check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        return json.loads(done.stdout)

    assert {row["request_id"] for row in cli("logs", "--status", "error", "--since", str(T0))} == {"req_broken_stream", "req_502"}
    assert [row["errors"] for row in cli("costs", "--by", "route", "--since", str(T0))] == [2]
