"""`dragoman versions` and `dragoman rollback`: config versions from the audit store, a rollback by hand.

    dragoman versions --config dragoman.yaml            # the applications, newest first, with their scores
    dragoman rollback --config dragoman.yaml [VERSION]  # default: the version before the live one

Both work on the store and the config file, not on a running gateway: `rollback` records the rollback in the
store, then writes the earlier text to the file (atomically, inline secrets restored from the file as it is now),
and every gateway watching that file — each worker of each instance — reloads it within a second. That works
with the gateway down too, and needs no admin key; a gateway's `POST /api/rollback` does the same from inside."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from dragoman.config.load import load_config
from dragoman.loop.versions import MANUAL, ConfigVersions, RollbackError, content_version
from dragoman.loop.version_store import VersionIdError
from dragoman.reports import add_limit_option, format_table, open_for_report, store_failed, store_failures
from dragoman.version_api import listing

COLUMNS = ("live", "version", "time", "applied_by", "calls", "score", "rolled_back_from")


def add_commands(subparsers: Any) -> None:
    versions = subparsers.add_parser("versions", help="config versions applied, with their scores (from the store)")
    versions.add_argument("--config", help="the gateway's config file (its audit.store; marks the live version)")
    versions.add_argument("--store", help="audit store URL (default: $DRAGOMAN_AUDIT_STORE, the config's, the default)")
    add_limit_option(versions, 20)
    versions.add_argument("--format", dest="fmt", default="table", choices=("table", "json"))
    rollback = subparsers.add_parser("rollback", help="write an earlier config version back to the config file")
    rollback.add_argument("version", nargs="?", help="the version (6+ of its hex digits); default: the previous")
    rollback.add_argument("--config", required=True, help="the gateway's config file, rewritten in place")
    rollback.add_argument("--store", help="audit store URL (default: $DRAGOMAN_AUDIT_STORE, the config's, the default)")


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Exit status 0, 1 when there is no store or it cannot be read, 2 on bad input or a refused rollback.

    `rollback` writes (a config_versions row) but, as the reports, never migrates the store: the table it writes has
    been there since schema 6, and DDL from a newer CLI would make the older gateway that writes the store refuse
    its next start."""
    out = out or sys.stdout
    opened = open_for_report(args, lambda: load_config(args.config, missing_secrets=[]) if args.config else None)
    if isinstance(opened, int):
        return opened
    store, config = opened
    try:
        if args.command == "versions":
            # With --config, that file's versions only (loop/versions.py: versions belong to a config file, and
            # gateways with other files may share the store); without, every file's.
            source = os.path.abspath(args.config) if args.config else None
            return _list(store, config, args.limit, args.fmt, out, source)
        assert config is not None
        versions = ConfigVersions(config, store, None, path=os.path.abspath(args.config))
        try:
            live = versions.rollback(args.version, MANUAL, "dragoman rollback")
        except (RollbackError, VersionIdError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(f"{args.config}: now version {live}; gateways watching the file reload it", file=out)
        return 0
    except store_failures() as err:
        return store_failed(err)
    finally:
        store.close()


def _list(store: Any, config: Any, limit: int, fmt: str, out: TextIO, source: str | None) -> int:
    from dragoman.loop import version_store

    entries = version_store.history(store, max(1, limit), source=source)
    live = content_version(config.text) if config is not None and config.text else (entries[0].version if entries else "")
    shown = listing(entries, live)
    if fmt == "json":
        import msgspec

        out.write(msgspec.json.encode(shown).decode() + "\n")
        return 0
    rows = [{**row, "live": "*" if row["live"] else "", "time": _when(row["time"]),
             "score": None if row["score"] is None else f"{100 * row['score']:.1f}%"} for row in shown["data"]]
    out.write(format_table(rows, COLUMNS))
    return 0


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")
