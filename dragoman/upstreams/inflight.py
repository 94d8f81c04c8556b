"""The upstream answers being awaited or read, so that a shutdown past its drain limit can end them cleanly.

When `server.shutdown_timeout` passes with requests still in flight, uvicorn would cancel their tasks: a stream
would stop mid-answer without an `error` event, and its record would say 500. Instead every upstream exchange
still open fails with `GatewayShuttingDown`, through the paths any upstream failure takes: a stream ends with an
`overloaded_error` event (recorded 200, `stream_error`, as the audit records other broken streams), a request
still waiting for its first byte is answered 529 `overloaded_error`. Later upstream calls fail the same way.

Tracking costs one WeakSet insertion per upstream call: aiohttp's `response_class` hook, called when the
request has been sent.
"""

from __future__ import annotations

import weakref
from typing import Any

import aiohttp

from dragoman.upstreams.errors import GatewayShuttingDown

SHUTDOWN_MESSAGE = "the gateway is shutting down; retry the request"


class InFlight:
    """The session's open upstream answers; `response_class` is the aiohttp ClientSession argument."""

    def __init__(self) -> None:
        self.ended = False
        self._responses: weakref.WeakSet[aiohttp.ClientResponse] = weakref.WeakSet()
        self.response_class = self._tracking_class()

    def end_all(self) -> int:
        """Fail every open upstream answer, and every later one; returns how many were open."""
        self.ended = True
        ended = 0
        for resp in list(self._responses):
            if resp.closed:  # released, or read to its end: nothing left to cut
                continue
            exc = GatewayShuttingDown(SHUTDOWN_MESSAGE)
            if resp.content is not None:  # headers are in: the body's reader raises on its next read
                resp.content.set_exception(exc)
            elif resp.connection is not None and resp.connection.protocol is not None:
                resp.connection.protocol.set_exception(exc)  # still waiting for the head
            ended += 1
        return ended

    def _tracking_class(self) -> type[aiohttp.ClientResponse]:
        inflight = self

        class TrackedResponse(aiohttp.ClientResponse):
            async def start(self, connection: Any) -> aiohttp.ClientResponse:
                if inflight.ended:
                    raise GatewayShuttingDown(SHUTDOWN_MESSAGE)
                inflight._responses.add(self)
                return await super().start(connection)

        return TrackedResponse
