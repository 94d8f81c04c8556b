"""`dragoman logs` and `dragoman costs`: the functions behind the CLI, usable as a library.

    dragoman logs --developer alice --status 5xx --since 24h
    dragoman logs --repo web --follow
    dragoman costs --by developer --since 7d --format csv

The store comes from --store, else $DRAGOMAN_AUDIT_STORE, else --config's `audit.store`, else the gateway's default
($XDG_DATA_HOME/dragoman/dragoman.db): the same file from any directory. A report never creates a store, and
never migrates one (OLDEST_READ_SCHEMA).
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import re
import sqlite3
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO, TypeVar

import msgspec

from dragoman.config.load import load_config
from dragoman.errors import ConfigError
from dragoman.observe import migrations
from dragoman.observe.stores import (
    COST_GROUPS,
    COST_KEYS,
    AuditStore,
    default_store,
    describe_store,
    is_postgres,
    open_store,
    sqlite_file,
)

FORMATS = ("table", "csv", "json")
LIMIT_MAX = 10_000  # --limit's largest: rows a report prints
LOG_COLUMNS = ("time_iso", "developer", "repo", "route", "upstream_model", "status", "error_type",
               "latency_total_ms", "ttfb_ms", "input_tokens", "output_tokens", "cost_usd", "verdict", "request_id")
LOG_FILTERS = ("developer", "team", "repo", "route", "status", "key_id", "session", "request_id")
_FOLLOW_WIDTHS = {"time_iso": 19, "developer": 14, "repo": 14, "route": 18, "upstream_model": 14, "status": 6,
                  "error_type": 16, "latency_total_ms": 9, "ttfb_ms": 8, "input_tokens": 8, "output_tokens": 8,
                  "cost_usd": 10, "verdict": 22, "request_id": 28}
_HEADERS = {"time_iso": "time (UTC)", "upstream_model": "model", "latency_total_ms": "total_ms",
            "input_tokens": "in", "output_tokens": "out", "cache_read_tokens": "cache_read",
            "reasoning_tokens": "reasoning", "error_type": "error"}
_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_EARLIEST = datetime(1, 1, 1, tzinfo=UTC).timestamp()
_LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()
_json = msgspec.json.Encoder()
# The oldest audit schema the reports (logs, costs, scores, clusters, versions, rollback) read: 9 added the last
# columns they select (budget_developer and budget_team, in every `logs` row). A store is read at the schema it has,
# never migrated: DDL from a newer CLI would make the older gateway writing the store refuse its next start (its
# schema would be newer than the gateway's). Raise this when a report reads what a later migration adds:
# tests/test_reports_read_a_store_as_it_is.py writes a record at this schema and runs every report on it.
OLDEST_READ_SCHEMA = 9

T = TypeVar("T")


class ReportError(ValueError):
    """Bad CLI input: the message says what to write instead."""


class StoreUnavailable(Exception):
    """The store a report would read cannot be read: not a store, unreachable, failing, or at a schema this dragoman
    does not read. The message says which; exit status 1."""


class NoStore(StoreUnavailable):
    """The store a report would read does not exist: the message says where it looked and how to point elsewhere."""


def parse_time(text: str | None, now: float | None = None) -> float | None:
    """`7d`, `24h`, `30m`, `2w` (that long ago), `2026-11-01` or `2026-11-01T10:00` (UTC unless an offset is
    given), or epoch seconds → epoch seconds, from year 1 to 9999. None stays None."""
    if text is None or text == "":
        return None
    moment = _moment(text, time.time() if now is None else now)
    # float() reads "inf", "nan" and 400 digits (inf): arithmetic on such a time ends in a ValueError deep in a
    # query (math.ceil(nan)), so only the times a datetime can hold pass.
    if not _EARLIEST <= moment <= _LATEST:
        raise ReportError(f"time {text[:40]!r}: write a time from year 1 to 9999, such as 7d, 24h, 30m, 2026-11-01 "
                          "or 2026-11-01T10:00")
    return moment


def _moment(text: str, now: float) -> float:
    match = _RELATIVE.match(text)
    if match:
        return now - float(match.group(1)) * _UNIT[match.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ReportError(f"time {text[:40]!r}: write 7d, 24h, 30m, 2026-11-01 or 2026-11-01T10:00") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


# ---- formatting --------------------------------------------------------------------------------------------


def format_rows(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], fmt: str) -> str:
    """Rows as an aligned table, CSV (these columns) or JSON (whole rows)."""
    if fmt == "json":
        return _json.encode(list(rows)).decode() + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_csv_cell(row.get(c)) for c in columns])
        return buf.getvalue()
    if fmt == "table":
        return format_table(rows, columns)
    raise ReportError(f"format {fmt!r}: choose one of {', '.join(FORMATS)}")


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """An aligned text table: numbers right-aligned, empty values as '-'."""
    header = [_HEADERS.get(c, c) for c in columns]
    cells = [[_cell(c, verdict_text(row) if c == "verdict" else row.get(c)) for c in columns] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(header)]
    numeric = [all(_is_number(row.get(c)) for row in rows if row.get(c) is not None) and bool(rows) for c in columns]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    for r in cells:
        lines.append("  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(r, widths, numeric)).rstrip())
    return "\n".join(lines) + "\n"


def verdict_text(row: Mapping[str, Any]) -> str | None:
    """The correctness loop's verdict as one cell: `pass`, `fail:schema_violation` (the first failure kind), and
    what the next turn said when it was not fine (`pass>client_refused`)."""
    verdict = row.get("verdict")
    if verdict is None:
        return None
    kinds = [k for k in row.get("verdict_kinds") or () if k != "repaired_tool_json"]
    text = f"{verdict}:{kinds[0]}" if verdict == "fail" and kinds else verdict
    next_turn = row.get("next_turn")
    return f"{text}>{next_turn}" if next_turn and next_turn != "ok" else text


def _cell(column: str, value: Any) -> str:
    if value is None or value == "":
        return "-"
    if column == "time_iso" and isinstance(value, str):
        return value[:19].replace("T", " ")
    if column == "cost_usd":
        return f"{value:.6f}"  # one request often costs a fraction of a cent
    if isinstance(value, float):
        return f"{value:.0f}" if column.endswith("_ms") else f"{value:g}"
    if isinstance(value, (list, dict)):
        return _json.encode(value).decode()
    return str(value)


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return _json.encode(value).decode()
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# ---- the two reports ---------------------------------------------------------------------------------------


def logs(
    store: AuditStore,
    out: TextIO,
    *,
    filters: Mapping[str, Any] | None = None,
    since: float | None = None,
    until: float | None = None,
    limit: int = 50,
    fmt: str = "table",
    columns: Sequence[str] = LOG_COLUMNS,
) -> int:
    """Print matching requests, oldest first (the newest `limit`); returns how many."""
    rows = store.query_requests(filters, limit, since, until)[::-1]
    out.write(format_rows(rows, columns, fmt))
    return len(rows)


def follow(
    store: AuditStore,
    out: TextIO,
    *,
    filters: Mapping[str, Any] | None = None,
    since: float | None = None,
    fmt: str = "table",
    columns: Sequence[str] = LOG_COLUMNS,
    poll_interval: float = 1.0,
    backlog: int = 20,
    keep_going: Callable[[], bool] = lambda: True,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """`logs --follow`: the last `backlog` rows, then new rows as they are written, until keep_going() is false.

    Polls by row id. On PostgreSQL a batch can commit after a later-numbered one, so each poll looks back
    `_REWIND` ids and skips rows already shown."""
    rows = store.query_requests(filters, backlog, since, None)[::-1]
    seen = {row["id"] for row in rows}
    last = max(seen, default=0)
    printed = _emit(rows, out, fmt, columns, header=True)
    while keep_going():
        sleep(poll_interval)
        fresh = [row for row in store.query_requests(filters, 1000, since, None, after_id=max(0, last - _REWIND))
                 if row["id"] not in seen]
        if fresh:
            seen.update(row["id"] for row in fresh)
            last = max(last, max(row["id"] for row in fresh))
            if len(seen) > 10 * _REWIND:
                seen = {i for i in seen if i > last - _REWIND}
            printed += _emit(fresh, out, fmt, columns, header=False)
    return printed


_REWIND = 256


def _emit(rows: Sequence[Mapping[str, Any]], out: TextIO, fmt: str, columns: Sequence[str], header: bool) -> int:
    """Follow mode output: JSON lines, CSV rows, or fixed-width table lines (widths can't wait for all rows)."""
    if fmt == "json":
        out.writelines(_json.encode(row).decode() + "\n" for row in rows)
    elif fmt == "csv":
        text = format_rows(rows, columns, "csv")
        out.write(text if header else text.split("\n", 1)[1])
    else:
        widths = [max(_FOLLOW_WIDTHS.get(c, 12), len(_HEADERS.get(c, c))) for c in columns]
        if header:
            out.write("  ".join(_HEADERS.get(c, c).ljust(w) for c, w in zip(columns, widths)).rstrip() + "\n")
        for row in rows:
            cells = [_cell(c, verdict_text(row) if c == "verdict" else row.get(c))[:w] for c, w in zip(columns, widths)]
            out.write("  ".join(v.ljust(w) for v, w in zip(cells, widths)).rstrip() + "\n")
    out.flush()
    return len(rows)


def costs(
    store: AuditStore,
    out: TextIO,
    *,
    by: str = "developer",
    since: float | None = None,
    until: float | None = None,
    fmt: str = "table",
) -> list[dict[str, Any]]:
    """Print cost per developer/repo/team/model/route (a TOTAL line in table form); returns the rows."""
    if by not in COST_GROUPS:
        raise ReportError(f"--by {by!r}: choose one of {', '.join(COST_GROUPS)}")
    rows = store.query_costs(by, since, until)
    columns = (by, *COST_KEYS)
    shown: list[dict[str, Any]] = rows
    if fmt == "table" and rows:
        total: dict[str, Any] = {by: "TOTAL"}
        for key in COST_KEYS:
            values = [row[key] for row in rows if row[key] is not None]
            total[key] = round(sum(values), 6) if values else None
        shown = [*rows, total]
    out.write(format_rows(shown, columns, fmt))
    return rows


# ---- CLI -----------------------------------------------------------------------------------------------------


def add_commands(subparsers: Any) -> None:
    """Add `logs` and `costs` to the CLI's subparsers; `run(args)` executes them."""
    logs_cmd = subparsers.add_parser("logs", help="show audited requests (filter, follow)")
    _common(logs_cmd)
    for name in LOG_FILTERS:
        help_text = "a code (429), a class (4xx, 5xx), ok, error or cancelled" if name == "status" else None
        logs_cmd.add_argument("--" + name.replace("_", "-"), dest=name, help=help_text)
    logs_cmd.add_argument("--until", help="end time (same forms as --since)")
    add_limit_option(logs_cmd, 50)
    logs_cmd.add_argument("-f", "--follow", action="store_true", help="keep printing new requests")
    costs_cmd = subparsers.add_parser("costs", help="cost and tokens per developer, repo, team, model or route")
    _common(costs_cmd)
    costs_cmd.add_argument("--by", default="developer", choices=list(COST_GROUPS))
    costs_cmd.add_argument("--until", help="end time (same forms as --since)")


def add_limit_option(parser: argparse.ArgumentParser, default: int) -> None:
    """--limit: how many rows a report shows, from 1 to LIMIT_MAX."""
    parser.add_argument("--limit", type=_limit, default=default, help=f"rows to show, 1 to {LIMIT_MAX}")


def _limit(text: str) -> int:
    # Refused by argparse (a usage error, exit 2) rather than left to the store, where a number past 2**63 ends
    # in an OverflowError traceback from SQLite and 0 or less would quietly mean 1.
    return bounded_number(text, 1, LIMIT_MAX)


def bounded_number(text: str, low: int, high: int) -> int:
    """An argparse `type=`: the whole number `text` when it is from `low` to `high`, else a usage error."""
    try:
        value = int(text)
    except ValueError:  # not a number, or more digits than int() converts
        value = None
    if value is None or not low <= value <= high:
        raise argparse.ArgumentTypeError(f"{text[:40]!r}: write a number from {low} to {high}")
    return value


def add_store_options(parser: argparse.ArgumentParser) -> None:
    """--store, --config, --since and --format, as every report reads them."""
    _common(parser)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", help="audit store URL (default: $DRAGOMAN_AUDIT_STORE, the config's, "
                        "else the gateway's default, $XDG_DATA_HOME/dragoman/dragoman.db)")
    parser.add_argument("--config", help="gateway config file whose audit.store to read")
    parser.add_argument("--since", default=None, help="7d, 24h, 30m, 2026-11-01, 2026-11-01T10:00")
    parser.add_argument("--format", dest="fmt", default="table", choices=FORMATS)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Execute `dragoman logs` or `dragoman costs`; exit status 1 when there is no store or it cannot be
    read, 2 on bad input."""
    out = out or sys.stdout
    opened = open_for_report(args, lambda: (parse_time(args.since), parse_time(getattr(args, "until", None))))
    if isinstance(opened, int):
        return opened
    store, (since, until) = opened
    try:
        if args.command == "costs":
            costs(store, out, by=args.by, since=parse_time(args.since or "30d"), until=until, fmt=args.fmt)
            return 0
        filters = {name: getattr(args, name) for name in LOG_FILTERS if getattr(args, name, None) is not None}
        if args.follow:
            follow(store, out, filters=filters, since=since, fmt=args.fmt)
        else:
            logs(store, out, filters=filters, since=since, until=until, limit=args.limit, fmt=args.fmt)
        return 0
    except KeyboardInterrupt:
        return 0
    except store_failures() as err:
        return store_failed(err)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        store.close()


def open_for_report(args: argparse.Namespace, read_args: Callable[[], T]) -> tuple[AuditStore, T] | int:
    """The store a report reads (--store, --config) and its other arguments as `read_args` reads them; or, after
    printing why, the exit status: 1 when there is no store or it cannot be read, 2 on bad input."""
    try:
        values = read_args()
        return open_existing_store(*store_source(args.store, args.config)), values
    except StoreUnavailable as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except (ReportError, ConfigError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def store_url(explicit: str | None, config_path: str | None, env: Mapping[str, str] | None = None) -> str:
    """Which store a report reads: --store, $DRAGOMAN_AUDIT_STORE, the config file's audit.store, the default."""
    return store_source(explicit, config_path, env)[0]


def store_source(explicit: str | None, config_path: str | None,
                 env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(store URL, where that choice came from) for a report."""
    env = os.environ if env is None else env
    if explicit:
        return explicit, "--store"
    if env.get("DRAGOMAN_AUDIT_STORE"):
        return env["DRAGOMAN_AUDIT_STORE"], "$DRAGOMAN_AUDIT_STORE"
    if config_path:
        # Secrets play no part in finding the store: a report runs where the gateway's keys may not be set.
        store = load_config(config_path, env, missing_secrets=[]).observe.audit.store
        if store is not None:
            return store, f"audit.store in {config_path}"
    return default_store(env), "the default: $XDG_DATA_HOME/dragoman, else ~/.local/share/dragoman"


def open_existing_store(url: str, source: str, oldest: int = OLDEST_READ_SCHEMA) -> AuditStore:
    """Open a store a gateway has written, as it is: none is created (SQLite would create an empty file on connect,
    and the report would then show nothing without saying why) and none migrated (OLDEST_READ_SCHEMA). NoStore when
    a SQLite file is missing; StoreUnavailable when the store cannot be read, or this dragoman does not read its
    schema; StoreError for a URL that names no store."""
    if not is_postgres(url):
        path = os.path.abspath(sqlite_file(url))
        if not os.path.isfile(path):
            raise NoStore(
                f"no audit store at {path} ({source}); a gateway creates it on its first start.\n"
                "To read another store, pass --store URL or --config FILE, or set DRAGOMAN_AUDIT_STORE."
            )
    where = f"{describe_store(url)} ({source})"
    try:
        store = open_store(url, migrate=False)
    except Exception as exc:  # noqa: BLE001 - psycopg missing: the user needs the reason, not a traceback
        raise StoreUnavailable(f"cannot open the audit store {where}: {_one_line(exc)}") from None
    try:
        version = store.schema_version()
    except Exception as exc:  # noqa: BLE001 - a file that is not SQLite, a server that refuses us, no schema at all
        store.close()
        raise StoreUnavailable(f"cannot read the audit store {where}: {_one_line(exc)}") from None
    if not oldest <= version <= migrations.LATEST:
        store.close()
        raise StoreUnavailable(f"cannot read the audit store {where}: {_schema_refusal(version, oldest)}")
    return store


def _schema_refusal(version: int, oldest: int) -> str:
    if version > migrations.LATEST:
        return f"its schema is version {version}, newer than this dragoman's {migrations.LATEST}: upgrade Dragoman"
    return (f"its schema is version {version}, and this dragoman reads {oldest} to {migrations.LATEST}: "
            "upgrade the gateway that writes it (a gateway migrates its store when it starts), or read it with the "
            "dragoman that gateway runs")


def store_failures() -> tuple[type[Exception], ...]:
    """What a store raises when it fails under a query (a file that is not SQLite, locked or corrupt, a server
    gone): `except store_failures()` turns it into one line, exit 1. psycopg's errors only once a PostgreSQL store
    has imported psycopg (no other store raises them, and importing it costs every command)."""
    psycopg = sys.modules.get("psycopg")
    return (sqlite3.Error,) if psycopg is None else (sqlite3.Error, psycopg.Error)


def store_failed(err: Exception) -> int:
    """Say that the store failed, in one line; the exit status (1)."""
    print(f"error: the audit store failed: {_one_line(err)}", file=sys.stderr)
    return 1


def _one_line(err: Exception) -> str:
    """A store's error as one line: psycopg's add lines of hints ("Is the server running on that host…")."""
    return " ".join(str(err).split())
