"""The admin JSON API for the dashboard: GET /api/requests and GET /api/costs, behind an admin key.

Framework-free like the server: `handle(store, path, query_string, headers, admin_keys)` → (status, body).
It runs blocking store queries, so the server calls it in an executor: `await admin_api(...)`.

    GET /api/requests?developer=alice&status=5xx&since=24h&limit=100[&after_id=1234]
    GET /api/costs?by=repo&since=7d

Every query parameter is checked before it reaches the store: an unknown name, a number outside what the
column holds (SQLite INTEGER and PostgreSQL BIGINT are 64-bit) or an unreadable time is a 400 naming it.
"""

from __future__ import annotations

import asyncio
import math
import re
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
_MAX_ID = 2**63 - 1  # the largest SQLite INTEGER / PostgreSQL BIGINT
_REQUESTS_PARAMS = frozenset((*LOG_FILTERS, "limit", "after_id", "since", "until"))
_COSTS_PARAMS = frozenset(("by", "since", "until"))
_STATUS = re.compile(r"[1-5][0-9][0-9]|[1-5]xx|ok|error", re.IGNORECASE)
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
        return err.status, E.error_body(err.error_type, err.message)


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
    params = authorize(query_string, headers, admin_keys)
    try:
        if path == "/api/requests":
            _known(params, _REQUESTS_PARAMS)
            return _encode({"data": _requests(store, params)})
        if path == "/api/costs":
            _known(params, _COSTS_PARAMS)
            by = params.get("by", "developer")
            if by not in COST_GROUPS:
                raise ReportError(f"by={_shown(by)}: choose one of {', '.join(COST_GROUPS)}")
            since = _time(params, "since", "30d")
            rows = store.query_costs(by, since, _time(params, "until"))
            return _encode({"by": by, "since": since, "data": rows})
    except (ReportError, StoreError) as err:
        raise E.InvalidRequest(str(err)) from None
    raise E.NotFound(f"no such endpoint: {path}")


def authorize(query_string: bytes | str, headers: list[tuple[bytes, bytes]], admin_keys: Sequence[str]) -> dict[str, str]:
    """Refuse a caller without an admin key (the admin API off: no keys); the query's parameters."""
    if not admin_keys:
        raise E.PermissionDenied("the admin API is off: set admin.keys (or DRAGOMAN_ADMIN_KEYS)")
    # Looked up by keyed digest, as the gateway keys are: timing tells nothing about how much of a key matched.
    key_holder(KeyTable(dict.fromkeys(admin_keys, True)), headers, "admin key")
    if isinstance(query_string, bytes):
        query_string = query_string.decode("latin-1")
    return dict(parse_qsl(query_string))


def known_params(params: dict[str, str], accepted: frozenset[str]) -> None:
    """Refuse a query parameter the endpoint does not read."""
    _known(params, accepted)


def time_param(params: dict[str, str], name: str, default: str | None = None) -> float | None:
    """The time parameter `name` (24h, 7d, an ISO time), checked."""
    return _time(params, name, default)


def _requests(store: AuditStore, params: dict[str, str]) -> list[dict]:
    filters = {name: params[name] for name in LOG_FILTERS if params.get(name)}
    for name, value in filters.items():
        if "\x00" in value:  # PostgreSQL refuses NUL in text
            raise ReportError(f"{name}: a NUL character cannot match anything")
    if "status" in filters and not _STATUS.fullmatch(filters["status"].strip()):
        raise ReportError(f"status={_shown(filters['status'])}: use a code (429), a class (4xx, 5xx), ok or error")
    limit = _int(params, "limit", 1, MAX_LIMIT)
    after_id = _int(params, "after_id", 0, _MAX_ID)
    return store.query_requests(
        filters, 100 if limit is None else limit, _time(params, "since"), _time(params, "until"), after_id=after_id
    )


def _known(params: dict[str, str], accepted: frozenset[str]) -> None:
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise ReportError(f"unknown query parameter {_shown(unknown[0])}: use {', '.join(sorted(accepted))}")


def _int(params: dict[str, str], name: str, low: int, high: int) -> int | None:
    """The integer parameter `name` (None when absent), which must lie in [low, high]."""
    text = params.get(name)
    if not text:
        return None
    # isdigit() alone takes "²"; the length check keeps int() clear of Python's 4300-digit conversion limit.
    if not (text.isascii() and text.isdigit() and len(text) <= 19 and low <= int(text) <= high):
        raise ReportError(f"{name}={_shown(text)}: expected an integer from {low} to {high}")
    return int(text)


def _time(params: dict[str, str], name: str, default: str | None = None) -> float | None:
    text = params.get(name, default)
    try:
        moment = parse_time(text)
    except ReportError as err:
        raise ReportError(f"{name}: {err}") from None
    if moment is not None and not math.isfinite(moment):
        raise ReportError(f"{name}={_shown(text)}: not a time the audit log can hold")
    return moment


def _shown(value: object) -> str:
    return repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."

