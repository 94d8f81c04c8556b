"""The admin API checks every query parameter before the store sees it: a value the column cannot hold, an
unreadable time or an unknown name is a 400 naming the parameter (it was a 500 from SQLite's integer overflow
and PostgreSQL's bigint), on both stores; the largest values that fit still answer 200."""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import pytest

from dragoman import admin_api as api
from dragoman.observe.record import AuditRecord
from dragoman.observe.stores import AuditStore, open_store
from tests.gateway import UPSTREAM_ENV
from tests.observe_pg import cluster

KEY = [(b"x-api-key", b"adm-1")]
HUGE = "9" * 23

BAD: list[tuple[str, str, str]] = [
    ("/api/requests", f"after_id={HUGE}", "after_id"),
    ("/api/requests", "after_id=-1", "after_id"),
    ("/api/requests", "after_id=1.5", "after_id"),
    ("/api/requests", f"after_id={'9' * 5000}", "after_id"),  # past Python's int() digit limit
    ("/api/requests", f"status={HUGE}", "status"),
    ("/api/requests", "status=%C2%B2", "status"),  # "²": str.isdigit() is true for it, int() refuses it
    ("/api/requests", "status=1000", "status"),
    ("/api/requests", "status=6xx", "status"),
    ("/api/requests", f"limit={HUGE}", "limit"),
    ("/api/requests", "limit=0", "limit"),
    ("/api/requests", "limit=ten", "limit"),
    ("/api/requests", "since=1e400", "since"),
    ("/api/requests", "since=nan", "since"),
    ("/api/requests", "until=1e309d", "until"),
    ("/api/requests", "until=yesterday", "until"),
    ("/api/requests", "developer=a%00b", "developer"),
    ("/api/requests", "developr=alice", "developr"),
    ("/api/costs", "since=-inf", "since"),
    ("/api/costs", "until=2026-13-45", "until"),
    ("/api/costs", "by=nope", "by"),
    ("/api/costs", "group_by=repo", "group_by"),
]

FITTING: list[tuple[str, str]] = [
    ("/api/requests", f"after_id={2**63 - 1}"),
    ("/api/requests", "after_id=0"),
    ("/api/requests", "status=599&limit=1000"),
    ("/api/requests", "status=5XX&since=0&until=2200-01-01"),
    ("/api/requests", "status=ok&limit=1&since=100000d"),
    ("/api/costs", "by=model&since=0&until=4102444800"),
]


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[AuditStore]:
    url = f"sqlite:///{tmp_path}/audit.db" if request.param == "sqlite" else cluster().new_database()
    opened = open_store(url)
    opened.write([AuditRecord(time=1_795_000_000.0, request_id="req_1", developer="alice", status=200)])
    yield opened
    opened.close()


def _error(status: int, body: bytes) -> tuple[int, str, str]:
    error = msgspec.json.decode(body)
    assert error["type"] == "error", error
    return status, error["error"]["type"], error["error"]["message"]


@pytest.mark.parametrize("path,query,name", BAD, ids=[f"{p[5:]}-{q[:24]}" for p, q, _ in BAD])
def test_bad_parameter_is_a_400_naming_it(path, query, name, store):
    status, error_type, message = _error(*api.AdminApi(api.Services(audit=store), ["adm-1"]).handle("GET", path, query.encode(), KEY))
    assert (status, error_type) == (400, "invalid_request_error"), message
    assert name in message, message


@pytest.mark.parametrize("path,query", FITTING)
def test_largest_fitting_values_answer(path, query, store):
    status, body = api.AdminApi(api.Services(audit=store), ["adm-1"]).handle("GET", path, query.encode(), KEY)
    assert status == 200, body
    assert isinstance(msgspec.json.decode(body)["data"], list)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("query,name", [(f"after_id={HUGE}", "after_id"), (f"status={HUGE[:20]}", "status")])
def test_overflowing_parameter_over_http_is_a_400(query, name, gateway_for, chat_upstream):
    gw = gateway_for(chat_upstream, env={**UPSTREAM_ENV, "DRAGOMAN_ADMIN_KEYS": "adm-1"})
    response = gw.request("GET", f"/api/requests?{query}", headers={"x-api-key": "adm-1"})
    status, error_type, message = _error(response.status, response.body)
    assert (status, error_type) == (400, "invalid_request_error") and name in message, message
    assert gw.request("GET", "/api/requests?limit=5", headers={"x-api-key": "adm-1"}).status == 200
