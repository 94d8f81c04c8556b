"""The admin JSON API for the dashboard: GET /api/requests and GET /api/costs, behind an admin key.

Framework-free like the server: `handle(store, path, query_string, headers, admin_keys)` → (status, body).
It runs blocking store queries, so the server calls it in an executor: `await admin_api(...)`.

    GET /api/requests?developer=alice&status=5xx&since=24h&limit=100[&after_id=1234]
    GET /api/costs?by=repo&since=7d
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from urllib.parse import parse_qsl

import msgspec

from dragoman import errors as E
from dragoman.client_keys import key_holder
from dragoman.key_table import KeyTable
from dragoman.observe.stores import COST_GROUPS, AuditStore, StoreError
from dragoman.reports import LOG_FILTERS, ReportError, parse_time

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
    try:
        return 200, _answer(store, path, query_string, list(headers), admin_keys)
    except E.GatewayError as err:
        return err.status, E.error_body(err)


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


def _answer(
    store: AuditStore,
    path: str,
    query_string: bytes | str,
    headers: list[tuple[bytes, bytes]],
    admin_keys: Sequence[str],
) -> bytes:
    if not admin_keys:
        raise E.PermissionDenied("the admin API is off: set admin.keys (or DRAGOMAN_ADMIN_KEYS)")
    # Looked up by keyed digest, as the gateway keys are: timing tells nothing about how much of a key matched.
    key_holder(KeyTable(dict.fromkeys(admin_keys, True)), headers, "admin key")
    if isinstance(query_string, bytes):
        query_string = query_string.decode("latin-1")
    params = dict(parse_qsl(query_string))
    try:
        if path == "/api/requests":
            return _encode({"data": _requests(store, params)})
        if path == "/api/costs":
            by = params.get("by", "developer")
            if by not in COST_GROUPS:
                raise ReportError(f"by={by!r}: choose one of {', '.join(COST_GROUPS)}")
            since = parse_time(params.get("since", "30d"))
            rows = store.query_costs(by, since, parse_time(params.get("until")))
            return _encode({"by": by, "since": since, "data": rows})
    except (ReportError, StoreError) as err:
        raise E.InvalidRequest(str(err)) from None
    raise E.NotFound(f"no such endpoint: {path}")


def _requests(store: AuditStore, params: dict[str, str]) -> list[dict]:
    filters = {name: params[name] for name in LOG_FILTERS if params.get(name)}
    try:
        limit = min(MAX_LIMIT, max(1, int(params.get("limit", "100"))))
        after_id = int(params["after_id"]) if params.get("after_id") else None
    except ValueError:
        raise ReportError("limit and after_id must be integers") from None
    since, until = parse_time(params.get("since")), parse_time(params.get("until"))
    return store.query_requests(filters, limit, since, until, after_id=after_id)
