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
from dragoman.loop import report
from dragoman.loop.clusters import MAX_GROUPS, Clusters
from dragoman.loop.scores import Scoreboard
from dragoman.loop.verdict import CLIENT_REFUSED, EXECUTION_FAILED, INVALID_JSON, SCHEMA_VIOLATION, UNKNOWN_TOOL
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
    assert answer["data"][0]["examples"] == ["req_a_2", "req_a_1", "req_a_0"]  # read newest first
    assert answer["truncated"] is False and "covered_since" not in answer
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


# ---- ranges bigger than a report reads ----------------------------------------------------------------------


@pytest.fixture
def empty_store(store_url: str) -> Iterator[AuditStore]:
    opened = open_store(store_url)
    yield opened
    opened.close()


def _failing(i: int, at: float, kind: str, tool: str) -> AuditRecord:
    return AuditRecord(time=at, request_id=f"req_{tool}_{i}", route="a", upstream_model="m", shape=TOOLS,
                       verdict="fail", verdict_kinds=[kind], verdict_detail=f"tool {tool}: failed")


def _old_passes_then_new_failures(store: AuditStore) -> None:
    """100 passing calls an hour ago, then 50 failing ones in the last minute, 10 of them at the same instant."""
    old = [AuditRecord(time=NOW - 3600 + i, request_id=f"req_old{i}", route="a", upstream_model="m", shape=TOOLS,
                       verdict="pass") for i in range(100)]
    new = [_failing(i, NOW - 60 + min(i, 40), UNKNOWN_TOOL, "Frob") for i in range(50)]
    store.write(old + new)


def _small_read_cap(monkeypatch: pytest.MonkeyPatch, rows: int) -> None:
    """What a report may read, scaled down so that a test writes a few records, not 200,000 (raising=False: the
    names a cap has had)."""
    for name in ("MAX_ROWS", "MAX_FAILURES"):
        monkeypatch.setattr(report, name, rows, raising=False)
    monkeypatch.setattr(report, "PAGE", 10)


def test_scores_count_every_call_of_the_range_however_many(empty_store: AuditStore,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    _old_passes_then_new_failures(empty_store)
    _small_read_cap(monkeypatch, 30)
    (row,) = _get(empty_store, _view(), "/api/scores", "since=24h")["data"]
    assert (row["calls"], row["passed"], row["score"]) == (150, 100, 0.6667)


def test_scores_are_counted_by_the_store_without_reading_records(store: AuditStore) -> None:
    class NoRecordReads:
        def __getattr__(self, name: str) -> object:
            assert name != "query_requests", "a score report read the records themselves"
            return getattr(store, name)

    answer = _get(NoRecordReads(), _view(), "/api/scores")  # type: ignore[arg-type]
    rows = {row["route"]: row for row in answer["data"]}
    assert (rows["a"]["calls"], rows["b"]["calls"]) == (5, 5)


def test_clusters_past_the_read_cap_count_the_newest_failures_and_say_so(
        empty_store: AuditStore, monkeypatch: pytest.MonkeyPatch) -> None:
    empty_store.write([_failing(i, NOW - 3600 + i, SCHEMA_VIOLATION, "Bash") for i in range(40)])
    _old_passes_then_new_failures(empty_store)  # the passing calls are not read, nor counted against the cap
    _small_read_cap(monkeypatch, 50)
    answer = _get(empty_store, _view(), "/api/clusters", "since=24h")
    assert [(r["kind"], r["tool"], r["count"]) for r in answer["data"]] == [(UNKNOWN_TOOL, "Frob", 50)]
    assert answer["truncated"] is True and answer["covered_since"] == NOW - 60


def test_clusters_at_exactly_the_read_cap_are_complete(empty_store: AuditStore,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    _old_passes_then_new_failures(empty_store)
    _small_read_cap(monkeypatch, 50)
    answer = _get(empty_store, _view(), "/api/clusters", "since=24h")
    assert [(r["tool"], r["count"]) for r in answer["data"]] == [("Frob", 50)]
    assert answer["truncated"] is False and "covered_since" not in answer


def test_the_cli_says_on_stderr_when_clusters_were_cut(empty_store: AuditStore, store_url: str,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    empty_store.write([_failing(i, NOW - 3600 + i, SCHEMA_VIOLATION, "Bash") for i in range(40)])
    _old_passes_then_new_failures(empty_store)
    _small_read_cap(monkeypatch, 50)
    assert main(["clusters", "--store", store_url, "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert [(r["tool"], r["count"]) for r in msgspec.json.decode(captured.out)] == [("Frob", 50)]
    assert "failing records" in captured.err and "newest" in captured.err
    assert main(["scores", "--store", store_url, "--by", "route", "--format", "json"]) == 0
    assert msgspec.json.decode(capsys.readouterr().out) == [{"route": "a", "calls": 190, "passed": 100,
                                                             "score": 0.5263}]


def test_the_cluster_report_keeps_its_largest_cluster_among_many_small_later_ones(empty_store: AuditStore) -> None:
    big = [_failing(i, NOW - 3600 + i, SCHEMA_VIOLATION, "Bash") for i in range(20)]
    hallucinated = [_failing(0, NOW - 600 + i * 0.1, UNKNOWN_TOOL, f"Tool{i}") for i in range(MAX_GROUPS)]
    empty_store.write(big + hallucinated)
    rows = _get(empty_store, _view(), "/api/clusters", "since=24h")["data"]
    assert (rows[0]["kind"], rows[0]["tool"], rows[0]["count"]) == (SCHEMA_VIOLATION, "Bash", 20)
    assert len(rows) == MAX_GROUPS  # the largest MAX_GROUPS of MAX_GROUPS + 1 groups


@pytest.mark.parametrize("with_store", [True, False])
def test_score_events_are_bounded_by_until(store: AuditStore, with_store: bool) -> None:
    view = _view()  # a demotion now
    answer = _get(store if with_store else None, view, "/api/scores", "since=2000-01-01&until=2000-01-02")
    assert answer["events"] == []
    assert [e["kind"] for e in _get(store if with_store else None, view, "/api/scores")["events"]] == ["demoted"]


def test_a_cluster_limit_below_the_cap_cuts_the_report_and_says_from_when(empty_store: AuditStore) -> None:
    """`limit` reads fewer failing records than the cap: the dashboard's test reaches a cut report with a few."""
    empty_store.write([_failing(i, NOW - 60 + i, UNKNOWN_TOOL, "Frob") for i in range(5)])
    answer = _get(empty_store, _view(), "/api/clusters", "since=24h&limit=2")
    assert [r["count"] for r in answer["data"]] == [2]
    assert answer["truncated"] is True and answer["covered_since"] == NOW - 60 + 3
    for bad in ("0", "x", str(report.MAX_FAILURES + 1)):
        status, body = _handle(empty_store, _view(), "/api/clusters", f"limit={bad}", KEY, ["adm-1"])
        assert status == 400 and b"limit" in body
