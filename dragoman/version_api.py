"""The admin API of config versions (behind an admin key, like admin_api.py):

    GET  /api/versions              {"live": v, "data": [{version, time, applied_by, calls, passed, score, live,
                                     rolled_back_from}]}, newest application first
    GET  /api/versions/<version>    one of those plus "content": the config text, inline secrets masked
    POST /api/rollback              body {"version": v | null} (null: the version before the live one) → {"live": v}

Store reads and the rollback (a file write) run in the default executor."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from dragoman import errors as E
from dragoman.client_keys import key_holder
from dragoman.config.secrets import key_fingerprint
from dragoman.key_table import KeyTable
from dragoman.loop.version_store import VersionEntry
from dragoman.loop.versions import ConfigVersions, RollbackError

MAX_BODY = 4096
_encode = msgspec.json.encode


class RollbackBody(msgspec.Struct, forbid_unknown_fields=True):
    version: str | None = None


class _Conflict(E.GatewayError):
    status = 409
    error_type = "invalid_request_error"


class _MethodNotAllowed(E.GatewayError):
    status = 405
    error_type = "invalid_request_error"


def is_versions_path(path: str) -> bool:
    return path == "/api/versions" or path.startswith("/api/versions/") or path == "/api/rollback"


def admin_id(headers: list[tuple[bytes, bytes]], admin_keys: tuple[str, ...] | list[str]) -> str:
    """The calling admin key's id (its fingerprint), or the GatewayError to answer."""
    if not admin_keys:
        raise E.PermissionDenied("the admin API is off: set admin.keys (or DRAGOMAN_ADMIN_KEYS)")
    return key_holder(KeyTable({key: key_fingerprint(key) for key in admin_keys}), headers, "admin key")


async def versions_api(versions: ConfigVersions | None, method: str, path: str, body: bytes | None,
                       who: str) -> bytes:
    """The answer's body for an authenticated admin `who`; raises the GatewayError to answer otherwise."""
    if versions is None:
        raise E.NotFound("config versions are not available before the gateway has started")
    run = asyncio.get_running_loop().run_in_executor
    if path == "/api/rollback":
        if method != "POST":
            raise _MethodNotAllowed(f"method {method} is not allowed here: POST /api/rollback")
        target = E.decode_body(msgspec.json.Decoder(RollbackBody).decode, body or b"{}").version
        try:
            live = await run(None, versions.rollback, target, f"rollback:admin {who}", f"by admin key {who}")
        except RollbackError as err:
            raise _Conflict(str(err)) from None
        return _encode({"live": live})
    if method not in ("GET", "HEAD"):
        raise _MethodNotAllowed(f"method {method} is not allowed here: GET {path}")
    if path == "/api/versions":
        entries = await run(None, versions.history)
        return _encode(listing(entries, versions.live))
    version = path[len("/api/versions/"):]
    entry = await run(None, versions.find, version) if version.isalnum() else None
    if entry is None:
        raise E.NotFound(f"no config version {version[:40]!r} (GET /api/versions lists them)")
    return _encode({**shown(entry, versions.live), "content": entry.content})


def listing(entries: list[VersionEntry], live: str) -> dict[str, Any]:
    """GET /api/versions: the newest application of the live version is the one marked live."""
    first = next((i for i, e in enumerate(entries) if e.version == live), None)
    return {"live": live, "data": [shown(e, live if i == first else None) for i, e in enumerate(entries)]}


def shown(entry: VersionEntry, live: str | None) -> dict[str, Any]:
    """An entry as the API and `dragoman versions --format json` show it (CONTRACTS.md)."""
    return {"version": entry.version, "time": entry.time, "applied_by": entry.applied_by, "calls": entry.calls,
            "passed": entry.passed, "score": entry.score, "live": entry.version == live,
            "rolled_back_from": entry.rolled_back_from}
