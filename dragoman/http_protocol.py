"""HTTP/1.1 connection limits that uvicorn's httptools protocol lacks, and Anthropic-shaped refusals.

uvicorn (0.55) reads a request head of any size (a 16 MB header is accepted whole), waits forever for a head or a
body sent one byte at a time, accepts connections until the process runs out of descriptors, and answers
malformed HTTP in plain text. This subclass bounds the head's size and field count, the time to receive the head
and the body, and the connections per process; every refusal is an Anthropic error sent before the connection
closes, never a reset:

- head over `max_header_bytes` or `max_headers` fields: 431; malformed HTTP: 400 (`invalid_request_error`);
- head not complete within `header_timeout`, or body within `body_timeout` of its head: 408 (a connection that
  sent nothing is closed without an answer, like any idle keep-alive connection);
- more than `max_connections` open: 529 `overloaded_error` with `retry-after`, once the request's head is in.

After a refusal the connection half-closes (FIN) and discards what the client still sends for up to
`LINGER_SECONDS` (nginx's lingering close): closing with unread input would make the kernel reset the
connection, and the client would never read the answer. On graceful shutdown a connection that has not yet
sent a whole request is kept until it has, and that request is answered (with `connection: close`).

Written against uvicorn 0.55.0 and httptools 0.9.0: `data_received` replaces uvicorn's own (same steps, and
the head accounting); the others wrap uvicorn's. tests/test_uvicorn_internals_pinned.py fails when a uvicorn
method this relies on changes, so an upgrade re-reads them first. Cost per request: a few attribute updates and
one clock read (bench/README.md).
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import httptools
import msgspec
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from dragoman.protocols import anthropic as A

LINGER_SECONDS = 2.0


class Limits(msgspec.Struct, frozen=True):
    """What one connection may take; `serving` builds it from the config's `server:` settings."""

    max_header_bytes: int
    max_headers: int
    header_timeout: float
    body_timeout: float
    max_connections: int


class _Refused(Exception):
    """Raised from a parser callback after an answer went out: stops httptools from parsing further."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits above; `config.limits` carries them (a `Limits`)."""

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any], _loop: Any = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits: Limits = config.limits
        self._head_since: float | None = None  # loop time the head being read began; None: no head under way
        self._body_since: float | None = None  # loop time the last head ended, while its body still arrives
        self._began = False  # a byte of the current head arrived (a silent connection is closed, not answered)
        self._head_bytes = 0  # bytes of the current head received in earlier reads
        self._chunk = 0  # size of the read being parsed
        self._message_done = False  # a message ended inside the read being parsed
        self._answered = False  # our refusal went out with FIN: input is discarded until the connection closes
        self._draining = False  # shutdown began: answer the request under way, then close
        self._over_cap = False  # opened past max_connections: its request gets 529
        self._linger: asyncio.TimerHandle | None = None

    # ---- connection --------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_since = self.loop.time()
        _watch(self.server_state, self.loop, self.limits)
        # Answered once its request head is in: an answer sent before the client wrote its request could be
        # taken for a protocol error (undici) instead of the overload it is.
        self._over_cap = len(self.connections) > self.limits.max_connections

    def connection_lost(self, exc: Exception | None) -> None:
        if self._linger is not None:
            self._linger.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # uvicorn 0.55 HttpToolsProtocol.data_received, with the head's size counted between reads and our own
        # answer to malformed input.
        if self._answered:
            return
        self._unset_keepalive_if_required()
        self._chunk = len(data)
        self._message_done = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            if not self._answered:  # else a limit of ours stopped the parser and has answered already
                self._refuse(400, "invalid_request_error", "malformed HTTP/1.1 request")
            return
        if self._head_since is not None and self._began:  # a head is still incomplete after this read
            if not self._message_done:  # else the read began with the previous message's end: not counted
                self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_header_bytes:
                self._refuse(431, "invalid_request_error", self._too_large())

    def shutdown(self) -> None:
        """Graceful shutdown: idle connections close now; one with a request under way answers it, then closes."""
        if self._answered:
            self.transport.close()
            return
        idle = self._head_since is None and (self.cycle is None or self.cycle.response_complete)
        if idle:
            super().shutdown()
            return
        self._draining = True  # a fresh connection, or a head under way: its request is answered
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False

    # ---- parser callbacks --------------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._began = True
        self._head_bytes = 0
        if self._head_since is None:  # a keep-alive connection's next request (the first counts from connect)
            self._head_since = self.loop.time()

    def on_headers_complete(self) -> None:
        limits = self.limits
        if self._over_cap:
            self._refuse(529, "overloaded_error",
                         f"the gateway is at its connection limit ({limits.max_connections}); retry shortly",
                         b"retry-after: 1\r\nx-should-retry: true\r\n")
            raise _Refused()
        if len(self.headers) > limits.max_headers:
            self._refuse(431, "invalid_request_error",
                         f"request has {len(self.headers)} header fields; the gateway's limit is {limits.max_headers}")
            raise _Refused()
        # Reads seen so far bound the head's size; only when they pass the limit is it measured exactly.
        if self._head_bytes + self._chunk > limits.max_header_bytes and self._head_size() > limits.max_header_bytes:
            self._refuse(431, "invalid_request_error", self._too_large())
            raise _Refused()
        self._head_since = None
        self._began = False
        self._body_since = self.loop.time()
        super().on_headers_complete()
        if self._draining:
            self.cycle.keep_alive = False

    def on_message_complete(self) -> None:
        self._body_since = None
        self._message_done = True
        super().on_message_complete()

    # ---- limits ------------------------------------------------------------------------------------------

    def check_deadlines(self, now: float) -> None:
        """Called about once a second: answer 408 to a head or body that is taking too long."""
        if self._answered:
            return
        if self.flow.read_paused:  # paused by us (a pipelined request waits its turn): time the client is not slow
            self._head_since = now if self._head_since is not None else None
            self._body_since = now if self._body_since is not None else None
            return
        limits = self.limits
        if self._head_since is not None and now - self._head_since > limits.header_timeout:
            if not self._began:
                self.transport.close()  # sent nothing: close like an idle keep-alive connection
                return
            self._refuse(408, "invalid_request_error",
                         f"request headers not received within {limits.header_timeout:g} s")
        elif self._body_since is not None and now - self._body_since > limits.body_timeout:
            self._refuse(408, "invalid_request_error", f"request body not received within {limits.body_timeout:g} s")

    def _head_size(self) -> int:
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def _too_large(self) -> str:
        return f"request line and headers exceed the gateway's limit of {self.limits.max_header_bytes} bytes"

    def _refuse(self, status: int, error_type: str, message: str, extra: bytes = b"") -> None:
        """Answer with an Anthropic error and half-close; the request in progress, if any, sees a disconnect."""
        if self._answered:
            return
        self._answered = True
        self._head_since = self._body_since = None
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app's receive() returns http.disconnect; its sends go nowhere
            cycle.message_event.set()
            if cycle.response_started:  # an answer is already half sent: nothing clean can follow it
                self.transport.close()
                return
        body = msgspec.json.encode(A.Error(error=A.ErrorBody(type=error_type, message=message)))
        head = b"%scontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n%s\r\n" % (
            STATUS_LINE[status], len(body), extra)
        transport = self.transport
        transport.write(head + body)
        try:
            transport.write_eof()
        except (NotImplementedError, RuntimeError, OSError):  # TLS transports cannot half-close
            transport.close()
            return
        self.flow.resume_reading()  # keep reading, to discard what the client still sends
        self._linger = self.loop.call_later(LINGER_SECONDS, transport.close)


# One sweep per process checks every connection's deadlines: a timer per request would cost more than the
# clock read per request this needs, and a late sweep only lets a slow client wait up to a second longer.
_SWEPT: weakref.WeakSet[Any] = weakref.WeakSet()


def _watch(state: Any, loop: asyncio.AbstractEventLoop, limits: Limits) -> None:
    if state in _SWEPT:
        return
    _SWEPT.add(state)
    period = max(0.05, min(1.0, limits.header_timeout / 4, limits.body_timeout / 4))
    loop.call_later(period, _sweep, state, loop, period)


def _sweep(state: Any, loop: asyncio.AbstractEventLoop, period: float) -> None:
    now = loop.time()
    for connection in list(state.connections):
        if isinstance(connection, LimitedHttpToolsProtocol):
            connection.check_deadlines(now)
    loop.call_later(period, _sweep, state, loop, period)
