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
method this relies on changes, so an upgrade re-reads them first. Cost per request: the checks in `on_headers_complete`
(bench/bench_hardening.py).
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import httptools
import msgspec
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from dragoman import errors as E

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
    """uvicorn's httptools protocol with the limits above; `config.limits` carries them (a `Limits`).

    Per request it adds only the head-size and field-count checks in `on_headers_complete`: deadlines are kept
    by a sweep of the process's connections about once a second (`check_deadlines`), which reads the state
    uvicorn keeps anyway (a head is under way while the request's scope has no "method" yet; a body while its
    cycle has `more_body`) and times each from the sweep that first saw it."""

    # Slots keep our state out of the instance dict: past 30 keys CPython 3.11 stops sharing the dict's keys, and
    # every `self.x` in uvicorn's code gets slower (+1.3 µs a request in bench/bench_hardening.py).
    __slots__ = ("limits", "_chunk", "_counted", "_head_bytes", "_watched", "_since", "_answered", "_draining",
                 "_over_cap", "_linger")

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any], _loop: Any = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits: Limits = config.limits
        self._chunk = 0  # size of the read being parsed
        self._counted: object = None  # the request (scope) whose head `_head_bytes` counts
        self._head_bytes = 0  # bytes received for that head in reads that ended before it did
        self._watched: object = None  # what the last sweep saw waiting: a scope (head), a cycle (body), or self
        self._since = 0.0  # loop time it was first seen waiting
        self._answered = False  # our refusal went out with FIN: input is discarded until the connection closes
        self._draining = False  # shutdown began: answer the request under way, then close
        self._over_cap = False  # opened past max_connections: its request gets 529
        self._linger: asyncio.TimerHandle | None = None

    # ---- connection --------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watched, self._since = self, self.loop.time()  # the first head's deadline counts from connect
        _watch(self.server_state, self.loop, self.limits)
        # Answered once its request head is in: an answer sent before the client wrote its request could be
        # taken for a protocol error (undici) instead of the overload it is.
        self._over_cap = len(self.connections) > self.limits.max_connections

    def connection_lost(self, exc: Exception | None) -> None:
        if self._linger is not None:
            self._linger.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # uvicorn 0.55 HttpToolsProtocol.data_received, with our answer to malformed input, and the size of a
        # head that spans reads counted as they come.
        if self._answered:
            return
        self._unset_keepalive_if_required()
        self._chunk = len(data)
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
        scope = self.scope
        if scope is not None and "method" not in scope:  # a head is still incomplete after this read
            if scope is not self._counted:
                # A later request's head may begin inside a read that ends the previous one: that read is not
                # counted, so a head is refused at most one read (≤ 256 KiB) past the limit.
                self._counted, self._head_bytes = scope, 0 if self.cycle is None else -len(data)
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_header_bytes:
                self._refuse(431, "invalid_request_error", self._too_large())

    def shutdown(self) -> None:
        """Graceful shutdown: idle connections close now; one with a request under way answers it, then closes."""
        if self._answered:
            self.transport.close()
            return
        waiting = self.scope is None or "method" not in self.scope  # for its first request, or a head under way
        if not waiting and (self.cycle is None or self.cycle.response_complete):
            super().shutdown()
            return
        self._draining = True
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False

    # ---- parser callback ---------------------------------------------------------------------------------

    def on_headers_complete(self) -> None:
        limits = self.limits
        # Reads seen so far bound the head's size; only when they pass the limit is it measured exactly.
        seen = self._chunk + (self._head_bytes if self._counted is self.scope else 0)
        if self._over_cap or len(self.headers) > limits.max_headers or seen > limits.max_header_bytes:
            self._refuse_head()
        super().on_headers_complete()
        if self._draining:
            self.cycle.keep_alive = False

    def _refuse_head(self) -> None:
        limits = self.limits
        if self._over_cap:
            self._refuse(529, "overloaded_error",
                         f"the gateway is at its connection limit ({limits.max_connections}); retry shortly",
                         b"retry-after: 1\r\nx-should-retry: true\r\n")
        elif len(self.headers) > limits.max_headers:
            self._refuse(431, "invalid_request_error",
                         f"request has {len(self.headers)} header fields; the gateway's limit is {limits.max_headers}")
        elif len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers) > limits.max_header_bytes:
            self._refuse(431, "invalid_request_error", self._too_large())
        else:
            return  # the reads held some body too: the head itself is within the limit
        raise _Refused()

    def end_waiting(self, message: str) -> None:
        """Shutdown's drain limit passed: a request still arriving gets 529 now, rather than a cut at exit."""
        if self._answered:
            return
        scope, cycle = self.scope, self.cycle
        if scope is None:
            self.transport.close()  # sent nothing
        elif "method" not in scope or cycle is not None and cycle.more_body and not cycle.response_complete:
            self._refuse(529, "overloaded_error", message, b"x-should-retry: true\r\n")

    # ---- deadlines ---------------------------------------------------------------------------------------

    def check_deadlines(self, now: float) -> None:
        """Called by the sweep: 408 for a head or a body that has been arriving for too long."""
        if self._answered:
            return
        scope, cycle, limits = self.scope, self.cycle, self.limits
        if self.flow.read_paused:  # paused by us (a pipelined request waits its turn): the client is not slow
            waiting = None
        elif scope is None:  # nothing received yet: `self` stands for the first head
            waiting, limit, what = self, limits.header_timeout, "headers"
        elif "method" not in scope:
            waiting, limit, what = scope, limits.header_timeout, "headers"
        elif cycle is not None and cycle.more_body:
            waiting, limit, what = cycle, limits.body_timeout, "body"
        else:
            waiting = None
        if waiting is not self._watched:
            self._watched, self._since = waiting, now
            return
        if waiting is None or now - self._since <= limit:
            return
        if waiting is self or cycle is not None and cycle is waiting and cycle.response_complete:
            self.transport.close()  # sent nothing, or answered already: close like an idle keep-alive connection
            return
        self._refuse(408, "invalid_request_error", f"request {what} not received within {limit:g} s")

    def _too_large(self) -> str:
        return f"request line and headers exceed the gateway's limit of {self.limits.max_header_bytes} bytes"

    def _refuse(self, status: int, error_type: str, message: str, extra: bytes = b"") -> None:
        """Answer with an Anthropic error and half-close; the request in progress, if any, sees a disconnect."""
        if self._answered:
            return
        self._answered = True
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app's receive() returns http.disconnect; its sends go nowhere
            cycle.message_event.set()
            if cycle.response_started:  # an answer is already half sent: nothing clean can follow it
                self.transport.close()
                return
        body = E.error_body(error_type, message)
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


# One sweep per process checks every connection's deadlines: nothing per request, and a deadline is met at most
# one sweep period late (a second at most; a quarter of the shortest timeout when that is shorter).
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
