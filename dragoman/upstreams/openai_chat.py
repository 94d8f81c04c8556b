"""The OpenAI Chat Completions upstream client: pooled aiohttp connections, timeouts, error capture.

aiohttp rather than httpx: on this path httpx costs 3–4× the CPU and collapses under concurrency
(shared/performance.md)."""

from __future__ import annotations

from typing import AsyncIterator

import aiohttp

from dragoman.upstreams.errors import error_from_exception, error_from_status


class UpstreamTarget:
    """Where one route's requests go: URL, headers and timeouts, built once per route, not per request."""

    __slots__ = ("route", "url", "headers", "timeout", "secret")

    def __init__(self, route: str, url: str, api_key: str | None, connect: float, first_byte: float, idle: float) -> None:
        self.route = route
        self.url = url
        self.secret = api_key
        self.headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        # sock_read bounds the wait for the answer's head and every later read: the first byte and idle gaps.
        self.timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=max(first_byte, idle))


class ChatUpstream:
    """Sends translated Chat requests; a non-2xx answer or a transport failure raises a GatewayError."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    async def post(self, target: UpstreamTarget, body: bytes) -> aiohttp.ClientResponse:
        """POST the body; return the response once its status is 2xx (the caller reads or streams it)."""
        try:
            resp = await self._session.post(target.url, data=body, headers=target.headers, timeout=target.timeout)
        except Exception as exc:  # noqa: BLE001 - every transport failure maps to an Anthropic error
            raise error_from_exception(exc, target.route) from None
        if resp.status >= 300:
            try:
                raw = await resp.read()
            except Exception:  # noqa: BLE001
                raw = b""
            finally:
                resp.release()
            raise error_from_status(resp.status, raw, dict(resp.headers), target.route, target.secret)
        return resp

    async def read(self, target: UpstreamTarget, resp: aiohttp.ClientResponse) -> bytes:
        try:
            return await resp.read()
        except Exception as exc:  # noqa: BLE001
            raise error_from_exception(exc, target.route) from None
        finally:
            resp.release()


async def iter_body(resp: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """The response body as it arrives, whatever size the reads come in."""
    async for data in resp.content.iter_any():
        yield data
