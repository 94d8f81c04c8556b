"""OpenAI Chat Completions as an upstream dialect: the translators of dragoman.translate, bound to a route."""

from __future__ import annotations

import msgspec

from dragoman import errors as E
from dragoman.config.model import Route
from dragoman.protocols import anthropic as A
from dragoman.protocols import openai_chat as C
from dragoman.translate.chat.request import translate_request
from dragoman.translate.chat.stream import ChatStreamBridge
from dragoman.translate.chat.response import translate_response
from dragoman.translate.request_context import RequestContext
from dragoman.exchange.dialects import Answer
from dragoman.exchange.dialects.bridge_relay import ERROR_EVENT, BridgeRelay, error_value

_encode = msgspec.json.encode
_decode_response = msgspec.json.Decoder(C.ChatResponse).decode
_decode_chunk = msgspec.json.Decoder(C.ChatChunk).decode
_DONE = b"[DONE]"


class ChatDialect:
    translated = True  # its stream is built from events the loop can read (RequestContext.stream_facts)

    def __init__(self, route: Route) -> None:
        self.route = route
        # OpenAI's own API (and Azure's) take max_completion_tokens, prompt_cache_key, safety_identifier;
        # OpenAI-compatible servers often reject what they do not know.
        self.openai_extensions = route.provider in ("openai", "azure_openai")

    def request_body(self, req: A.MessagesRequest, raw: bytes, ctx: RequestContext) -> bytes:
        model = self.route.upstream_model(req.model)
        chat = translate_request(req, model, self.route.translation, ctx, openai_extensions=self.openai_extensions)
        if self.route.body_model is not None:  # Azure without a deployment in the URL: the body names it
            chat.model = self.route.body_model
        return _encode(chat)

    def request_headers(self, base: dict[str, str], client_headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
        return base

    def answer(self, raw: bytes, ctx: RequestContext) -> Answer:
        try:
            chat = _decode_response(raw)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):  # (bridge_relay.py: why RecursionError)
            raise E.Overloaded(
                f"upstream for route {self.route.name!r} sent an answer that is not a Chat completion", retryable=True
            ) from None
        message = translate_response(chat, ctx)
        return Answer(_encode(message), message.usage, message.stop_reason, chat.model, message.content)

    def relay(self, ctx: RequestContext) -> BridgeRelay:
        return chat_relay(ctx, self.route.name, self.route.api_key)


def chat_relay(ctx: RequestContext, route: str, secret: str | None = None) -> BridgeRelay:
    """Chat SSE bytes → Anthropic SSE bytes through the ChatStreamBridge."""
    bridge = ChatStreamBridge(ctx)

    def on_frame(event: bytes | None, payload: bytes) -> list[A.StreamEvent]:
        if payload == _DONE:
            return bridge.on_done()
        if event is not None and event == ERROR_EVENT:  # llama.cpp's `error: {...}` line (sse.py), or `event: error`
            return bridge.on_error_event(error_value(payload))
        return bridge.on_chunk(_decode_chunk(payload))

    return BridgeRelay(bridge, on_frame, route, secret, error_lines=True)
