"""The admin JSON API for the dashboard: GET /api/requests and GET /api/costs, behind an admin key.

Framework-free like the server: `handle(store, path, query_string, headers, admin_keys)` → (status, body).
It runs blocking store queries, so the server calls it in an executor: `await admin_api(...)`.

    GET /api/requests?developer=alice&status=5xx&since=24h&limit=100[&after_id=1234]
    GET /api/costs?by=repo&since=7d
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Iterable, Sequence
from urllib.parse import parse_qsl

import msgspec

from dragoman.observe.report import LOG_FILTERS, ReportError, parse_time
from dragoman.observe.stores import COST_GROUPS, AuditStore, StoreError

PATHS = ("/api/requests", "/api/costs")
MAX_LIMIT = 1000
_encode = msgspec.json.encode


def handle(
    store: AuditStore,
    path: str,
    query_string: bytes | str,
    headers: Iterable[tuple[bytes, bytes]],
    admin_keys: Sequence[str],
) -> tuple[int, bytes]:
    """Answer one admin API request: 200 with {"data": rows}, or an Anthropic-shaped error."""
    if not admin_keys:
        return _error(403, "permission_error", "the admin API is off: set admin.keys (or DRAGOMAN_ADMIN_KEYS)")
    key = _presented_key(headers)
    if key is None:
        return _error(401, "authentication_error", "missing admin key: send it as x-api-key or Authorization: Bearer")
    # Compare against every key in constant time, so timing tells nothing about which prefix matched.
    if not any(hmac.compare_digest(key.encode(), k.encode()) for k in admin_keys):
        return _error(401, "authentication_error", "invalid admin key")
    if isinstance(query_string, bytes):
        query_string = query_string.decode("latin-1")
    params = dict(parse_qsl(query_string))
    try:
        if path == "/api/requests":
            return 200, _encode({"data": _requests(store, params)})
        if path == "/api/costs":
            by = params.get("by", "developer")
            if by not in COST_GROUPS:
                raise ReportError(f"by={by!r}: choose one of {', '.join(COST_GROUPS)}")
            since = parse_time(params.get("since", "30d"))
            rows = store.query_costs(by, since, parse_time(params.get("until")))
            return 200, _encode({"by": by, "since": since, "data": rows})
    except (ReportError, StoreError) as err:
        return _error(400, "invalid_request_error", str(err))
    return _error(404, "not_found_error", f"no such endpoint: {path}")


async def admin_api(
    store: AuditStore,
    path: str,
    query_string: bytes | str,
    headers: Iterable[tuple[bytes, bytes]],
    admin_keys: Sequence[str],
) -> tuple[int, bytes]:
    """`handle` in the default executor, so a slow store never stalls the event loop."""
    headers = list(headers)
    return await asyncio.get_running_loop().run_in_executor(None, handle, store, path, query_string, headers, admin_keys)


def _requests(store: AuditStore, params: dict[str, str]) -> list[dict]:
    filters = {name: params[name] for name in LOG_FILTERS if params.get(name)}
    try:
        limit = min(MAX_LIMIT, max(1, int(params.get("limit", "100"))))
        after_id = int(params["after_id"]) if params.get("after_id") else None
    except ValueError:
        raise ReportError("limit and after_id must be integers") from None
    since, until = parse_time(params.get("since")), parse_time(params.get("until"))
    return store.query_requests(filters, limit, since, until, after_id=after_id)


def _presented_key(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"x-api-key":
            return value.decode("latin-1").strip()
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            return value[7:].decode("latin-1").strip()
    return None


def _error(status: int, error_type: str, message: str) -> tuple[int, bytes]:
    return status, _encode({"type": "error", "error": {"type": error_type, "message": message}})
