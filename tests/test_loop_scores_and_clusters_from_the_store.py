"""GET /api/scores and GET /api/clusters (admin key) and `dragoman scores` / `dragoman clusters` compute scores
and clusters from the audit store's records over `since` (what every worker shares), on SQLite and PostgreSQL;
the in-process scoreboard adds each row's state and weight and the shift events; without a store the in-process
windows answer. Shapes as CONTRACTS.md gives them to the dashboard."""

from __future__ import annotations

import time
from collections.abc import Iterator

import msgspec
import pytest

from dragoman import loop_api
from dragoman.admin_api import AdminApi, Services
from dragoman.cli import main
from dragoman.config.loop import ShiftSettings
from dragoman.config.model import CandidateEntry, WeightedRoute
from dragoman.loop.clusters import Clusters
from dragoman.loop.scores import Scoreboard
from dragoman.loop.verdict import CLIENT_REFUSED, EXECUTION_FAILED, INVALID_JSON
from dragoman.observe.record import AuditRecord
from dragoman.observe.stores import AuditStore, open_store
from tests.observe_pg import cluster

KEY = [(b"x-api-key", b"adm-1")]
TOOLS = "tools|8k|stream|nothink"
NOW = time.time()


def _records() -> list[AuditRecord]:
    def rec(i: int, route: str, verdict: str | None, **kw: object) -> AuditRecord:
        return AuditRecord(time=NOW - 60 + i, request_id=f"req_{route}_{i}", route=route, upstream_model=f"m-{route}",
                           shape=TOOLS, verdict=verdict, **kw)  # type: ignore[arg-type]

    out = [rec(i, "a", "fail", verdict_kinds=[INVALID_JSON], verdict_detail="tool Bash: arguments were not JSON")
           for i in range(3)]
    out += [rec(3, "a", "pass"), rec(4, "a", "pass", next_turn=CLIENT_REFUSED)]
    out += [rec(i, "b", "pass") for i in range(4)] + [rec(9, "b", "pass", next_turn=EXECUTION_FAILED)]
    out += [rec(10, "b", None, status=502)]  # no verdict: not scored
    out.append(AuditRecord(time=NOW - 10 * 86400, request_id="req_old", route="a", verdict="fail", shape=TOOLS,
                           upstream_model="m-a"))
    return out


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:  # noqa: ANN001
    return f"sqlite:///{tmp_path}/audit.db" if request.param == "sqlite" else cluster().new_database()


@pytest.fixture
def store(store_url: str) -> Iterator[AuditStore]:
    opened = open_store(store_url)
    opened.write(_records())
    yield opened
    opened.close()


def _view() -> loop_api.LoopView:
    board = Scoreboard(ShiftSettings(window=10, min_calls=5))
    for record in _records()[:5]:
        board.verdict(record)
    weighted = (WeightedRoute(name="w", candidates=(CandidateEntry("a", 80), CandidateEntry("b", 20))),)
    return loop_api.LoopView(board, Clusters(), weighted, shifting=True)


def _handle(store: AuditStore | None, view: loop_api.LoopView, path: str, query: str, headers, admin_keys):
    """GET `path` through the admin API, as the server calls it."""
    api = AdminApi(Services(audit=store, loop_view=view), admin_keys)
    return api.handle("GET", path, query, headers)


def _get(store: AuditStore | None, view: loop_api.LoopView, path: str, query: str = "") -> dict:
    status, body = _handle(store, view, path, query, KEY, ["adm-1"])
    assert status == 200, body
    return msgspec.json.decode(body)


def test_scores_from_the_store_with_this_process_state(store: AuditStore) -> None:
    answer = _get(store, _view(), "/api/scores", "since=24h")
    rows = {row["route"]: row for row in answer["data"]}
    # a: 3 failed, 1 passed, 1 refused by the client in its next turn; b: 4 passed, 1 ran and failed (0.75).
    assert rows["a"] == {"route": "a", "model": "m-a", "shape": TOOLS, "prompt_variant": None, "calls": 5,
                         "passed": 1, "score": 0.2, "state": "demoted", "weight": 0.0}
    assert rows["b"] == {"route": "b", "model": "m-b", "shape": TOOLS, "prompt_variant": None, "calls": 5,
                         "passed": 4, "score": 0.95, "state": "active", "weight": 20.0}
    (event,) = answer["events"]
    assert set(event) == {"time", "kind", "route", "shape", "score", "calls", "detail"}
    assert (event["kind"], event["route"], event["calls"]) == ("demoted", "a", 5)


def test_since_bounds_what_is_read(store: AuditStore) -> None:
    rows = {row["route"]: row for row in _get(store, _view(), "/api/scores", "since=30d")["data"]}
    assert rows["a"]["calls"] == 6


def test_clusters_from_the_store(store: AuditStore) -> None:
    answer = _get(store, _view(), "/api/clusters")
    assert [(r["kind"], r["tool"], r["route"], r["model"], r["count"]) for r in answer["data"]] == [
        (INVALID_JSON, "Bash", "a", "m-a", 3), (EXECUTION_FAILED, None, "b", "m-b", 1),
        (CLIENT_REFUSED, None, "a", "m-a", 1)]  # largest first, then the most recently seen
    assert answer["data"][0]["examples"] == ["req_a_0", "req_a_1", "req_a_2"]
    assert answer["data"][0]["first_seen"] < answer["data"][0]["last_seen"]


def test_without_a_store_the_process_windows_answer() -> None:
    view = _view()
    rows = _get(None, view, "/api/scores")["data"]
    assert [(r["route"], r["calls"], r["state"], r["weight"]) for r in rows] == [("a", 5, "demoted", 0.0)]


@pytest.mark.parametrize("path", loop_api.PATHS)
def test_the_admin_key_is_required_and_parameters_checked(path: str) -> None:
    view = _view()
    status, body = _handle(None, view, path, "", [], ["adm-1"])
    assert status == 401
    status, body = _handle(None, view, path, "", KEY, [])
    assert status == 403
    status, body = _handle(None, view, path, "by=route", KEY, ["adm-1"])
    assert status == 400 and b"by" in body
    status, body = _handle(None, view, path, "since=yesterday", KEY, ["adm-1"])
    assert status == 400 and b"since" in body


def test_the_cli_prints_scores_and_clusters(store: AuditStore, store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    url = store_url
    assert main(["scores", "--store", url, "--by", "route", "--format", "json"]) == 0
    rows = msgspec.json.decode(capsys.readouterr().out)
    assert rows == [{"route": "a", "calls": 5, "passed": 1, "score": 0.2},
                    {"route": "b", "calls": 5, "passed": 4, "score": 0.95}]
    assert main(["clusters", "--store", url, "--since", "1h"]) == 0
    table = capsys.readouterr().out
    assert "invalid_tool_json" in table and "Bash" in table and "req_a_0" in table
