"""The correctness loop's admin endpoints, in admin_api.py's style: GET /api/scores and GET /api/clusters behind
an admin key (shapes: README, "Scores and clusters").

    GET /api/scores?since=24h     {"since", "data": [{route, model, shape, prompt_variant, calls, passed, score,
                                   state, weight}], "events": [{time, kind, route, shape, score, calls, detail}]}
    GET /api/clusters?since=24h   {"since", "data": [{kind, tool, route, model, count, first_seen, last_seen,
                                   examples}]}

Rows come from the audit store over `since` (every worker's calls); state, weight and events from this process's
scoreboard (what drives its shifts). Without a store, the in-process windows answer."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

import msgspec

from dragoman import errors as E
from dragoman.admin_api import authorize, known_params, time_param
from dragoman.config.model import WeightedRoute
from dragoman.loop import report
from dragoman.loop.clusters import Clusters
from dragoman.loop.scores import Scoreboard
from dragoman.observe.stores import AuditStore, StoreError
from dragoman.reports import ReportError

PATHS = ("/api/scores", "/api/clusters")
_PARAMS = frozenset(("since", "until"))


class LoopView:
    """What the endpoints read from this process: its scoreboard and clusters, the live config's weighted routes,
    and whether shifting is on."""

    def __init__(self, board: Scoreboard, clusters: Clusters, weighted: Sequence[WeightedRoute], shifting: bool) -> None:
        self.board = board
        self.clusters = clusters
        self.weighted = weighted
        self.shifting = shifting


def handle(store: AuditStore | None, view: LoopView, path: str, query_string: bytes | str,
           headers: Iterable[tuple[bytes, bytes]], admin_keys: Sequence[str]) -> tuple[int, bytes]:
    """200 with the endpoint's JSON, or an Anthropic-shaped error."""
    try:
        params = authorize(query_string, list(headers), admin_keys)
        try:
            known_params(params, _PARAMS)
            since = time_param(params, "since", "24h")
            until = time_param(params, "until")
            return 200, msgspec.json.encode(_answer(store, view, path, since, until))
        except (ReportError, StoreError) as err:
            raise E.InvalidRequest(str(err)) from None
    except E.GatewayError as err:
        return err.status, E.error_body(err.error_type, err.message)


async def loop_api(store: AuditStore | None, view: LoopView, path: str, query_string: bytes | str,
                   headers: Iterable[tuple[bytes, bytes]], admin_keys: Sequence[str]) -> tuple[int, bytes]:
    """`handle` in the default executor: reading the store blocks."""
    headers = list(headers)
    return await asyncio.get_running_loop().run_in_executor(
        None, handle, store, view, path, query_string, headers, admin_keys)


def _answer(store: AuditStore | None, view: LoopView, path: str, since: float | None, until: float | None) -> dict:
    board = view.board
    if path == "/api/scores":
        if store is not None:
            rows = report.score_rows(report.records(store, since, until), board.settings.execution_failed_weight)
        else:
            rows = [{k: v for k, v in row.items() if k != "state"} for row in board.rows()]
        return {"since": since, "data": report.with_state(rows, board, view.weighted, view.shifting),
                "events": report.events(board, since)}
    if path == "/api/clusters":
        data = report.cluster_rows(report.records(store, since, until)) if store is not None else view.clusters.rows()
        return {"since": since, "data": data}
    raise E.NotFound(f"no such endpoint: {path}")
