"""What a web page must not be able to do with a gateway on the developer's machine.

With auth off (the zero-config default) any page the developer opens could call a gateway on 127.0.0.1: a
cross-origin `fetch` with `content-type: text/plain` is sent without a CORS preflight, and a DNS-rebinding page
reaches the gateway under its own host name. So, before any endpoint runs:

- a request with an `Origin` header (only browsers send one; Claude Code and the SDKs do not) is refused with 403
  `permission_error` unless `server.cors_origins` lists that origin — then it gets CORS headers, and its preflight
  `OPTIONS` is answered;
- on a loopback address, a `Host` other than localhost, 127.0.0.1 or [::1] (bare, or with the port the request
  came in on) or a `server.allowed_hosts` entry is refused with 403: a rebinding page's Host is its own name;
- a POST must say `content-type: application/json` (parameters allowed), or it gets 400
  `invalid_request_error`: the only content types a page can send without a preflight are not JSON;
- the gateway's own dashboard (/ui and /api/ from a page whose Origin is this Host) passes the Origin check, and
  its sign-in form (POST /ui/login) may be urlencoded: its Origin is checked like any other.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from dragoman import errors as E
from dragoman.config.model import ServerSettings

Send = Callable[[dict[str, Any]], Awaitable[None]]

_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
_ALLOW_METHODS = b"GET, HEAD, POST, OPTIONS"
_EXPOSE = b"request-id, retry-after, x-should-retry"


class RequestGuard:
    """The checks above for one config's `server:` settings, precomputed: a request costs a few lookups."""

    __slots__ = ("_origins", "_any_origin", "_hosts", "_any_host", "_by_port")

    def __init__(self, settings: ServerSettings) -> None:
        self._origins = frozenset(o.encode("latin-1") for o in settings.cors_origins if o != "*")
        self._any_origin = "*" in settings.cors_origins
        self._hosts = frozenset(h.encode("latin-1") for h in settings.allowed_hosts if h != "*")
        self._any_host = "*" in settings.allowed_hosts
        self._by_port: dict[int, frozenset[bytes]] = {}

    def check(self, scope: dict[str, Any]) -> bytes | None:
        """Raise for a request a web page could have made; return its Origin when CORS headers are owed."""
        headers = dict(scope["headers"])  # one C-level pass; the last of repeated names wins
        origin = headers.get(b"origin")
        if origin is not None and not self._any_origin and origin not in self._origins:
            if _own_page(scope["path"], origin, headers.get(b"host")):
                origin = None  # the gateway's own dashboard: no CORS headers owed (Host is still checked below)
            else:
                raise E.PermissionDenied(
                    f"requests from web pages are refused (Origin {origin.decode('latin-1')!r}); "
                    "list the origin in server.cors_origins to allow it")
        host = headers.get(b"host")
        if host is not None and not self._any_host:
            server = scope.get("server")
            if server is not None and _is_loopback(server[0]) and not self._host_allowed(host.lower(), server[1]):
                raise E.PermissionDenied(
                    f"Host {host.decode('latin-1')!r} is not this gateway's name on loopback; "
                    "add it to server.allowed_hosts if it is")
        if scope["method"] == "POST" and scope["path"] != "/ui/login":  # a sign-in form posts urlencoded
            content_type = headers.get(b"content-type")
            if content_type != b"application/json" and not _is_json(content_type):
                raise E.InvalidRequest("content-type must be application/json")
        return origin

    def _host_allowed(self, host: bytes, port: int | None) -> bool:
        allowed = self._by_port.get(port or 0)
        if allowed is None:
            names = [n.encode() for n in _LOOPBACK_NAMES]
            allowed = frozenset(names + [n + b":%d" % port for n in names if port] + list(self._hosts))
            self._by_port[port or 0] = allowed
        if host in allowed:
            return True
        name, _, tail = host.rpartition(b":") if not host.endswith(b"]") else (host, b"", b"")
        return bool(name) and tail.isdigit() and name in self._hosts  # an allowed_hosts name, on any port


def with_cors(send: Send, origin: bytes) -> Send:
    """`send` adding the headers that let the page at `origin` read the answer."""
    extra = [(b"access-control-allow-origin", origin), (b"access-control-expose-headers", _EXPOSE), (b"vary", b"origin")]

    async def send_with_cors(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), *extra]}
        await send(message)

    return send_with_cors


def is_preflight(scope: dict[str, Any]) -> bool:
    return scope["method"] == "OPTIONS" and any(name == b"access-control-request-method" for name, _ in scope["headers"])


async def answer_preflight(send: Send, scope: dict[str, Any]) -> None:
    """204 with what an allowed origin may send (`send` already adds the origin, via `with_cors`)."""
    requested = next((value for name, value in scope["headers"] if name == b"access-control-request-headers"), None)
    headers = [(b"access-control-allow-methods", _ALLOW_METHODS), (b"access-control-max-age", b"600")]
    if requested:
        headers.append((b"access-control-allow-headers", requested))
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


def _own_page(path: str, origin: bytes, host: bytes | None) -> bool:
    """A request from the gateway's own dashboard: to /ui or /api/, from a page whose origin is this Host. The
    scheme is not compared: behind a TLS proxy the page is https and the gateway sees http."""
    if host is None or not (path == "/ui" or path.startswith(("/ui/", "/api/"))):
        return False
    return origin.partition(b"://")[2] == host


def _is_loopback(address: str) -> bool:
    return address.startswith("127.") or address == "::1" or address.startswith("::ffff:127.")


def _is_json(content_type: bytes | None) -> bool:
    return content_type is not None and content_type.partition(b";")[0].strip().lower() == b"application/json"
