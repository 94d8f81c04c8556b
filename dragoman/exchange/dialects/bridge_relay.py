"""A StreamRelay around a translating stream bridge: SSE frames in, Anthropic SSE bytes out.

The Chat and Responses dialects differ only in how one upstream frame reaches their bridge (`on_frame`)."""

from __future__ import annotations

from typing import Callable, Protocol

import msgspec

from dragoman import errors as E
from dragoman.exchange.dialects import upstream_failed
from dragoman.protocols import anthropic as A
from dragoman.protocols.sse import SSEDecoder, encode_events
from dragoman.redaction import redact


class Bridge(Protocol):
    started: bool
    ended: bool
    final_usage: A.Usage | None
    stop_reason: str | None
    upstream_model: str | None
    cuts: bool  # what the client gets may be less than what the bridge makes (translate/stream_bridge.py)

    def on_eof(self) -> list[A.StreamEvent]: ...

    def on_error(self, error_type: str, message: str) -> list[A.StreamEvent]: ...


FrameHandler = Callable[[bytes | None, bytes], list[A.StreamEvent]]
ERROR_EVENT = b"error"  # an `event: error` frame's name, and the one SSEDecoder gives llama.cpp's `error:` lines


def error_value(payload: bytes) -> object:
    """An error event's data: its JSON value, or its text when it is not JSON (still the upstream's failure)."""
    try:
        return msgspec.json.decode(payload)
    except (msgspec.DecodeError, RecursionError):
        return payload.decode("utf-8", "replace")


class BridgeRelay:
    __slots__ = ("_bridge", "_on_frame", "_route", "_secret", "_decoder", "event_count", "failure", "_facts")

    def __init__(
        self, bridge: Bridge, on_frame: FrameHandler, route: str, secret: str | None, error_lines: bool = False
    ) -> None:
        self._bridge = bridge
        self._on_frame = on_frame
        self._route = route  # the route's name, for the error value of an upstream's error event
        self._secret = secret  # the route's credential, redacted from an error event's upstream text
        self._decoder = SSEDecoder(error_lines=error_lines)  # (sse.py: llama.cpp's `error:` lines)
        self.event_count = 0
        self.failure: E.GatewayError | None = None
        # The loop's StreamFacts (when on) reads what this bridge made once the stream is over; it is shown each
        # batch only when the bridge may cut what the client gets (loop/answer.py).
        facts = bridge.ctx.stream_facts
        self._facts = facts if facts is not None and facts.follow(bridge) else None

    @property
    def started(self) -> bool:
        return self._bridge.started

    @property
    def ended(self) -> bool:
        return self._bridge.ended

    def feed(self, data: bytes) -> bytes:
        return self._emit(self._frames(self._decoder.feed(data)))

    def eof(self) -> bytes:
        events = self._frames(self._decoder.close())
        return self._emit(events + self._bridge.on_eof())

    def fail(self, err: E.GatewayError) -> bytes:
        out = self._emit(self._bridge.on_error(err.error_type, err.message))
        self.failure = err
        return out

    def usage(self) -> tuple[A.Usage | None, str | None]:
        return self._bridge.final_usage, self._bridge.stop_reason

    @property
    def upstream_model(self) -> str | None:
        return self._bridge.upstream_model

    def _frames(self, frames: list[tuple[bytes | None, bytes]]) -> list[A.StreamEvent]:
        bridge = self._bridge
        events: list[A.StreamEvent] = []
        for event, payload in frames:
            if bridge.ended:
                break
            try:
                events += self._on_frame(event, payload)
            except (msgspec.DecodeError, msgspec.ValidationError):
                events += bridge.on_error("api_error", "the upstream sent a stream event that is not valid JSON")
                break
            except RecursionError:
                # msgspec follows nesting by C recursion under Python's recursion limit (protocols/json_depth.py): an
                # upstream's JSON nested ~900 levels deep (a tool call's arguments as an object) raises this, not
                # DecodeError. Not the stack's depth checked per event: a try costs nothing until it raises.
                events += bridge.on_error("api_error", "the upstream sent a stream event nested deeper than the "
                                                       "gateway reads")
                break
        return events

    def _emit(self, events: list[A.StreamEvent]) -> bytes:
        if not events:
            return b""
        last = events[-1]
        if type(last) is A.Error:
            # The message may quote the upstream (OpenAI echoes a wrong key in a mid-stream error chunk).
            error = last.error
            error.message = redact(error.message, self._secret)
            self.failure = upstream_failed(self._route, error.type, error.message)
        self.event_count += len(events)
        if self._facts is not None:
            self._facts.see(events)
        return encode_events(events)
