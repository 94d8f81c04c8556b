"""/ui: the static pages and assets (read once at start), sign-in, sign-out and the session's CSRF token.

    GET  /ui, /ui/          the dashboard shell (303 to /ui/login without a session)
    GET  /ui/login          the sign-in page          POST /ui/login   key=… (a form post, never a URL;
                                                                       or JSON {"key": …}, 400 when unreadable)
    POST /ui/logout         ends the session (x-csrf-token)
    GET  /ui/session        {"key_id", "role", "expires", "csrf"} for the page's scripts
    GET  /ui/static/<file>  scripts, styles, the vendored chart library (login's own two without a session)
"""

from __future__ import annotations

import hashlib
import mimetypes
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qsl

import msgspec

from dragoman import errors as E
from dragoman.http_io import read_body
from dragoman.ui import replies
from dragoman.ui.auth import Staff, header, session_caller, session_token
from dragoman.ui.session import COOKIE, SESSION_SECONDS, SessionSigner

Receive = Callable[[], Awaitable[dict[str, Any]]]
STATIC = Path(__file__).parent / "static"
PUBLIC = frozenset(("login.html", "login.js", "style.css"))  # what the sign-in page needs; no data in any
_MAX_LOGIN_BODY = 4096
_decode_any = msgspec.json.Decoder().decode
_TYPES = {".js": b"text/javascript; charset=utf-8", ".css": b"text/css; charset=utf-8",
          ".html": b"text/html; charset=utf-8", ".svg": b"image/svg+xml", ".txt": b"text/plain; charset=utf-8"}


class Asset(msgspec.Struct, frozen=True):
    body: bytes
    content_type: bytes
    etag: bytes


def load_assets(root: Path = STATIC) -> dict[str, Asset]:
    """Every file under static/, keyed by its path below it."""
    assets = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            body = path.read_bytes()
            kind = _TYPES.get(path.suffix) or (mimetypes.guess_type(path.name)[0] or "application/octet-stream").encode()
            assets[path.relative_to(root).as_posix()] = Asset(body, kind, b'"' + hashlib.sha256(body).hexdigest()[:20].encode() + b'"')
    return assets


class Pages:
    def __init__(self, keys: Staff, signer: SessionSigner, assets: dict[str, Asset] | None = None) -> None:
        self.keys = keys
        self.signer = signer
        self.assets = load_assets() if assets is None else assets

    async def serve(self, scope: dict[str, Any], receive: Receive, send: replies.Send, request_id: str) -> None:
        try:
            await self._route(scope, receive, send, request_id)
        except E.GatewayError as err:
            await replies.send_error(send, err, request_id)

    async def _route(self, scope: dict[str, Any], receive: Receive, send: replies.Send, request_id: str) -> None:
        path, method, headers = scope["path"], scope["method"], scope["headers"]
        caller = session_caller(self.keys, self.signer, headers)
        if path == "/ui/login":
            if method == "POST":
                await self._login(scope, receive, send, request_id)
            else:
                _allow(method, "GET", "HEAD")
                await self._asset(send, "login.html", headers, request_id)
            return
        if path == "/ui/logout":
            _allow(method, "POST")
            token = session_token(headers)
            if caller is not None and token and not self.signer.csrf_ok(token, header(headers, b"x-csrf-token")):
                raise E.PermissionDenied("missing or wrong x-csrf-token for this session: reload the page")
            await replies.redirect(send, "/ui/login", request_id, [_cookie(scope, "", 0)])
            return
        _allow(method, "GET", "HEAD")
        if path in ("/ui", "/ui/"):
            if caller is None:
                await replies.redirect(send, "/ui/login", request_id)
            else:
                await self._asset(send, "index.html", headers, request_id)
            return
        if path.startswith("/ui/static/"):
            name = path[len("/ui/static/"):]
            if caller is None and name not in PUBLIC:
                raise E.AuthenticationFailed("sign in at /ui/login first")
            await self._asset(send, name, headers, request_id)
            return
        if caller is None:
            raise E.AuthenticationFailed("sign in at /ui/login first")
        if path == "/ui/session":
            token = session_token(headers)
            assert token is not None and caller.session is not None
            body = msgspec.json.encode({"key_id": caller.key_id, "role": caller.role,
                                        "expires": caller.session.expires, "csrf": self.signer.csrf(token)})
            await replies.send_json(send, 200, body, request_id)
            return
        raise E.NotFound(f"no such page: {path}")

    async def _asset(self, send: replies.Send, name: str, headers: list, request_id: str) -> None:
        asset = self.assets.get(name)
        if asset is None:
            raise E.NotFound(f"no such file: /ui/static/{name}")
        cache = [(b"cache-control", b"no-cache"), (b"etag", asset.etag)]
        if header(headers, b"if-none-match") == asset.etag.decode():
            await replies.send_body(send, 304, b"", asset.content_type, request_id, cache)
            return
        await replies.send_body(send, 200, asset.body, asset.content_type, request_id, cache)

    async def _login(self, scope: dict[str, Any], receive: Receive, send: replies.Send, request_id: str) -> None:
        presented = _login_key(await read_body(scope, receive, _MAX_LOGIN_BODY), header(scope["headers"], b"content-type") or "")
        caller = await self.keys.caller_for_key(presented) if presented and self.keys else None
        if caller is None:
            await replies.redirect(send, "/ui/login?failed=1", request_id)
            return
        token, _ = self.signer.issue(caller.key_id, caller.role)
        await replies.redirect(send, "/ui/", request_id, [_cookie(scope, token, SESSION_SECONDS)])


def _login_key(body: bytes, content_type: str) -> str | None:
    """The key a sign-in presents (None: none); a JSON body that cannot be read is a 400, as any API body's is
    (decode_body bounds the nesting: `[` x 2000 would otherwise raise RecursionError, a 500)."""
    if content_type.partition(";")[0].strip().lower() == "application/json":
        value = E.decode_body(_decode_any, body)
        key = value.get("key") if isinstance(value, dict) else None
        return key.strip() if isinstance(key, str) else None
    fields = dict(parse_qsl(body.decode("utf-8", "replace")))
    return fields.get("key", "").strip() or None


def _cookie(scope: dict[str, Any], value: str, max_age: int) -> tuple[bytes, bytes]:
    secure = "; Secure" if scope.get("scheme") == "https" else ""
    return (b"set-cookie", f"{COOKIE}={value}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Strict{secure}".encode())


def _allow(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise replies.MethodNotAllowed(method)
