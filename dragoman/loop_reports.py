"""`dragoman scores` and `dragoman clusters`: the correctness loop's scores and failure clusters, read from the
audit store's records (every worker's calls; reports.py's store options), as GET /api/scores and /api/clusters
compute them (loop/report.py). Whether a candidate is demoted right now is a running gateway's state: ask its
GET /api/scores."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, TextIO

from dragoman.config.loop import ShiftSettings
from dragoman.config.load import load_config
from dragoman.loop import report
from dragoman.reports import (
    add_store_options,
    format_rows,
    open_for_report,
    parse_time,
    store_failed,
    store_failures,
)

COMMANDS = ("scores", "clusters")
_BY = ("route", "model", "shape")
_CLUSTER_COLUMNS = ("kind", "tool", "route", "model", "count", "first_seen", "last_seen", "examples")


def add_commands(subparsers: Any) -> None:
    """Add `scores` and `clusters` to the CLI's subparsers."""
    scores = subparsers.add_parser("scores", help="verdict scores per route, model, turn shape and prompt variant")
    add_store_options(scores)
    scores.add_argument("--by", choices=_BY, help="one line per route, model or shape (default: per all four)")
    clusters = subparsers.add_parser("clusters", help="failing verdicts by kind, tool, route and model")
    add_store_options(clusters)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Execute `dragoman scores` or `dragoman clusters` (--since defaults to 24h); 1 when there is no store or
    it cannot be read, 2 on bad input."""
    out = out or sys.stdout
    opened = open_for_report(args, lambda: (parse_time(args.since or "24h"), _execution_failed_weight(args.config)))
    if isinstance(opened, int):
        return opened
    store, (since, weight) = opened
    try:
        if args.command == "scores":
            by = (args.by,) if args.by else report.SCORE_GROUPS
            rows = report.score_rows(report.verdict_counts(store, since), weight, by)
            out.write(format_rows(rows, (*by, "calls", "passed", "score"), args.fmt))
        else:
            found = report.cluster_report(store, since)
            out.write(format_rows(found.rows, _CLUSTER_COLUMNS, args.fmt))
            if found.truncated:
                _say_truncated(found.covered_since)
        return 0
    except store_failures() as err:
        return store_failed(err)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        store.close()


def _say_truncated(covered_since: float | None) -> None:
    """On stderr, so that --format csv|json output stays parseable."""
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(covered_since or 0))
    print(f"note: more than {report.MAX_FAILURES} failing records in the range: these clusters count the newest, "
          f"back to {when}", file=sys.stderr)


def _execution_failed_weight(config_path: str | None) -> float:
    if config_path is None:
        return ShiftSettings().execution_failed_weight
    return load_config(config_path, missing_secrets=[]).loop.shift.execution_failed_weight
