"""The correctness loop's admin endpoints, in admin_api.py's style: GET /api/scores and GET /api/clusters behind
an admin key (shapes: README, "Scores and clusters").

    GET /api/scores?since=24h     {"since", "data": [{route, model, shape, prompt_variant, calls, passed, score,
                                   state, weight}], "events": [{time, kind, route, shape, score, calls, detail}]}
    GET /api/clusters?since=24h   {"since", "data": [{kind, tool, route, model, count, first_seen, last_seen,
                                   examples}], "truncated", "covered_since" (only when truncated)}
                                  (`limit`: read fewer failing records than report.MAX_FAILURES)

Rows come from the audit store over [since, until) (every worker's calls); state, weight and events from this
process's scoreboard (what drives its shifts). Without a store, the in-process windows answer. Clusters read at
most report.MAX_FAILURES failing records, the newest: past that, `truncated` is true and `covered_since` is the
oldest time they cover."""

from __future__ import annotations

from collections.abc import Sequence

from dragoman import errors as E
from dragoman.admin_api import ApiCall, _audit_or_none, check_params, endpoint, param_int, param_time
from dragoman.config.model import WeightedRoute
from dragoman.loop import report
from dragoman.loop.clusters import Clusters
from dragoman.loop.scores import Scoreboard

PATHS = ("/api/scores", "/api/clusters")
_PARAMS = frozenset(("since", "until"))
_CLUSTER_PARAMS = _PARAMS | {"limit"}


class LoopView:
    """What the endpoints read from this process: its scoreboard and clusters, the live config's weighted routes,
    and whether shifting is on."""

    def __init__(self, board: Scoreboard, clusters: Clusters, weighted: Sequence[WeightedRoute], shifting: bool) -> None:
        self.board = board
        self.clusters = clusters
        self.weighted = weighted
        self.shifting = shifting


def _window(call: ApiCall, accepted: frozenset[str] = _PARAMS) -> tuple[LoopView, float | None, float | None]:
    view = call.services.loop_view
    if view is None:
        raise E.NotFound("the correctness loop is not running in this process")
    check_params(call.params, accepted)
    return view, param_time(call.params, "since", "24h"), param_time(call.params, "until")


def _scores(call: ApiCall) -> dict:
    view, since, until = _window(call)
    board, store = view.board, _audit_or_none(call)
    if store is not None:
        rows = report.score_rows(report.verdict_counts(store, since, until), board.settings.execution_failed_weight)
    else:
        rows = [{k: v for k, v in row.items() if k != "state"} for row in board.rows()]
    return {"since": since, "data": report.with_state(rows, board, view.weighted, view.shifting),
            "events": report.events(board, since, until)}


def _clusters(call: ApiCall) -> dict:
    view, since, until = _window(call, _CLUSTER_PARAMS)
    # A smaller read than the cap answers sooner; it also lets a test reach a cut report without 200,000 records.
    limit = param_int(call.params, "limit", 1, report.MAX_FAILURES)
    store = _audit_or_none(call)
    if store is None:
        return {"since": since, "data": view.clusters.rows(), "truncated": False}
    found = report.cluster_report(store, since, until, limit=limit)
    answer = {"since": since, "data": found.rows, "truncated": found.truncated}
    if found.truncated:
        answer["covered_since"] = found.covered_since
    return answer


endpoint("GET", "/api/scores", _scores)
endpoint("GET", "/api/clusters", _clusters)
