"""Scores and clusters as people read them (GET /api/scores, GET /api/clusters, `dragoman scores`, `dragoman
clusters`): computed from the audit store's records over a time range, since the store is the one thing every
worker process shares; the in-process scoreboard (what drives this process's shifts) adds each row's state and
weight, and the shift events. Without a store, the in-process windows are shown instead.

Scores come from counts the store groups (any range, no record read); clusters need each failure's kinds and tool,
so the failing records are read, newest first, at most MAX_FAILURES, and a report cut there says so."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from dragoman.config.model import WeightedRoute
from dragoman.loop.clusters import LATE_FAILURES, MAX_GROUPS, Group, Key, failure_keys, group_rows
from dragoman.loop.scores import Scoreboard
from dragoman.loop.verdict import CLIENT_REFUSED, EXECUTION_FAILED, FAIL, PASS
from dragoman.observe.stores import AuditStore

PAGE = 1000
# Failing records one cluster report reads, newest first: a bound on an admin call's time and memory (scores have
# none: the store counts them). A report that reaches it says so (ClusterReport.truncated).
MAX_FAILURES = 200_000
SCORE_GROUPS = ("route", "model", "shape", "prompt_variant")


def verdict_counts(store: AuditStore, since: float | None, until: float | None = None) -> list[dict[str, Any]]:
    """The records with a verdict in [since, until), counted by the store per route, model, shape, prompt variant,
    verdict and next turn: score_rows' input, whatever the range, without reading one record."""
    return store.query_verdict_counts(since, until)


class ClusterReport(NamedTuple):
    """cluster_report's answer: the rows, and whether the read cap left older failures out."""

    rows: list[dict[str, Any]]  # largest first, at most MAX_GROUPS
    truncated: bool  # MAX_FAILURES failing records were read before `since` was reached
    covered_since: float | None  # the oldest time the rows cover: `since`, or when truncated the oldest record read


def cluster_report(store: AuditStore, since: float | None, until: float | None = None,
                   top: int = MAX_GROUPS, limit: int | None = None) -> ClusterReport:
    """The `top` failure clusters over the failing records in [since, until), read newest first (keyset pages):
    when there are more than `limit` (at most MAX_FAILURES), the newest are the ones counted (after a regression,
    they are what an operator looks at), and the answer says so."""
    groups: dict[Key, Group] = {}
    read, before, limit = 0, None, min(limit or MAX_FAILURES, MAX_FAILURES)
    while read < limit:
        want = min(PAGE, limit - read)
        page = _failing(store, since, until, want, before)
        _count(groups, page)
        if len(page) < want:
            return ClusterReport(group_rows(groups, top), False, since)
        read += len(page)
        before = (page[-1]["time"], page[-1]["id"])
    if before is None or not _failing(store, since, until, 1, before):  # exactly `limit`: nothing was left out
        return ClusterReport(group_rows(groups, top), False, since)
    return ClusterReport(group_rows(groups, top), True, before[0])


def _count(groups: dict[Key, Group], rows: Iterable[dict[str, Any]]) -> None:
    """Every cluster of `rows` counted, in a plain dict: unlike the in-process LRU, a report never forgets a
    large cluster for many small later ones (memory: bounded by the rows, at most MAX_FAILURES)."""
    for row in rows:
        for key in failure_keys(row):
            group = groups.get(key)
            if group is None:
                group = groups[key] = Group(row["time"])
            group.add(row["request_id"], row["time"])


def _failing(store: AuditStore, since: float | None, until: float | None, limit: int,
             before: tuple[float, int] | None) -> list[dict[str, Any]]:
    return store.query_failures(since, until, verdicts=(FAIL,), next_turns=LATE_FAILURES, limit=limit, before=before)


def call_value(row: Mapping[str, Any], execution_failed_weight: float) -> float | None:
    """A record's value in a score (loop/scores.py): None when it has no verdict."""
    verdict = row.get("verdict")
    if verdict not in (PASS, FAIL):
        return None
    later = row.get("next_turn")
    if verdict == FAIL or later == CLIENT_REFUSED:
        return 0.0
    return 1.0 - execution_failed_weight if later == EXECUTION_FAILED else 1.0


def score_rows(rows: Iterable[Mapping[str, Any]], execution_failed_weight: float,
               by: Sequence[str] = SCORE_GROUPS) -> list[dict[str, Any]]:
    """Calls, passed and score per group of `by` (route, model, shape, prompt_variant), most calls first, from
    verdict_counts' rows (a row without `count` is one record)."""
    sums: dict[tuple[Any, ...], list[float]] = {}
    for row in rows:
        value = call_value(row, execution_failed_weight)
        if value is None:
            continue
        values = {"route": row.get("route"), "model": row.get("upstream_model"), "shape": row.get("shape"),
                  "prompt_variant": row.get("prompt_variant")}
        key = tuple(values[name] for name in by)
        count = row.get("count", 1)
        acc = sums.setdefault(key, [0, 0, 0.0])
        acc[0] += count
        acc[1] += count if value >= 1.0 else 0
        acc[2] += value * count
    out = []
    for key, (calls, passed, total) in sums.items():
        out.append({**dict(zip(by, key)), "calls": int(calls), "passed": int(passed),
                    "score": round(total / calls, 4)})
    out.sort(key=lambda r: (-r["calls"], tuple(str(r.get(name) or "") for name in by)))
    return out


def with_state(rows: list[dict[str, Any]], board: Scoreboard, weighted: Sequence[WeightedRoute],
               shifting: bool) -> list[dict[str, Any]]:
    """Each row's state (active, demoted, probing) and weight in this process: the weight its weighted route
    gives it (the largest, if several list it), 0 while demoted, None when no weighted route lists it."""
    weights: dict[str, float] = {}
    for route in weighted:
        for cand in route.candidates:
            weights[cand.route] = max(weights.get(cand.route, 0.0), cand.weight)
    state = board.state
    for row in rows:
        route, shape = row.get("route") or "", row.get("shape") or ""
        row["state"] = board.route_state(state, route, shape)
        weight = weights.get(route)
        row["weight"] = 0.0 if weight is not None and shifting and row["state"] != "active" else weight
    return rows


def events(board: Scoreboard, since: float | None, until: float | None = None) -> list[dict[str, Any]]:
    """The scoreboard's shift events in [since, until)."""
    return [
        {"time": e.time, "kind": e.kind, "route": e.route, "shape": e.shape, "score": e.score, "calls": e.calls,
         "detail": e.detail}
        for e in board.events if (since is None or e.time >= since) and (until is None or e.time < until)
    ]
