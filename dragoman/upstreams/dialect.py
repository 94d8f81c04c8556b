"""What the server needs from each upstream wire protocol: build the request, read a JSON answer, relay a stream.

One implementation per protocol (Chat, Responses, Anthropic passthrough), so the server's request loop,
fallback and streaming code is the same for all of them."""

from __future__ import annotations

from typing import Protocol

from dragoman.config.model import Route
from dragoman.protocols import anthropic as A
from dragoman.translate.request_context import RequestContext


class Answer:
    """A complete (non-streamed) answer in Anthropic's JSON, with what the audit record needs from it."""

    __slots__ = ("body", "usage", "stop_reason", "upstream_model")

    def __init__(self, body: bytes, usage: A.Usage | None, stop_reason: str | None, upstream_model: str | None) -> None:
        self.body = body
        self.usage = usage
        self.stop_reason = stop_reason
        self.upstream_model = upstream_model


class StreamRelay(Protocol):
    """Upstream stream bytes in, Anthropic SSE bytes out, one call per read, nothing held back."""

    event_count: int
    failed: bool  # the output ended with an Anthropic `error` event
    failure: str  # its message
    failure_type: str  # and its Anthropic error type
    upstream_model: str | None  # the model that answered, once the stream said

    @property
    def started(self) -> bool: ...  # the upstream sent something: failures are now `error` events

    @property
    def ended(self) -> bool: ...  # message_stop or error was produced: stop reading

    def feed(self, data: bytes) -> bytes: ...

    def eof(self) -> bytes: ...  # the upstream closed the stream

    def fail(self, error_type: str, message: str) -> bytes: ...  # a transport failure mid-stream

    def usage(self) -> tuple[A.Usage | None, str | None]: ...  # (final usage, stop_reason) once ended


class Dialect(Protocol):
    """One upstream wire protocol, bound to a route."""

    route: Route

    def request_body(self, req: A.MessagesRequest, raw: bytes, ctx: RequestContext) -> bytes: ...

    def request_headers(self, base: dict[str, str], client_headers: list[tuple[bytes, bytes]]) -> dict[str, str]: ...

    def answer(self, raw: bytes, ctx: RequestContext) -> Answer: ...

    def relay(self, ctx: RequestContext) -> StreamRelay: ...


def dialect_for(route: Route) -> Dialect:
    """The dialect a route's upstream speaks."""
    if route.api == "messages":
        from dragoman.upstreams.anthropic_passthrough import AnthropicPassthrough

        return AnthropicPassthrough(route)
    if route.api == "responses":
        from dragoman.upstreams.responses_dialect import ResponsesDialect

        return ResponsesDialect(route)
    from dragoman.upstreams.chat_dialect import ChatDialect

    return ChatDialect(route)
