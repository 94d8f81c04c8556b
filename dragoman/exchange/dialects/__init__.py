"""The upstream dialects: what the exchange needs from each upstream wire protocol — build the request, read a
JSON answer, relay a stream. They glue the translators (dragoman.translate) to the transport (dragoman.upstreams).

One implementation per protocol, so the candidate loop, fallback and streaming code is the same for all of them:
`chat` (OpenAI Chat Completions), `responses` (OpenAI Responses), `messages` (Anthropic, passed through)."""

from __future__ import annotations

from typing import Protocol

from dragoman import errors as E
from dragoman.protocols import anthropic as A
from dragoman.translate.request_context import RequestContext


class Answer:
    """A complete (non-streamed) answer in Anthropic's JSON, with what the audit record needs from it."""

    __slots__ = ("body", "usage", "stop_reason", "upstream_model", "content")

    def __init__(self, body: bytes, usage: A.Usage | None, stop_reason: str | None, upstream_model: str | None,
                 content: list[A.OutBlock] | None = None) -> None:
        self.body = body
        self.content = content  # the blocks `body` encodes, when the gateway built them (the loop reads these)
        self.usage = usage
        self.stop_reason = stop_reason
        self.upstream_model = upstream_model


class StreamRelay(Protocol):
    """Upstream stream bytes in, Anthropic SSE bytes out, one call per read, nothing held back."""

    event_count: int
    # The error the output ended with (an Anthropic `error` event was its last): the upstream's own error event
    # (see `upstream_failed`), or the transport failure passed to `fail`. None while the stream is sound.
    failure: E.GatewayError | None
    upstream_model: str | None  # the model that answered, once the stream said

    @property
    def started(self) -> bool: ...  # the answer began (the client may have bytes): failures are now `error` events

    @property
    def ended(self) -> bool: ...  # message_stop or error was produced: stop reading

    def feed(self, data: bytes) -> bytes: ...  # raises EventTooLarge (protocols.sse) for an oversized event

    def eof(self) -> bytes: ...  # the upstream closed the stream

    def fail(self, err: E.GatewayError) -> bytes: ...  # a transport failure mid-stream: the `error` event for it

    def usage(self) -> tuple[A.Usage | None, str | None]: ...  # (final usage, stop_reason) once ended


class Dialect(Protocol):
    """One upstream wire protocol, bound to a route."""

    route: Route
    translated: bool  # answers are built by the gateway (Chat, Responses), not relayed as the upstream sent them

    def request_body(self, req: A.MessagesRequest, raw: bytes, ctx: RequestContext) -> bytes: ...

    def request_headers(self, base: dict[str, str], client_headers: list[tuple[bytes, bytes]]) -> dict[str, str]: ...

    def answer(self, raw: bytes, ctx: RequestContext) -> Answer: ...

    def relay(self, ctx: RequestContext) -> StreamRelay: ...


def dialect_for(route: Route) -> Dialect:
    """The dialect a route's upstream speaks."""
    if route.api == "messages":
        from dragoman.exchange.dialects.messages import AnthropicPassthrough

        return AnthropicPassthrough(route)
    if route.api == "responses":
        from dragoman.exchange.dialects.responses import ResponsesDialect

        return ResponsesDialect(route)
    from dragoman.exchange.dialects.chat import ChatDialect

    return ChatDialect(route)


def upstream_failed(route: str, error_type: str, message: str) -> E.GatewayError:
    """The error value of an upstream's own stream `error` event (`message` already redacted). Before the client
    has a byte it is the candidate's failure, classified as the same failure in an HTTP answer is: an overload is
    retried and may fall back, the request's own fault (invalid_request_error) goes to the client as its 400."""
    return E.upstream_failure(error_type, f"upstream for route {route!r}", message)
