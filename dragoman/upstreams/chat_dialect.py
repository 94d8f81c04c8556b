"""OpenAI Chat Completions as an upstream dialect: the translators of dragoman.translate, bound to a route."""

from __future__ import annotations

import msgspec

from dragoman import errors as E
from dragoman.protocols import anthropic as A
from dragoman.protocols import openai_chat as C
from dragoman.protocols.sse import SSEDecoder, encode_events
from dragoman.routing.config import Route
from dragoman.translate.anthropic_to_chat import translate_request
from dragoman.translate.chat_stream import ChatStreamBridge
from dragoman.translate.chat_to_anthropic import translate_response
from dragoman.translate.request_context import RequestContext
from dragoman.upstreams.dialect import Answer

_encode = msgspec.json.encode
_decode_response = msgspec.json.Decoder(C.ChatResponse).decode
_decode_chunk = msgspec.json.Decoder(C.ChatChunk).decode
_DONE = b"[DONE]"


class ChatDialect:
    def __init__(self, route: Route) -> None:
        self.route = route
        # OpenAI's own API (and Azure's) take max_completion_tokens, prompt_cache_key, safety_identifier;
        # OpenAI-compatible servers often reject what they do not know.
        self.openai_extensions = route.provider in ("openai", "azure_openai")

    def request_body(self, req: A.MessagesRequest, raw: bytes, ctx: RequestContext) -> bytes:
        model = self.route.upstream_model(req.model)
        chat = translate_request(req, model, self.route.translation, ctx, openai_extensions=self.openai_extensions)
        return _encode(chat)

    def request_headers(self, base: dict[str, str], client_headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
        return base

    def answer(self, raw: bytes, ctx: RequestContext) -> Answer:
        try:
            chat = _decode_response(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise E.Overloaded(
                f"upstream for route {self.route.name!r} sent an answer that is not a Chat completion", retryable=True
            ) from None
        message = translate_response(chat, ctx)
        return Answer(_encode(message), message.usage, message.stop_reason, chat.model)

    def relay(self, ctx: RequestContext) -> ChatRelay:
        return ChatRelay(ctx)


class ChatRelay:
    """Chat SSE bytes → Anthropic SSE bytes through the ChatStreamBridge."""

    __slots__ = ("_bridge", "_decoder", "event_count", "failed", "failure")

    def __init__(self, ctx: RequestContext) -> None:
        self._bridge = ChatStreamBridge(ctx)
        self._decoder = SSEDecoder()
        self.event_count = 0
        self.failed = False
        self.failure = ""

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

    def fail(self, error_type: str, message: str) -> bytes:
        return self._emit(self._bridge.on_error(error_type, message))

    def usage(self) -> tuple[A.Usage | None, str | None]:
        return self._bridge.final_usage, self._bridge.stop_reason

    def _frames(self, frames: list[tuple[bytes | None, bytes]]) -> list[A.StreamEvent]:
        bridge = self._bridge
        events: list[A.StreamEvent] = []
        for _, payload in frames:
            if bridge.ended:
                break
            if payload == _DONE:
                events += bridge.on_done()
                break
            try:
                chunk = _decode_chunk(payload)
            except (msgspec.DecodeError, msgspec.ValidationError):
                events += bridge.on_error("api_error", "the upstream sent a stream chunk that is not valid JSON")
                break
            events += bridge.on_chunk(chunk)
        return events

    def _emit(self, events: list[A.StreamEvent]) -> bytes:
        if not events:
            return b""
        last = events[-1]
        if type(last) is A.Error:
            self.failed = True
            self.failure = last.error.message
        self.event_count += len(events)
        return encode_events(events)
