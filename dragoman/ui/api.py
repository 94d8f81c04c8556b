"""The admin API endpoints the dashboard needs beyond /api/requests and /api/costs (admin_api.py):

    GET /api/stats?since=24h&bucket=1h      per-bucket requests, errors, cancellations, tokens, spend, overhead
                                            p50/p95 of the records from `since` (the first bucket's time is
                                            rounded down)
    GET /api/costs.csv?by=repo&since=7d     the rows of /api/costs as `dragoman costs --format csv` writes them
    GET /api/routes                         the live routes: provider, host (never a key), fallbacks, breakers,
                                            and the last hour's requests, errors and cancellations per route

Blocking store queries run in the default executor, as admin_api's do."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import parse_qsl, urlsplit

import msgspec

from dragoman import errors as E
from dragoman.admin_api import check_params, costs_rows, param_time
from dragoman.govern.keys import KeyInputError, parse_duration
from dragoman.observe.stores import COST_KEYS, AuditStore, StoreError
from dragoman.reports import ReportError, format_rows
from dragoman.runtime import Runtime

PATHS = ("/api/stats", "/api/costs.csv", "/api/routes")
MAX_BUCKETS = 2000
_encode = msgspec.json.encode


async def answer(path: str, query_string: bytes, store: AuditStore | None, runtime: Runtime) -> tuple[int, bytes, bytes]:
    """(status, content type, body) for one of PATHS; bad parameters are a 400 naming them."""
    params = dict(parse_qsl(query_string.decode("latin-1")))
    loop = asyncio.get_running_loop()
    try:
        if path == "/api/routes":
            check_params(params, frozenset())
            return 200, b"application/json", await loop.run_in_executor(None, routes, store, runtime, time.time())
        assert store is not None  # the server answers 404 without an audit store
        if path == "/api/stats":
            return 200, b"application/json", await loop.run_in_executor(None, stats, store, params, time.time())
        if path == "/api/costs.csv":
            return 200, b"text/csv; charset=utf-8", await loop.run_in_executor(None, costs_csv, store, params)
    except (ReportError, StoreError) as err:
        raise E.InvalidRequest(str(err)) from None
    raise E.NotFound(f"no such endpoint: {path}")


def stats(store: AuditStore, params: dict[str, str], now: float) -> bytes:
    check_params(params, frozenset(("since", "until", "bucket")))
    since = param_time(params, "since", "24h")
    until = param_time(params, "until")
    until = now if until is None else until  # until=0 is 1970, not "now"
    assert since is not None
    bucket = _bucket(params.get("bucket", "1h"))
    if until <= since:
        raise ReportError("until must be after since")
    if (until - since) / bucket > MAX_BUCKETS:
        raise ReportError(f"bucket={params.get('bucket')!r}: more than {MAX_BUCKETS} buckets; choose a longer one")
    # Buckets on round times (14:00, not 14:07), but only the records from `since` count: the first bucket's edge
    # is up to one bucket earlier, and "last 24h" summed over the buckets must not count a record 24.5 h old.
    first = since - since % bucket
    rows = store.query_stats(since, until, bucket, first)
    return _encode({"since": since, "until": until, "bucket": bucket, "data": rows})


def costs_csv(store: AuditStore, params: dict[str, str]) -> bytes:
    """The rows of GET /api/costs with the same parameters, as `dragoman costs --format csv` writes them."""
    by, _, rows = costs_rows(store, params)
    return format_rows(rows, (by, *COST_KEYS), "csv").encode()


def routes(store: AuditStore | None, runtime: Runtime, now: float) -> bytes:
    recent = {} if store is None else {row["route"]: row for row in store.query_costs("route", now - 3600, None)}
    breakers = runtime.upstreams.breakers
    config = runtime.config
    data = []
    for route in config.routes:
        breaker = breakers.get(route.name)
        seen = recent.get(route.name, {})
        data.append({
            "name": route.name, "provider": route.provider, "api": route.api, "model": route.model,
            "host": _host(route.endpoint), "fallbacks": list(route.fallbacks),
            "breaker": None if breaker is None else {
                "state": breaker.state, "ready": breaker.ready(), "failures": breaker.failures,
                "cooldown": breaker.cooldown},
            "last_hour": {"requests": seen.get("requests", 0), "errors": seen.get("errors", 0),
                          "cancelled": seen.get("cancelled", 0),
                          "cost_usd": seen.get("cost_usd")},
        })
    return _encode({"default_route": config.default_route, "data": data})


def _host(endpoint: str) -> str:
    """Where a route sends requests, without credentials or path: host[:port]."""
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    return f"{host}:{parts.port}" if parts.port else host


def _bucket(text: str) -> float:
    """`5m`, `1h`, `1d` → seconds: more than zero and at most 100 years, as a key's durations (a bucket of inf
    or nan seconds put nan into the bucket arithmetic: a 500)."""
    try:
        return parse_duration(text, "bucket")
    except KeyInputError as err:
        raise ReportError(str(err)) from None
