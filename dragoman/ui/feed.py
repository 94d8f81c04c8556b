"""GET /api/feed: the live request feed as server-sent events, tailing the audit store by id.

It reads the store, not this process's requests, so a dashboard connected to one worker sees every worker's
requests (and every gateway's on a shared PostgreSQL). A browser's EventSource reconnects with Last-Event-ID,
and the feed resumes after it. The feed ends when the client leaves, its session expires, or the gateway shuts
down (`closing`): an open feed must not hold a graceful shutdown for its whole drain time."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable

from urllib.parse import parse_qsl

import msgspec

from dragoman import errors as E
from dragoman.admin_api import MAX_ID, check_params, param_int
from dragoman.observe.stores import AuditStore
from dragoman.reports import ReportError
from dragoman.ui import replies
from dragoman.ui.auth import Caller, header

Receive = Callable[[], Awaitable[dict[str, Any]]]
POLL_SECONDS = 1.0  # how stale a row may be on screen; each open feed costs one indexed query per poll
KEEPALIVE_SECONDS = 15.0  # a comment line through idle proxies
BATCH = 100
FIELDS = ("id", "time", "request_id", "route", "requested_model", "upstream_model", "developer", "repo", "status",
          "error_type", "input_tokens", "output_tokens", "cost_usd", "verdict", "overhead_ms", "stream")
_encode = msgspec.json.encode


async def feed(store: AuditStore, scope: dict[str, Any], receive: Receive, send: replies.Send, caller: Caller,
               closing: asyncio.Event, request_id: str, poll: float = POLL_SECONDS,
               key_live: Callable[[], bool] = lambda: True) -> None:
    """Stream new records until the client leaves, the gateway closes, or the caller may no longer read them
    (`key_live`: its key still holds its role; a session also expires)."""
    loop = asyncio.get_running_loop()
    after = _resume_id(scope)
    if after is None:
        after = await loop.run_in_executor(None, store.latest_id)
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"text/event-stream; charset=utf-8"), (b"request-id", request_id.encode()),
        (b"x-accel-buffering", b"no"), *replies.SECURITY, *replies.NO_STORE]})
    await send({"type": "http.response.body", "body": b"retry: 2000\n\n", "more_body": True})
    gone = asyncio.ensure_future(_disconnected(receive))
    stop = asyncio.ensure_future(closing.wait())
    quiet_since = time.monotonic()
    try:
        while not gone.done() and not stop.done() and _session_alive(caller) and key_live():
            rows = await loop.run_in_executor(None, lambda: store.query_requests(None, BATCH, after_id=after))
            if rows:
                after = rows[-1]["id"]
                await send({"type": "http.response.body", "body": b"".join(map(_event, rows)), "more_body": True})
                quiet_since = time.monotonic()
                if len(rows) == BATCH:
                    continue  # more waiting: read on at once
            elif time.monotonic() - quiet_since > KEEPALIVE_SECONDS:
                await send({"type": "http.response.body", "body": b": keep-alive\n\n", "more_body": True})
                quiet_since = time.monotonic()
            await asyncio.wait((gone, stop), timeout=poll)
    finally:
        gone.cancel()
        stop.cancel()
    try:
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except Exception:  # noqa: BLE001 - the client is gone
        pass


def _event(row: dict[str, Any]) -> bytes:
    data = _encode({name: row.get(name) for name in FIELDS})
    return b"id: %d\nevent: request\ndata: %s\n\n" % (row["id"], data)


def _resume_id(scope: dict[str, Any]) -> int | None:
    """Last-Event-ID (a reconnecting EventSource), else ?after_id=; None: start at the newest record. The query
    is checked like every admin API query (400 naming a bad or unknown parameter, before the stream opens)."""
    params = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
    try:
        check_params(params, frozenset(("after_id",)))
        after_id = param_int(params, "after_id", 0, MAX_ID)
    except ReportError as err:
        raise E.InvalidRequest(str(err)) from None
    text = header(scope["headers"], b"last-event-id")
    if text is not None and text.isascii() and text.isdigit() and len(text) <= 18:
        return int(text)
    return after_id


def _session_alive(caller: Caller) -> bool:
    return caller.session is None or caller.session.expires > time.time()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
