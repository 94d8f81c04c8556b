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
    *,
    authenticated: bool = False,
) -> tuple[int, bytes]:
    """Answer one admin API request: 200 with {"data": rows}, or an Anthropic-shaped error. `authenticated`:
    the server already checked the caller (an admin key or a dashboard session: dragoman/ui/auth.py)."""
    try:
        return 200, _answer(store, path, query_string, list(headers), admin_keys, authenticated)
    except E.GatewayError as err:
        return err.status, E.error_body(err.error_type, err.message)


async def admin_api(
    store: AuditStore,
    path: str,
    query_string: bytes | str,
    headers: Iterable[tuple[bytes, bytes]],
    admin_keys: Sequence[str],
    *,
    authenticated: bool = False,
) -> tuple[int, bytes]:
    """`handle` in the default executor, so a slow store never stalls the event loop."""
    headers = list(headers)
    return await asyncio.get_running_loop().run_in_executor(
        None, lambda: handle(store, path, query_string, headers, admin_keys, authenticated=authenticated))


def _answer(
    store: AuditStore,
    path: str,
    query_string: bytes | str,
    headers: list[tuple[bytes, bytes]],
    admin_keys: Sequence[str],
    authenticated: bool,
) -> bytes:
    if not authenticated:
        if not admin_keys:
            raise E.PermissionDenied("the admin API is off: set admin.keys (or DRAGOMAN_ADMIN_KEYS)")
        # Looked up by keyed digest, as the gateway keys are: timing tells nothing about how much of a key matched.
        key_holder(KeyTable(dict.fromkeys(admin_keys, True)), headers, "admin key")
    if isinstance(query_string, bytes):
        query_string = query_string.decode("latin-1")
    params = dict(parse_qsl(query_string))
    try:
        if path == "/api/requests":
            check_params(params, _REQUESTS_PARAMS)
            return _encode({"data": _requests(store, params)})
        if path == "/api/costs":
            by, since, rows = costs_rows(store, params)
            return _encode({"by": by, "since": since, "data": rows})
    except (ReportError, StoreError) as err:
        raise E.InvalidRequest(str(err)) from None
    raise E.NotFound(f"no such endpoint: {path}")


def costs_rows(store: AuditStore, params: dict[str, str]) -> tuple[str, float | None, list[dict]]:
    """(by, since, rows) of a costs query (`by`, `since` default 30d, `until`), its parameters checked."""
    check_params(params, _COSTS_PARAMS)
    by = params.get("by", "developer")
    if by not in COST_GROUPS:
        raise ReportError(f"by={_shown(by)}: choose one of {', '.join(COST_GROUPS)}")
    since = param_time(params, "since", "30d")
    return by, since, store.query_costs(by, since, param_time(params, "until"))


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
        filters, 100 if limit is None else limit, param_time(params, "since"), param_time(params, "until"), after_id=after_id
    )


def check_params(params: dict[str, str], accepted: frozenset[str]) -> None:
    """ReportError naming the first query parameter not in `accepted`."""
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


def param_time(params: dict[str, str], name: str, default: str | None = None) -> float | None:
    """The time parameter `name` (or `default`) as epoch seconds; ReportError naming it when unreadable."""
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

