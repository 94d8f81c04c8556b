"""Failure clusters: failing verdicts grouped by (kind, tool, route, model) with counts, first/last seen and a
bounded list of example request ids; late signals (client refusals) cluster under their own kind; passing calls
and calls without a verdict are not counted; the number of groups is bounded."""

from __future__ import annotations

from dragoman.loop.clusters import Clusters, tool_of
from dragoman.loop.verdict import CLIENT_REFUSED, INVALID_JSON, UNKNOWN_TOOL, LateSignal
from dragoman.observe.record import AuditRecord


def failed(i: int, kinds: list[str], detail: str | None = "tool Bash: arguments were not JSON", route: str = "a",
           t: float = 100.0) -> AuditRecord:
    return AuditRecord(time=t + i, request_id=f"req_{i}", route=route, upstream_model="gpt-x", verdict="fail",
                       verdict_kinds=kinds, verdict_detail=detail)


def test_failures_group_by_kind_tool_route_and_model() -> None:
    clusters = Clusters(max_examples=2)
    for i in range(3):
        clusters.verdict(failed(i, [INVALID_JSON]))
    clusters.verdict(failed(9, [UNKNOWN_TOOL], detail='tool "Frobnicate" was not offered', route="b"))
    clusters.verdict(AuditRecord(time=1, request_id="ok", route="a", verdict="pass"))
    clusters.verdict(AuditRecord(time=1, request_id="err", route="a", status=502))
    rows = clusters.rows()
    assert rows[0] == {"kind": INVALID_JSON, "tool": "Bash", "route": "a", "model": "gpt-x", "count": 3,
                       "first_seen": 100.0, "last_seen": 102.0, "examples": ["req_0", "req_1"]}
    assert rows[1]["kind"] == UNKNOWN_TOOL and rows[1]["tool"] == "Frobnicate" and rows[1]["count"] == 1
    assert len(rows) == 2


def test_a_client_refusal_clusters_under_its_own_kind() -> None:
    clusters = Clusters()
    clusters.late_signal(LateSignal(request_id="req_1", kind=CLIENT_REFUSED, time=5.0, route="a", model="m",
                                    tool_name="Edit"))
    clusters.late_signal(LateSignal(request_id="req_2", kind="judge_pass", time=6.0, route="a"))
    assert [(r["kind"], r["tool"], r["count"]) for r in clusters.rows()] == [(CLIENT_REFUSED, "Edit", 1)]


def test_store_rows_with_a_late_refusal_count_too() -> None:
    clusters = Clusters()
    clusters.add_record({"request_id": "r", "time": 1.0, "route": "a", "upstream_model": "m", "verdict": "pass",
                         "verdict_kinds": [], "verdict_detail": None, "next_turn": CLIENT_REFUSED})
    assert clusters.rows()[0]["kind"] == CLIENT_REFUSED


def test_groups_are_bounded_and_the_least_recent_goes_first() -> None:
    clusters = Clusters(max_groups=3)
    for i in range(10):
        clusters.verdict(failed(i, [INVALID_JSON], route=f"r{i}"))
    assert sorted(r["route"] for r in clusters.rows()) == ["r7", "r8", "r9"]


def test_tool_names_are_read_from_the_detail_line() -> None:
    assert tool_of("tool Bash: missing required key command") == "Bash"
    assert tool_of("tool 'mcp__github__create_issue' was not offered") == "mcp__github__create_issue"
    assert tool_of("empty answer") is None and tool_of(None) is None
