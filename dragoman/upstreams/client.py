"""The upstream HTTP client: pooled aiohttp connections, per-provider credentials, timeouts, error capture.

aiohttp rather than httpx: on this path httpx costs 3–4× the CPU and collapses under concurrency
(shared/performance.md)."""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp

from dragoman.routing.config import Route
from dragoman.upstreams.errors import error_from_exception, error_from_status

ANTHROPIC_VERSION = "2023-06-01"


class UpstreamTarget:
    """Where one route's requests go: URL, headers and timeouts, built once per route, not per request."""

    __slots__ = ("route", "url", "host", "headers", "timeout", "secret", "first_byte", "idle")

    def __init__(self, route: Route) -> None:
        self.route = route.name
        self.url = route.endpoint
        self.host = urlsplit(route.endpoint).hostname or ""  # for records: never the URL's credentials
        self.secret = route.api_key
        self.headers = _headers(route)
        t = route.timeouts
        self.first_byte = t.first_byte
        self.idle = t.idle
        # aiohttp re-arms its socket read timer on every read anyway, so it keeps our deadlines at no extra
        # cost: first_byte until the answer's head (and a JSON answer's body); a stream then switches to idle
        # (`stream_idle`). An asyncio.timeout() per request cost ~10% of the gateway's CPU (bench/RESULTS.md).
        self.timeout = aiohttp.ClientTimeout(total=None, sock_connect=t.connect, connect=t.connect, sock_read=t.first_byte)


def _headers(route: Route) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    key = route.api_key
    if route.provider == "anthropic":
        headers["anthropic-version"] = ANTHROPIC_VERSION
        if key:
            headers["x-api-key"] = key
    elif route.provider == "azure_openai":
        if key:
            headers["api-key"] = key
    elif key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


class UpstreamClient:
    """Sends upstream requests; a non-2xx answer or a transport failure raises a GatewayError."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    async def post(
        self, target: UpstreamTarget, body: bytes, headers: dict[str, str] | None = None
    ) -> aiohttp.ClientResponse:
        """POST the body; return the response once its status is 2xx (the caller reads or streams it)."""
        try:
            resp = await self._session.post(target.url, data=body, headers=headers or target.headers, timeout=target.timeout)
        except Exception as exc:  # noqa: BLE001 - every transport failure maps to an Anthropic error
            raise error_from_exception(exc, target.route) from None
        if resp.status >= 300:
            try:
                raw = await resp.read()
            except Exception:  # noqa: BLE001
                raw = b""
            finally:
                resp.release()
            err = error_from_status(resp.status, raw, dict(resp.headers), target.route, target.secret)
            err.upstream_status = resp.status
            raise err
        return resp

    async def read(self, target: UpstreamTarget, resp: aiohttp.ClientResponse) -> bytes:
        """The whole body of a non-streamed answer (no read may wait longer than first_byte)."""
        try:
            return await resp.read()
        except Exception as exc:  # noqa: BLE001
            raise error_from_exception(exc, target.route) from None
        finally:
            resp.release()


def stream_idle(resp: aiohttp.ClientResponse, idle: float) -> None:
    """From now on, silence between a stream's reads may last `idle` seconds (instead of first_byte)."""
    connection = resp.connection
    if connection is not None and connection.protocol is not None:
        connection.protocol.read_timeout = idle
