"""The dashboard as the server sees it: one object that serves /ui and authenticates every /api/ request.

The server hands over `/ui…` paths to `serve_page`, asks `api_caller` who is calling an /api/ endpoint (an
admin key, or a session cookie with its CSRF token on changes), and hands the dashboard's own endpoints
(`API_PATHS`) to `serve_api`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Awaitable

from dragoman.observe.stores import AuditStore
from dragoman.runtime import Runtime
from dragoman.ui import api, replies
from dragoman.ui.auth import Caller, Keys, api_caller, may_change
from dragoman.ui.feed import feed
from dragoman.ui.pages import Pages
from dragoman.ui.session import SessionSigner

API_PATHS = frozenset((*api.PATHS, "/api/feed"))
Receive = Callable[[], Awaitable[dict[str, Any]]]


class Dashboard:
    def __init__(self, admin_keys: Sequence[str], signing_key: bytes | Callable[[], bytes]) -> None:
        self.keys = Keys(admin_keys)
        self.signer = SessionSigner(signing_key)
        self.pages = Pages(self.keys, self.signer)
        self.closing = asyncio.Event()  # set at shutdown: live feeds end

    def api_caller(self, scope: dict[str, Any]) -> Caller:
        """Who calls an /api/ endpoint (401/403 as auth.api_caller says); a viewer may only read."""
        caller = api_caller(self.keys, self.signer, scope["method"], scope["headers"])
        may_change(caller, scope["method"])
        return caller

    async def serve_page(self, scope: dict[str, Any], receive: Receive, send: replies.Send, request_id: str) -> None:
        await self.pages.serve(scope, receive, send, request_id)

    async def serve_api(self, scope: dict[str, Any], receive: Receive, send: replies.Send, request_id: str,
                        caller: Caller, store: AuditStore, runtime: Runtime) -> None:
        path = scope["path"]
        if scope["method"] not in ("GET", "HEAD"):
            raise replies.MethodNotAllowed(scope["method"])
        if path == "/api/feed":
            await feed(store, scope, receive, send, caller, self.closing, request_id)
            return
        status, content_type, body = await api.answer(path, scope.get("query_string", b""), store, runtime)
        await replies.send_body(send, status, body, content_type, request_id)
