"""The admin JSON API: who may call which endpoint (one table, `_ENDPOINTS`), and the endpoints on the audit
store and the virtual keys. Framework-free like the server: `AdminApi(...)(method, path, …)` → (status, body).

    GET  /api/requests?developer=alice&status=5xx&since=24h&limit=100[&after_id=1234]   viewer
    GET  /api/costs?by=repo&since=7d                                                     viewer
    GET  /api/keys                                                                       admin
    POST /api/keys                {"developer": "ana", "team": "platform", "budget": "50/month", …}   admin
    POST /api/keys/<id>/revoke                                                           admin
    POST /api/keys/<id>/rotate    {"grace": "1h"}                                        admin

Roles (govern/grant.py): admin keys (`admin.keys`, DRAGOMAN_ADMIN_KEYS, virtual keys with role admin) may call
every endpoint; viewer keys only GETs (the audit, costs, scores…), never key management; user keys (the config's
`auth.keys`, virtual keys with role user) no endpoint at all (403). An endpoint is added with
`endpoint(method, path, handler, role)`: the role defaults to viewer for a GET, admin otherwise.

Every query parameter is checked before it reaches the store: an unknown name, a number outside what the
column holds (SQLite INTEGER and PostgreSQL BIGINT are 64-bit) or an unreadable time is a 400 naming it.
Store work blocks, so a call's handler runs in the default executor.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

import msgspec

from dragoman import errors as E
from dragoman.client_keys import client_key
from dragoman.govern.authenticate import admin_grants, grant_for
from dragoman.govern.grant import ADMIN, USER, VIEWER, Grant
from dragoman.govern.key_cache import KeyCache
from dragoman.govern.key_store import KeyNotFound
from dragoman.govern.keys import KeyInputError, KeySpec, looks_like_key, parse_duration
from dragoman.key_table import KeyTable
from dragoman.observe.stores import COST_GROUPS, AuditStore, StoreError
from dragoman.reports import LOG_FILTERS, ReportError, parse_time

MAX_LIMIT = 1000
MAX_BODY = 64 * 1024  # an admin call's JSON body: a key's settings fit many times over
MAX_ID = 2**63 - 1  # the largest SQLite INTEGER / PostgreSQL BIGINT
_REQUESTS_PARAMS = frozenset((*LOG_FILTERS, "limit", "after_id", "since", "until"))
_COSTS_PARAMS = frozenset(("by", "since", "until"))
_STATUS = re.compile(r"[1-5][0-9][0-9]|[1-5]xx|ok|error|cancelled", re.IGNORECASE)
_RANK = {USER: 0, VIEWER: 1, ADMIN: 2}
_encode = msgspec.json.encode
log = logging.getLogger("dragoman")
_decode_spec = msgspec.json.Decoder(KeySpec).decode


class Rotation(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    grace: str = "1h"


_decode_rotation = msgspec.json.Decoder(Rotation).decode


@dataclass
class Services:
    """What the endpoints work on, set by the server at startup (a branch adding endpoints adds its own here)."""

    audit: AuditStore | None = None
    keys: KeyCache | None = None  # the key cache; its `.store` is the KeyStore
    governor: Any = None  # govern.governor.Governor: budgets and their spend
    loop: asyncio.AbstractEventLoop | None = None  # the server's loop, for handlers that need async services
    loop_view: Any = None  # loop_api.LoopView: this process's scoreboard and clusters (swapped on reload)
    versions: Any = None  # loop.versions.ConfigVersions: config versions and rollback


class ApiCall(NamedTuple):
    grant: Grant
    params: dict[str, str]  # the query string
    body: bytes
    match: re.Match  # the path's named parts, e.g. match["id"]
    services: Services


Handler = Callable[[ApiCall], Any]  # returns what the answer's JSON encodes


@dataclass(frozen=True)
class Endpoint:
    method: str
    pattern: re.Pattern
    role: str
    handler: Handler = field(compare=False)


_ENDPOINTS: list[Endpoint] = []


def endpoint(method: str, path: str, handler: Handler, role: str | None = None) -> None:
    """Add an endpoint: `path` may name parts as `{id}` (one path segment); `role` is the least role that may
    call it (default: viewer for GET, admin otherwise)."""
    regex = re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(path))
    _ENDPOINTS.append(Endpoint(method, re.compile(regex), role or (VIEWER if method == "GET" else ADMIN), handler))


class _MethodNotAllowed(E.GatewayError):
    status = 405
    error_type = "invalid_request_error"


class AdminApi:
    """The admin API of one gateway process."""

    def __init__(self, services: Services, admin_keys: Sequence[str]) -> None:
        self.services = services
        self._admin = admin_grants(admin_keys)

    def use_admin_keys(self, admin_keys: Sequence[str]) -> None:
        """Serve with these `admin.keys` from now on (a reload): a removed key, and every dashboard session it
        opened (`live_role`), stops working at once; an added key works at once."""
        self._admin = admin_grants(admin_keys)  # one assignment: a request sees the old table or the new one

    async def __call__(
        self, method: str, path: str, query_string: bytes | str, headers: Iterable[tuple[bytes, bytes]],
        read_body: Callable[[int], Awaitable[bytes]], api_keys: KeyTable[Grant] | None = None,
        *, caller: Grant | None = None,
    ) -> tuple[int, bytes]:
        """Answer one call: 200 with its JSON, or an Anthropic-shaped error. `caller`: already authenticated
        (a dashboard session, ui/auth.py); else the presented key decides."""
        try:
            grant = caller if caller is not None else await self.authenticate(headers, api_keys)
            found = self._allowed(method, path, grant)
            body = await read_body(MAX_BODY) if method != "GET" else b""
            return await asyncio.get_running_loop().run_in_executor(None, self._run, found, grant, query_string, body)
        except E.GatewayError as err:
            return err.status, E.error_body(err.error_type, err.message)

    def handle(self, method: str, path: str, query_string: bytes | str, headers: Iterable[tuple[bytes, bytes]],
               body: bytes = b"") -> tuple[int, bytes]:
        """The same, blocking, for a key already in the cache (tests, tools)."""
        async def read(_: int) -> bytes:
            return body

        return asyncio.run(self(method, path, query_string, headers, read))

    async def authenticate(self, headers: Iterable[tuple[bytes, bytes]],
                           api_keys: KeyTable[Grant] | None = None) -> Grant:
        """The grant of the presented key: 403 while no key may use the admin API, 401 for a missing or unknown
        key (a user key is refused by the role table: 403)."""
        cache = self.services.keys
        presented = client_key(list(headers))
        if not self._on(cache) and cache is not None and presented is not None and looks_like_key(presented):
            await cache.lookup_fresh(presented)  # the first admin key, made a moment ago with the CLI
        if not self._on(cache):
            raise E.PermissionDenied("the admin API is off: set admin.keys (or DRAGOMAN_ADMIN_KEYS), "
                                     "or create a key with `dragoman keys create --role admin`")
        return await grant_for(presented, self._tables(api_keys), cache, "admin key")

    async def authenticate_scraper(self, headers: Iterable[tuple[bytes, bytes]], api_keys: KeyTable[Grant],
                                   scrape: KeyTable[Grant]) -> Grant:
        """GET /metrics under `metrics.auth: key`: the scrape key, or an admin or viewer key. 401 for a missing or
        unknown key (also while no admin or viewer key exists: then only the scrape key opens it), 403 for a user
        key: spend and traffic per route are the operator's, not every developer's."""
        headers = list(headers)
        presented = client_key(headers)
        if presented is None:
            raise E.AuthenticationFailed("missing metrics key (metrics.auth: key): send an admin or viewer key, or "
                                         "the scrape key, as x-api-key or Authorization: Bearer")
        grant = scrape.lookup(presented)
        if grant is not None:
            return grant
        try:
            grant = await self.authenticate(headers, api_keys)
        except (E.AuthenticationFailed, E.PermissionDenied):  # unknown, revoked, or the admin API is off
            raise E.AuthenticationFailed("invalid metrics key") from None
        if grant.role == USER:
            raise E.PermissionDenied("this key's role is user: /metrics takes viewer and admin keys, or the scrape key")
        return grant

    def live_role(self, key_id: str) -> str | None:
        """The role the key named `key_id` holds now (None: no such key, or revoked, expired, removed): a
        dashboard session lives only as long as its key does."""
        for grant in self._admin.holders():
            if grant.key_id == key_id:
                return grant.role
        cache = self.services.keys
        return cache.live_role(key_id) if cache is not None else None

    def _tables(self, api_keys: KeyTable[Grant] | None) -> tuple[KeyTable[Grant], ...]:
        return (self._admin,) if api_keys is None else (self._admin, api_keys)

    def on(self) -> bool:
        """Whether any key may call the admin API now."""
        return self._on(self.services.keys)

    def _on(self, cache: KeyCache | None) -> bool:
        """Whether any key may call the admin API: an `admin.keys` entry, or a viewer or admin virtual key."""
        return bool(len(self._admin)) or (cache is not None and cache.staff > 0)

    @staticmethod
    def _allowed(method: str, path: str, grant: Grant) -> tuple[Endpoint, re.Match]:
        """The endpoint for (method, path) if `grant`'s role may call it: else 404, 405 or 403."""
        if grant.role == USER:
            raise E.PermissionDenied("this key's role is user: the admin API takes viewer and admin keys")
        matches = [(ep, m) for ep in _ENDPOINTS if (m := ep.pattern.fullmatch(path)) is not None]
        if not matches:
            raise E.NotFound(f"no such endpoint: {path[:200]}")
        for ep, match in matches:
            if ep.method == method:
                if _RANK.get(grant.role, 0) < _RANK[ep.role]:
                    article = "an" if ep.role[0] in "aeiou" else "a"
                    raise E.PermissionDenied(f"this key's role is {grant.role}: {method} {path[:200]} "
                                             f"needs {article} {ep.role} key")
                return ep, match
        allowed = ", ".join(sorted({ep.method for ep, _ in matches}))
        raise _MethodNotAllowed(f"method {method} is not allowed on {path[:200]} (use {allowed})")

    def _run(self, found: tuple[Endpoint, re.Match], grant: Grant, query_string: bytes | str,
             body: bytes) -> tuple[int, bytes]:
        ep, match = found
        if isinstance(query_string, bytes):
            query_string = query_string.decode("latin-1")
        call = ApiCall(grant, dict(parse_qsl(query_string)), body, match, self.services)
        try:
            return 200, _encode(ep.handler(call))
        except KeyNotFound as err:
            return 404, E.error_body("not_found_error", str(err))
        except (ReportError, StoreError, KeyInputError) as err:
            return 400, E.error_body("invalid_request_error", str(err))
        except E.GatewayError as err:
            return err.status, E.error_body(err.error_type, err.message)
        except Exception as exc:  # noqa: BLE001 - the database failed (sqlite3, psycopg): retryable, not a bug
            if not _store_failure(exc):
                raise
            log.warning("admin API %s %s: the store failed (%s)", ep.method, ep.pattern.pattern, type(exc).__name__)
            return 529, E.error_body("overloaded_error", f"the store is unavailable ({type(exc).__name__}); retry")


def _store_failure(exc: Exception) -> bool:
    """Whether `exc` is the database's (unreachable, locked, failed), not the gateway's."""
    return isinstance(exc, (sqlite3.Error, OSError)) or type(exc).__module__.startswith("psycopg")


# ---- the audit ---------------------------------------------------------------------------------------------


def _audit(call: ApiCall) -> AuditStore:
    if call.services.audit is None:
        raise E.NotFound("auditing is off (audit: {enabled: false}): there are no records to read")
    return call.services.audit


def _audit_or_none(call: ApiCall) -> AuditStore | None:
    return call.services.audit


def _get_requests(call: ApiCall) -> dict:
    check_params(call.params, _REQUESTS_PARAMS)
    return {"data": _requests(_audit(call), call.params)}


def _get_costs(call: ApiCall) -> dict:
    by, since, rows = costs_rows(_audit(call), call.params)
    return {"by": by, "since": since, "data": rows}


def costs_rows(store: AuditStore, params: dict[str, str]) -> tuple[str, float | None, list[dict]]:
    """(by, since, rows) of a costs query (`by`, `since` default 30d, `until`), its parameters checked."""
    check_params(params, _COSTS_PARAMS)
    by = params.get("by", "developer")
    if by not in COST_GROUPS:
        raise ReportError(f"by={E.quoted(by)}: choose one of {', '.join(COST_GROUPS)}")
    since = param_time(params, "since", "30d")
    return by, since, store.query_costs(by, since, param_time(params, "until"))


# ---- virtual keys ------------------------------------------------------------------------------------------


def _cache(call: ApiCall) -> KeyCache:
    if call.services.keys is None:
        raise E.NotFound("virtual keys are off (governance: {keys: {enabled: false}})")
    return call.services.keys


def _list_keys(call: ApiCall) -> dict:
    check_params(call.params, frozenset())
    return {"data": [key.public() for key in _cache(call).store.every()]}


def _create_key(call: ApiCall) -> dict:
    spec = E.decode_body(_decode_spec, call.body or b"{}")
    cache = _cache(call)
    key, record = cache.store.create(spec)
    cache.refresh_soon()
    return {"key": key, **record.public()}


def _revoke_key(call: ApiCall) -> dict:
    cache = _cache(call)
    record = cache.store.revoke(call.match["id"])
    cache.refresh_soon()
    return record.public()


def _rotate_key(call: ApiCall) -> dict:
    rotation = E.decode_body(_decode_rotation, call.body or b"{}")
    grace = parse_duration(rotation.grace, "grace", zero=True)
    cache = _cache(call)
    key, new, old = cache.store.rotate(call.match["id"], grace)
    cache.refresh_soon()
    return {"key": key, **new.public(), "previous": old.public()}


endpoint("GET", "/api/requests", _get_requests)
endpoint("GET", "/api/costs", _get_costs)
endpoint("GET", "/api/keys", _list_keys, ADMIN)
endpoint("POST", "/api/keys", _create_key)
endpoint("POST", "/api/keys/{id}/revoke", _revoke_key)
endpoint("POST", "/api/keys/{id}/rotate", _rotate_key)


# ---- budgets -----------------------------------------------------------------------------------------------


def _get_budgets(call: ApiCall) -> dict:
    """Every budget's spend this period, its cap and when it resets (the counters may live on Redis: their
    client belongs to the server's event loop, so the read runs there)."""
    check_params(call.params, frozenset())
    services = call.services
    if services.governor is None or services.loop is None:
        raise E.NotFound("budgets are not available in this process")
    return {"data": asyncio.run_coroutine_threadsafe(services.governor.budgets(), services.loop).result(30)}


endpoint("GET", "/api/budgets", _get_budgets)


# ---- query parameters --------------------------------------------------------------------------------------



def _requests(store: AuditStore, params: dict[str, str]) -> list[dict]:
    filters = {name: params[name] for name in LOG_FILTERS if params.get(name)}
    for name, value in filters.items():
        if "\x00" in value:  # PostgreSQL refuses NUL in text
            raise ReportError(f"{name}: a NUL character cannot match anything")
    if "status" in filters and not _STATUS.fullmatch(filters["status"].strip()):
        raise ReportError(f"status={E.quoted(filters['status'])}: use a code (429), a class (4xx, 5xx), ok, error "
                          "or cancelled")
    limit = param_int(params, "limit", 1, MAX_LIMIT)
    after_id = param_int(params, "after_id", 0, MAX_ID)
    return store.query_requests(
        filters, 100 if limit is None else limit, param_time(params, "since"), param_time(params, "until"), after_id=after_id
    )


def check_params(params: dict[str, str], accepted: frozenset[str]) -> None:
    """ReportError naming the first query parameter not in `accepted`."""
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise ReportError(f"unknown query parameter {E.quoted(unknown[0])}: use {', '.join(sorted(accepted))}")


def param_int(params: dict[str, str], name: str, low: int, high: int) -> int | None:
    """The integer parameter `name` (None when absent), which must lie in [low, high]."""
    text = params.get(name)
    if not text:
        return None
    # isdigit() alone takes "²"; the length check keeps int() clear of Python's 4300-digit conversion limit.
    if not (text.isascii() and text.isdigit() and len(text) <= 19 and low <= int(text) <= high):
        raise ReportError(f"{name}={E.quoted(text)}: expected an integer from {low} to {high}")
    return int(text)


def param_time(params: dict[str, str], name: str, default: str | None = None) -> float | None:
    """The time parameter `name` (or `default`) as epoch seconds; ReportError naming it when unreadable or out of
    range (parse_time refuses inf, nan and anything outside the years 1 to 9999)."""
    try:
        return parse_time(params.get(name, default))
    except ReportError as err:
        raise ReportError(f"{name}: {err}") from None


# Endpoints other modules own register themselves in the table above when imported.
from dragoman import loop_api  # noqa: E402,F401 - GET /api/scores, GET /api/clusters
from dragoman import version_api  # noqa: E402,F401 - GET /api/versions[/{version}], POST /api/rollback
