"""OpenAI Responses as an upstream dialect: the Responses translators, bound to a route and signing key."""

from __future__ import annotations

import msgspec

from dragoman import errors as E
from dragoman.exchange.dialects import Answer
from dragoman.exchange.dialects.bridge_relay import ERROR_EVENT, BridgeRelay, error_value
from dragoman.protocols import anthropic as A
from dragoman.protocols import openai_responses as R
from dragoman.signing_key import signing_key
from dragoman.translate.responses.request import translate_request
from dragoman.translate.request_context import RequestContext
from dragoman.translate.responses.stream import ResponsesStreamBridge
from dragoman.translate.responses.response import translate_response

_encode = msgspec.json.encode
_decode_response = msgspec.json.Decoder(R.Response).decode


class ResponsesDialect:
    translated = True  # its stream is built from events the loop can read (RequestContext.stream_facts)

    def __init__(self, route: Route, key: bytes | None = None) -> None:
        self.route = route
        self.key = key if key is not None else signing_key()
        self.openai_extensions = route.provider in ("openai", "azure_openai")

    def request_body(self, req: A.MessagesRequest, raw: bytes, ctx: RequestContext) -> bytes:
        model = self.route.upstream_model(req.model)
        body = translate_request(
            req, model, self.route.translation, ctx, reasoning_key=self.key, openai_extensions=self.openai_extensions
        )
        if self.route.body_model is not None:  # Azure without a deployment in the URL: the body names it
            body.model = self.route.body_model
        return _encode(body)

    def request_headers(self, base: dict[str, str], client_headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
        return base

    def answer(self, raw: bytes, ctx: RequestContext) -> Answer:
        try:
            resp = _decode_response(raw)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):  # (bridge_relay.py: why RecursionError)
            raise E.Overloaded(
                f"upstream for route {self.route.name!r} sent an answer that is not a Responses response",
                retryable=True,
            ) from None
        message = translate_response(resp, ctx, self.key)
        return Answer(_encode(message), message.usage, message.stop_reason, resp.model, message.content)

    def relay(self, ctx: RequestContext) -> BridgeRelay:
        return responses_relay(ctx, self.key, self.route.name, self.route.api_key)


_ERROR_KEY = b'"error"'


def responses_relay(ctx: RequestContext, key: bytes, route: str, secret: str | None = None) -> BridgeRelay:
    """Responses SSE bytes → Anthropic SSE bytes through the ResponsesStreamBridge."""
    bridge = ResponsesStreamBridge(ctx, key)

    def on_frame(event: bytes | None, payload: bytes) -> list[A.StreamEvent]:
        try:
            decoded = R.decode_event(payload, event)
        except (msgspec.DecodeError, msgspec.ValidationError):
            if event is not None and event == ERROR_EVENT:  # an error whose data is plain text: still its failure
                return bridge.on_error_event(error_value(payload))
            raise
        if decoded is not None:
            return bridge.on_event(decoded)
        # Asked only of events the bridge does not know (never of a well-formed stream's): an error event that is not
        # OpenAI's (its data's `type` is not "error"), as llama.cpp's server writes a failure mid-stream on its
        # /v1/responses too — an `error: {...}` line (sse.py) — is the failure a Chat route makes of it, not dropped
        # for the stream to end cut short, its code (a 400: the request's fault) lost.
        if event is not None and event == ERROR_EVENT:
            return bridge.on_error_event(error_value(payload))
        if _ERROR_KEY in payload:  # (a substring search first: the decode only for an event that may be one)
            value = error_value(payload)
            # llama.cpp's current server writes a failure on /v1/responses as a bare `data: {"error": {...}}`:
            # no `type`, no event name. Its code and message are the failure, not an event to skip.
            if isinstance(value, dict) and value.get("error") and not value.get("type"):
                return bridge.on_error_event(value)
        return []

    return BridgeRelay(bridge, on_frame, route, secret, error_lines=True)
