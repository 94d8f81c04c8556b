"""`dragoman keys create|list|show|revoke|rotate`: virtual keys, managed on the store directly (the store is found
as `dragoman logs` finds it: --store, $DRAGOMAN_AUDIT_STORE, --config's audit.store, the default store).

    dragoman keys create --developer ana --team platform --budget 50/month --rpm 60 --tpm 400k \\
        --models 'gpt-5*,claude-*' --expires 30d
    dragoman keys list
    dragoman keys revoke vk_0123456789abcdef
    dragoman keys rotate vk_0123456789abcdef --grace 1h

A new key is printed once, by `create` and `rotate`, and never again: only its digest is stored. Every other
output shows a key's display prefix (`dgk_AbCdEfGh…`) and id. Running gateways see changes within a second.

No subcommand migrates a store (as the reports, reports.py): DDL from a newer `dragoman` would make the older gateway
writing the store refuse its next start. `list` and `show` read any schema with virtual keys; `create`, `revoke` and
`rotate` write only a store at this dragoman's schema, and create one only where there is none.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any, TextIO

import msgspec

from dragoman.errors import ConfigError
from dragoman.govern.grant import ROLES, USER
from dragoman.govern.key_store import KeyNotFound, KeyStore
from dragoman.govern.keys import KeyInputError, KeySpec, VirtualKey, parse_duration
from dragoman.observe import migrations
from dragoman.observe.stores import AuditStore, StoreError, describe_store, is_postgres, open_store, sqlite_file
from dragoman.reports import FORMATS, StoreUnavailable, format_rows, open_existing_store, store_source

_LIST_COLUMNS = ("id", "prefix", "developer", "team", "role", "models", "budget", "limits", "created", "expires_at",
                 "state")
_json = msgspec.json.Encoder()
_READS = ("list", "show")
KEYS_SCHEMA = 8  # the migration that added the virtual_keys table


def add_commands(subparsers: Any) -> None:
    """Add `keys` and its subcommands to the CLI's subparsers; `run(args)` executes them."""
    keys = subparsers.add_parser("keys", help="virtual keys: create, list, show, revoke, rotate")
    sub = keys.add_subparsers(dest="keys_command", required=True)
    create = sub.add_parser("create", help="create a key and print it (once)")
    create.add_argument("--developer")
    create.add_argument("--team")
    create.add_argument("--repo")
    create.add_argument("--role", default=USER, choices=ROLES, help="user: the Messages API; viewer: also GET /api/…; "
                        "admin: everything")
    create.add_argument("--budget", help="USD per period: 50/month, 20/day, 100/week")
    create.add_argument("--rpm", help="requests per minute")
    create.add_argument("--tpm", help="input tokens per minute: 400k")
    create.add_argument("--output-tpm", dest="output_tpm", help="output tokens per minute")
    create.add_argument("--concurrent", help="concurrent streams")
    create.add_argument("--models", help="model name patterns it may use: 'gpt-5*,claude-*' (default: any)")
    create.add_argument("--expires", help="lifetime: 30d, 12h, 2w (default: never)")
    listing = sub.add_parser("list", help="every key, by prefix and id (never the key)")
    show = sub.add_parser("show", help="one key's settings")
    show.add_argument("id")
    revoke = sub.add_parser("revoke", help="revoke a key: refused within a second on every gateway")
    revoke.add_argument("id")
    rotate = sub.add_parser("rotate", help="replace a key; the old one works for a grace period")
    rotate.add_argument("id")
    rotate.add_argument("--grace", default="1h", help="how long the old key keeps working: 1h, 24h, 0s")
    for parser in (create, listing, show, revoke, rotate):
        parser.add_argument("--store", help="store URL (default: $DRAGOMAN_AUDIT_STORE, the config's audit.store, "
                            "else the gateway's default, $XDG_DATA_HOME/dragoman/dragoman.db)")
        parser.add_argument("--config", help="gateway config file whose audit.store to use")
        parser.add_argument("--format", dest="fmt", default="table", choices=FORMATS)


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Execute `dragoman keys …`; exit status 1 for an unknown key, 2 on bad input or an unusable store."""
    out = out or sys.stdout
    try:
        store = _open(args.keys_command, *store_source(args.store, args.config))
    except (StoreUnavailable, StoreError, ConfigError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - psycopg's connection errors: the reason, not a traceback
        print(f"error: cannot open the store: {err}", file=sys.stderr)
        return 2
    try:
        _dispatch(args, KeyStore(store), out)
        return 0
    except KeyNotFound as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        store.close()


def _open(command: str, url: str, source: str) -> AuditStore:
    """The store, never migrated: StoreUnavailable (one line) when this command cannot use its schema."""
    if command not in _READS and not is_postgres(url) and not os.path.isfile(os.path.abspath(sqlite_file(url))):
        return open_store(url)  # no store yet: made at this dragoman's schema, no older gateway's to upgrade
    store = open_existing_store(url, source, oldest=KEYS_SCHEMA)
    if command in _READS:
        return store
    version = store.schema_version()
    if version != migrations.LATEST:
        store.close()
        raise StoreUnavailable(f"cannot change keys in {describe_store(url)} ({source}): its schema is version "
                               f"{version}, and this dragoman writes {migrations.LATEST} only: {_remedy(version)}")
    return store


def _remedy(version: int) -> str:
    if version > migrations.LATEST:
        return "upgrade Dragoman"
    return ("upgrade the gateway that writes it first (a gateway migrates its store when it starts), or use the "
            "`dragoman keys` of that gateway's version")


def _dispatch(args: argparse.Namespace, keys: KeyStore, out: TextIO) -> None:
    command = args.keys_command
    if command == "create":
        spec = KeySpec(developer=args.developer, team=args.team, repo=args.repo, role=args.role, models=args.models,
                       budget=args.budget, rpm=args.rpm, tpm=args.tpm, output_tpm=args.output_tpm,
                       concurrent=args.concurrent, expires=args.expires)
        key, record = keys.create(spec)
        _print_new(key, record, args.fmt, out)
    elif command == "list":
        _print_keys(keys.every(), args.fmt, out)
    elif command == "show":
        _print_keys([keys.get(args.id)], args.fmt, out)
    elif command == "revoke":
        _print_keys([keys.revoke(args.id)], args.fmt, out)
    elif command == "rotate":
        key, new, old = keys.rotate(args.id, parse_duration(args.grace, "--grace", zero=True))
        _print_new(key, new, args.fmt, out)
        if args.fmt == "table":
            out.write(f"{old.id} ({old.prefix}…) keeps working until {_when(old.expires_at)}\n")


def _print_new(key: str, record: VirtualKey, fmt: str, out: TextIO) -> None:
    if fmt == "json":
        out.write(_json.encode({"key": key, **record.public()}).decode() + "\n")
        return
    if fmt == "csv":
        out.write(format_rows([{"key": key, "id": record.id}], ("key", "id"), "csv"))
        return
    out.write(f"{key}\n")
    out.write(f"id {record.id} for {record.developer or '-'} ({record.team or 'no team'}), role {record.role}. "
              "This is the only time the key is shown: store it now.\n")


def _print_keys(keys: list[VirtualKey], fmt: str, out: TextIO) -> None:
    if fmt == "json":
        out.write(_json.encode([key.public() for key in keys]).decode() + "\n")
        return
    out.write(format_rows([_row(key) for key in keys], _LIST_COLUMNS, fmt))


def _row(key: VirtualKey) -> dict[str, Any]:
    limits = {name: value for name, value in msgspec.to_builtins(key.limits).items() if value is not None}
    return {
        "id": key.id, "prefix": key.prefix + "…", "developer": key.developer, "team": key.team, "role": key.role,
        "models": ",".join(key.models) or None,
        "budget": f"{key.budget.limit_usd:g}/{key.budget.period}" if key.budget is not None else None,
        "limits": " ".join(f"{name}={value}" for name, value in limits.items()) or None,
        "created": _when(key.created), "expires_at": _when(key.expires_at), "state": _state(key),
    }


def _state(key: VirtualKey) -> str:
    refusal = key.refusal(time.time())
    if refusal is None:
        return f"active, rotated to {key.rotated_to}" if key.rotated_to else "active"
    if key.revoked_at is not None:
        return "revoked"
    return f"rotated to {key.rotated_to}" if key.rotated_to else "expired"


def _when(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M")
