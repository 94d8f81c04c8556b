"""Scores and clusters as people read them (GET /api/scores, GET /api/clusters, `dragoman scores`, `dragoman
clusters`): computed from the audit store's records over a time range, since the store is the one thing every
worker process shares; the in-process scoreboard (what drives this process's shifts) adds each row's state and
weight, and the shift events. Without a store, the in-process windows are shown instead."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from dragoman.config.model import WeightedRoute
from dragoman.loop.clusters import Clusters
from dragoman.loop.scores import Scoreboard
from dragoman.loop.verdict import CLIENT_REFUSED, EXECUTION_FAILED, FAIL, PASS
from dragoman.observe.stores import AuditStore

PAGE = 1000
MAX_ROWS = 200_000  # records read for one report: a bound on an admin call's time and memory
SCORE_GROUPS = ("route", "model", "shape", "prompt_variant")


def records(store: AuditStore, since: float | None, until: float | None = None) -> Iterator[dict[str, Any]]:
    """The store's records in [since, until), oldest first, at most MAX_ROWS."""
    after, seen = 0, 0
    while seen < MAX_ROWS:
        page = store.query_requests(None, PAGE, since, until, after_id=after)
        if not page:
            return
        for row in page:
            yield row
        seen += len(page)
        after = page[-1]["id"]
        if len(page) < PAGE:
            return


def call_value(row: Mapping[str, Any], execution_failed_weight: float) -> float | None:
    """A record's value in a score (loop/scores.py): None when it has no verdict."""
    verdict = row.get("verdict")
    if verdict not in (PASS, FAIL):
        return None
    later = row.get("next_turn")
    if verdict == FAIL or later == CLIENT_REFUSED:
        return 0.0
    return 1.0 - execution_failed_weight if later == EXECUTION_FAILED else 1.0


def score_rows(rows: Iterator[Mapping[str, Any]] | Sequence[Mapping[str, Any]], execution_failed_weight: float,
               by: Sequence[str] = SCORE_GROUPS) -> list[dict[str, Any]]:
    """Calls, passed and score per group of `by` (route, model, shape, prompt_variant), most calls first."""
    sums: dict[tuple[Any, ...], list[float]] = {}
    for row in rows:
        value = call_value(row, execution_failed_weight)
        if value is None:
            continue
        values = {"route": row.get("route"), "model": row.get("upstream_model"), "shape": row.get("shape"),
                  "prompt_variant": row.get("prompt_variant")}
        key = tuple(values[name] for name in by)
        acc = sums.setdefault(key, [0, 0, 0.0])
        acc[0] += 1
        acc[1] += value >= 1.0
        acc[2] += value
    out = []
    for key, (calls, passed, total) in sums.items():
        out.append({**dict(zip(by, key)), "calls": int(calls), "passed": int(passed),
                    "score": round(total / calls, 4)})
    out.sort(key=lambda r: (-r["calls"], tuple(str(r.get(name) or "") for name in by)))
    return out


def cluster_rows(rows: Iterator[Mapping[str, Any]]) -> list[dict[str, Any]]:
    clusters = Clusters()
    for row in rows:
        clusters.add_record(dict(row))
    return clusters.rows()


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


def events(board: Scoreboard, since: float | None) -> list[dict[str, Any]]:
    return [
        {"time": e.time, "kind": e.kind, "route": e.route, "shape": e.shape, "score": e.score, "calls": e.calls,
         "detail": e.detail}
        for e in board.events if since is None or e.time >= since
    ]
