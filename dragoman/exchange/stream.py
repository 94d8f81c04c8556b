"""A streamed answer as an async iterator of bytes: the first output the candidate loop waited for, then each
upstream read's translation as it arrives. The server only iterates it (`async for chunk in exchange.stream()`).

Nothing is added per chunk beyond the relay's own work: no task, no timer, no wake-up (docs/performance.md);
aiohttp's read timer (idle, see upstreams.client.UpstreamStream) bounds each wait for the next chunk. After the
first byte a failure can no longer become an HTTP error or another candidate: it ends the stream with an
Anthropic `error` event (design §3)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, AsyncGenerator

from dragoman import errors as E
from dragoman.exchange.dialects import StreamRelay
from dragoman.loop.evidence import FINISHED, TRANSPORT_FAILED, UPSTREAM_CLOSED
from dragoman.protocols.sse import EventTooLarge
from dragoman.upstreams.client import UpstreamStream

if TYPE_CHECKING:
    from dragoman.exchange.lifecycle import Exchange


class OpenStream:
    """A candidate's stream whose first output is ready: the upstream body still to read, and its relay."""

    __slots__ = ("upstream", "relay", "first")

    def __init__(self, upstream: UpstreamStream, relay: StreamRelay, first: bytes) -> None:
        self.upstream = upstream
        self.relay = relay
        self.first = first


async def answer_stream(exchange: Exchange, opened: OpenStream) -> AsyncGenerator[bytes, None]:
    """The answer's bytes, each yielded as soon as the relay has it. Its end, or `aclose()`, hands the upstream
    connection back (the exchange's `finish` does too, for a stream never read)."""
    upstream, relay = opened.upstream, opened.relay
    kept = exchange.kept  # the loop's evidence: the bytes the client got (None when the loop is off)
    if kept is not None:
        kept.append(opened.first)
    yield opened.first
    exchange.ttfb = time.perf_counter() - exchange.started  # the server asks for more once the first is sent
    began = time.perf_counter()
    try:
        if relay.ended:
            exchange.stream_end = FINISHED
            return
        try:
            async for data in upstream:
                out = relay.feed(data)
                if out:
                    if kept is not None:
                        kept.append(out)
                    yield out
                if relay.ended:
                    exchange.stream_end = FINISHED
                    return
            tail = relay.eof()
            exchange.stream_end = UPSTREAM_CLOSED
        except E.GatewayError as err:
            tail = relay.fail(err)
            exchange.stream_end = TRANSPORT_FAILED
        except EventTooLarge as exc:
            tail = relay.fail(upstream.failure(exc))
            exchange.stream_end = TRANSPORT_FAILED
        if tail:
            if kept is not None:
                kept.append(tail)
            yield tail
    finally:
        upstream.close()
        exchange.upstream_time += time.perf_counter() - began
