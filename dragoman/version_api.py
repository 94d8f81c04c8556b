"""The admin API of config versions (behind an admin key, like admin_api.py):

    GET  /api/versions              {"live": v, "data": [{version, time, applied_by, calls, passed, score, live,
                                     rolled_back_from}]}, newest application first
    GET  /api/versions/<version>    one of those plus "content": the config text, inline secrets masked
    POST /api/rollback              body {"version": v | null} (null: the version before the live one) → {"live": v};
                                    400 when v is not 6+ hex digits or begins several versions

Registered in admin_api.py's endpoint table (its handlers run in the default executor: store reads, the
rollback's file write)."""

from __future__ import annotations

from typing import Any

import msgspec

from dragoman import errors as E
from dragoman.admin_api import ApiCall, check_params, endpoint
from dragoman.loop.secret_mask import mask_secrets
from dragoman.loop.version_store import VersionEntry, VersionIdError
from dragoman.loop.versions import ConfigVersions, RollbackError


class RollbackBody(msgspec.Struct, forbid_unknown_fields=True):
    version: str | None = None


_decode_rollback = msgspec.json.Decoder(RollbackBody).decode


class _Conflict(E.GatewayError):
    status = 409
    error_type = "invalid_request_error"


def _versions(call: ApiCall) -> ConfigVersions:
    versions = call.services.versions
    if versions is None:
        raise E.NotFound("config versions are not available before the gateway has started")
    return versions


def _list(call: ApiCall) -> dict[str, Any]:
    check_params(call.params, frozenset())
    versions = _versions(call)
    return listing(versions.history(), versions.live)


def _one(call: ApiCall) -> dict[str, Any]:
    check_params(call.params, frozenset())
    versions, version = _versions(call), call.match["version"]
    try:
        entry = versions.find(version)
    except VersionIdError as err:
        if err.candidates:  # it names a version, but not one alone
            raise E.InvalidRequest(str(err)) from None
        entry = None  # not a version's digits: no such version
    if entry is None:
        raise E.NotFound(f"no config version {version[:40]!r} (GET /api/versions lists them)")
    # masked again as it is read: a version stored before a kind of secret was masked (a URL's ?password=) is
    # shown masked too; a masked text is left as it is
    content = mask_secrets(entry.content) if entry.content is not None else None
    return {**shown(entry, versions.live), "content": content}


def _rollback(call: ApiCall) -> dict[str, Any]:
    target = E.decode_body(_decode_rollback, call.body or b"{}").version
    who = call.grant.key_id
    try:
        live = _versions(call).rollback(target, f"rollback:admin {who}", f"by admin key {who}")
    except VersionIdError as err:  # the request's fault (not hex, ambiguous), not the state's
        raise E.InvalidRequest(str(err)) from None
    except RollbackError as err:
        raise _Conflict(str(err)) from None
    return {"live": live}


endpoint("GET", "/api/versions", _list)
endpoint("GET", "/api/versions/{version}", _one)
endpoint("POST", "/api/rollback", _rollback)


def listing(entries: list[VersionEntry], live: str) -> dict[str, Any]:
    """GET /api/versions: the newest application of the live version is the one marked live."""
    first = next((i for i, e in enumerate(entries) if e.version == live), None)
    return {"live": live, "data": [shown(e, live if i == first else None) for i, e in enumerate(entries)]}


def shown(entry: VersionEntry, live: str | None) -> dict[str, Any]:
    """An entry as the API and `dragoman versions --format json` show it (CONTRACTS.md)."""
    return {"version": entry.version, "time": entry.time, "applied_by": entry.applied_by, "calls": entry.calls,
            "passed": entry.passed, "score": entry.score, "live": entry.version == live,
            "rolled_back_from": entry.rolled_back_from}
