"""The dashboard and the admin API as the server sees them: `serve_page` for /ui…, `serve_api` for /api/….

Every /api/ request is authenticated first (`api_caller`: an admin or viewer key, or a session cookie with its
CSRF token on changes; a viewer only reads), then answered by the dashboard's own endpoints (ui/api.py,
ui/feed.py) or by admin_api.py, whose endpoint table decides the rest."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Awaitable

from dragoman import errors as E
from dragoman.admin_api import AdminApi
from dragoman.observe.stores import AuditStore
from dragoman.runtime import Runtime
from dragoman.signing_key import SigningKeyError, signing_key
from dragoman.ui import api, replies
from dragoman.ui.auth import Caller, Staff, api_caller, may_change
from dragoman.ui.feed import feed
from dragoman.ui.pages import Pages
from dragoman.ui.session import SessionSigner

API_PATHS = frozenset((*api.PATHS, "/api/feed"))
Receive = Callable[[], Awaitable[dict[str, Any]]]


def deployment_key() -> bytes:
    """The deployment's signing key, which signs dashboard sessions (read when the first session needs it)."""
    try:
        return signing_key()
    except SigningKeyError as err:
        raise E.ApiError(f"dashboard sessions need the signing key: {err}") from None


class Dashboard:
    def __init__(self, admin: AdminApi, key: bytes | Callable[[], bytes] = deployment_key) -> None:
        self.admin = admin
        self.keys = Staff(admin)
        self.signer = SessionSigner(key)
        self.pages = Pages(self.keys, self.signer)
        self.closing = asyncio.Event()  # set at shutdown: live feeds end

    async def api_caller(self, scope: dict[str, Any], api_keys: Any = None) -> Caller:
        """Who calls an /api/ endpoint (401/403 as auth.api_caller says); a viewer may only read."""
        caller = await api_caller(self.keys, self.signer, scope["method"], scope["headers"], api_keys)
        may_change(caller, scope["method"], scope.get("path", ""))
        return caller

    async def serve_page(self, scope: dict[str, Any], receive: Receive, send: replies.Send, request_id: str) -> None:
        await self.pages.serve(scope, receive, send, request_id)

    async def serve_api(self, scope: dict[str, Any], receive: Receive, send: replies.Send, request_id: str,
                        store: AuditStore | None, runtime: Runtime,
                        read_body: Callable[[int], Awaitable[bytes]]) -> None:
        """An /api/ request, authenticated before anything else (an unknown path without a key is a 401)."""
        caller = await self.api_caller(scope, runtime.keys)
        path, method = scope["path"], scope["method"]
        query = scope.get("query_string", b"")
        if path not in API_PATHS:
            status, body = await self.admin(method, path, query, scope["headers"], read_body, runtime.keys,
                                            caller=caller.grant())
            await replies.send_json(send, status, body, request_id)
            return
        if method not in ("GET", "HEAD"):
            raise replies.MethodNotAllowed(method)
        if store is None and path != "/api/routes":
            raise E.NotFound("the audit log is off (audit: {enabled: false}): nothing to report")
        if path == "/api/feed":
            assert store is not None
            await feed(store, scope, receive, send, caller, self.closing, request_id,
                       key_live=lambda: self.keys.key_id_live(caller.key_id, caller.role))
        else:
            status, content_type, body = await api.answer(path, query, store, runtime)
            await replies.send_body(send, status, body, content_type, request_id)
