"""Anthropic as an upstream: the body and the stream pass through untouched but for the credential and the
model name. The stream is not parsed on the hot path beyond the events that carry usage, `error` (its upstream
text passes the same redaction as every upstream error before it is relayed) and any without an `event:` name."""

from __future__ import annotations

from typing import Any

import msgspec

from dragoman import errors as E
from dragoman.config.model import Route
from dragoman.exchange.dialects import Answer, upstream_failed
from dragoman.protocols import anthropic as A
from dragoman.protocols.sse import SSEDecoder, encode_events, last_event_end
from dragoman.redaction import redact
from dragoman.translate.messages.request import drop_cache_control
from dragoman.translate.request_context import RequestContext

_encode = msgspec.json.encode
# Client headers an Anthropic upstream must see as sent: new betas must never be dropped on the way.
_FORWARDED = (b"anthropic-version", b"anthropic-beta")
_USAGE_EVENTS = (b"message_start", b"message_delta", b"message_stop", b"error")
# Anthropic's error types (docs.anthropic.com/en/api/errors); an upstream's other text is not a type we repeat.
_ERROR_TYPES = frozenset((
    "invalid_request_error", "authentication_error", "billing_error", "permission_error", "not_found_error",
    "request_too_large", "rate_limit_error", "api_error", "timeout_error", "overloaded_error",
))


class _Usage(msgspec.Struct):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None


class _Message(msgspec.Struct):
    model: str | None = None
    stop_reason: str | None = None
    usage: _Usage | None = None


class _Delta(msgspec.Struct):
    stop_reason: str | None = None


class _ErrorBody(msgspec.Struct):
    type: str = "api_error"
    message: str = ""


class _Event(msgspec.Struct):
    type: str = ""
    message: _Message | None = None
    delta: _Delta | None = None
    usage: _Usage | None = None
    error: _ErrorBody | None = None


_decode_message = msgspec.json.Decoder(_Message).decode
_decode_event = msgspec.json.Decoder(_Event).decode


class AnthropicPassthrough:
    translated = False  # the upstream's own stream is relayed as is: the loop reads its bytes

    def __init__(self, route: Route) -> None:
        self.route = route
        drop = route.translation.drop_headers  # what the route's drop_headers strips, decided once
        self._drop_cache_control = "cache_control" in drop
        self._forwarded = tuple(name for name in _FORWARDED if name.decode() not in drop)

    def request_body(self, req: A.MessagesRequest, raw: bytes, ctx: RequestContext) -> bytes:
        model = self.route.model
        rename = model is not None and model != req.model
        if not rename and not self._drop_cache_control:
            return raw
        body: dict[str, Any] = msgspec.json.decode(raw)  # key order and content kept; only what is named changes
        if rename:
            body["model"] = model
        if self._drop_cache_control and drop_cache_control(body):
            ctx.note("cache_control dropped")
        return _encode(body)

    def request_headers(self, base: dict[str, str], client_headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
        forwarded: dict[str, str] = {}
        for name, value in client_headers:
            if name in self._forwarded:
                key, text = name.decode("latin-1"), value.decode("latin-1")
                # Repeated header lines mean one comma-separated list (RFC 9110 §5.3): keep every beta.
                forwarded[key] = f"{forwarded[key]},{text}" if key in forwarded else text
        return {**base, **forwarded} if forwarded else base

    def answer(self, raw: bytes, ctx: RequestContext) -> Answer:
        try:
            message = _decode_message(raw)
        except (msgspec.DecodeError, RecursionError):  # (bridge_relay.py: why RecursionError)
            raise E.Overloaded(
                f"upstream for route {self.route.name!r} sent an answer that is not JSON", retryable=True
            ) from None
        except msgspec.ValidationError:  # JSON of a shape we do not know: relayed as is, without usage
            return Answer(raw, None, None, None)
        return Answer(raw, _usage(message.usage), message.stop_reason, message.model)

    def relay(self, ctx: RequestContext) -> PassthroughRelay:
        return PassthroughRelay(self.route.name, self.route.api_key)


class PassthroughRelay:
    """Bytes out as they came in, whole events at a time; usage read from message_start / message_delta on the
    side. Every legal SSE line end (CRLF, LF, CR, mixed) is relayed as sent, none rewritten: events are cut where
    the decoder saw their blank line end, never searched for again in the bytes. A blank line ended by a CR is
    whole at that CR (an LF in the next read, if one comes, is CRLF's end and is held as the next event's start).
    Comments (keep-alives) before the first event are dropped: the client's first byte is an event's."""

    __slots__ = ("_decoder", "_started", "_ended", "_usage", "_stop_reason", "event_count", "failure", "_held",
                 "upstream_model", "_route", "_secret", "_error_payload", "_error")

    def __init__(self, route: str, secret: str | None = None) -> None:
        self._route = route  # the route's name, for the error value of an upstream's error event
        self._secret = secret  # the route's credential, redacted from a relayed error event
        self._error_payload = b""
        self._error: A.ErrorBody | None = None  # the upstream's error event, its message redacted
        # The reads since the last complete event, held so a failure never splices into an event: kept as they
        # came (joined once, when their event ends) so a read costs its own bytes, not a copy of all that is held;
        # the decoder bounds them (every line counts) and raises EventTooLarge past its limit.
        self._held: list[bytes] = []
        self.upstream_model: str | None = None
        self.failure: E.GatewayError | None = None
        self._decoder = SSEDecoder()
        self._started = False
        self._ended = False
        self._usage = A.Usage()
        self._stop_reason: str | None = None
        self.event_count = 0

    @property
    def started(self) -> bool:
        return self._started

    @property
    def ended(self) -> bool:
        return self._ended

    def feed(self, data: bytes) -> bytes:
        self._started = True
        failed = self.failure is not None
        decoder = self._decoder
        for event, payload in decoder.feed(data):
            self.event_count += 1
            if not event or event in _USAGE_EVENTS:  # one without a name is known by its data's type
                self._account(event, payload)
        cut = decoder.event_end
        if not cut:
            self._held.append(data)
            return b""
        if not self.event_count:
            # Only comments (keep-alives) so far: dropped, not relayed. The first bytes the client gets are what
            # ends the candidate loop's choice, and a comment is no answer: an overload or a cut connection after
            # it must still be retried and fall back (README: a stream that dies before its first event).
            self._held = [data[cut:]] if cut < len(data) else []
            return b""
        held, self._held = self._held, ([data[cut:]] if cut < len(data) else [])
        out = b"".join((*held, data[:cut])) if held else data[:cut]
        if not failed and self._error is not None:
            return self._clean_error(out, self._error)
        return out

    def eof(self) -> bytes:
        if self._ended:
            held, self._held = self._held, []
            return b"".join(held)
        return self.fail(E.ApiError("the upstream closed the stream before the answer was complete"))

    def fail(self, err: E.GatewayError) -> bytes:
        self._held = []  # an event cut short is dropped, not completed by the error event
        self._ended = True
        self.failure = err
        self.event_count += 1
        body = E.error_body(err.error_type, err.message)
        return b"event: error\ndata: " + body + b"\n\n"

    def usage(self) -> tuple[A.Usage | None, str | None]:
        return self._usage, self._stop_reason

    def _account(self, name: bytes | None, payload: bytes) -> None:
        """Read an event that may carry usage or end the stream (one of `_USAGE_EVENTS`, or unnamed). Its kind is
        its `event:` name or, when it has none, its data's `type`: an upstream that sends only `data:` lines (legal
        SSE) still has its error redacted and its message_stop seen."""
        try:
            event = _decode_event(payload)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):  # (bridge_relay.py: why)
            if name == b"error":  # an error event whose data is not JSON: still the end, its text still redacted
                self._ended = True
                self._note_error(_ErrorBody(), payload)
            return
        kind = name.decode("latin-1") if name else event.type
        if kind in ("message_stop", "error"):
            self._ended = True
            if kind == "error":
                self._note_error(event.error or _ErrorBody(), payload)
        if event.message is not None and event.message.model:
            self.upstream_model = event.message.model
        usage = event.message.usage if event.message is not None else event.usage
        if usage is not None:
            _merge(self._usage, usage)
        if event.delta is not None and event.delta.stop_reason:
            self._stop_reason = event.delta.stop_reason

    def _note_error(self, error: _ErrorBody, payload: bytes) -> None:
        if self._error is not None:
            return  # the stream ended at its first error: a later one in the same read is not relayed (_clean_error)
        error_type = error.type if error.type in _ERROR_TYPES else "api_error"
        message = redact(error.message, self._secret) or "the upstream sent an error event"
        self._error = A.ErrorBody(type=error_type, message=message)
        self.failure = upstream_failed(self._route, error_type, message)
        self._error_payload = payload

    def _clean_error(self, out: bytes, error: A.ErrorBody) -> bytes:
        """`out` with the error event that ends it as sent, or rebuilt from the redacted message if it held a secret."""
        found = out.find(self._error_payload.split(b"\n", 1)[0])
        # From the error event on: what follows it in the same read (another error, say) is checked too.
        text = (out[found:] if found >= 0 else out).decode("utf-8", "replace")
        if redact(text, self._secret) == text:
            return out
        self._held = []  # the stream ends with this event: nothing after it is relayed
        # the error event's own lines dropped (`out` starts where an event does: a blank line first is one)
        kept = out[: last_event_end(out[:found], at_line_start=True)] if found >= 0 else out
        return kept + encode_events([A.Error(error=error)])


def _usage(usage: _Usage | None) -> A.Usage | None:
    if usage is None:
        return None
    total = A.Usage()
    _merge(total, usage)
    return total


def _merge(total: A.Usage, usage: _Usage) -> None:
    # message_delta repeats or updates counts; the latest non-null value of each wins.
    if usage.input_tokens is not None:
        total.input_tokens = usage.input_tokens
    if usage.output_tokens is not None:
        total.output_tokens = usage.output_tokens
    if usage.cache_creation_input_tokens is not None:
        total.cache_creation_input_tokens = usage.cache_creation_input_tokens
    if usage.cache_read_input_tokens is not None:
        total.cache_read_input_tokens = usage.cache_read_input_tokens
