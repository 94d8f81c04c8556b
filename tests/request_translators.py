"""Translate one Anthropic request body with each OpenAI protocol's request translator, for tests that pin a
rule both protocols share (the conversation walk): parametrize over `PROTOCOLS` and call `translate`."""

from __future__ import annotations

from typing import Any

import msgspec

from dragoman.translate.chat.request import translate_request as chat_request
from dragoman.translate.options import TranslationOptions
from dragoman.translate.request_context import RequestContext
from dragoman.translate.responses.request import translate_request as responses_request
from dragoman.translate.tool_names import ToolNameMap
from tests.wire import as_sent, messages_request

PROTOCOLS = ("chat", "responses")
KEY = b"request-translators-key"


def translate(protocol: str, body: dict[str, Any], options: dict[str, Any] | None = None,
              system_prefix: str = "") -> tuple[dict[str, Any], list[str]]:
    """(the upstream request as JSON builtins, the translation notes) for `body` on `protocol`."""
    req = messages_request({"model": "claude-sonnet-4-5", "max_tokens": 1024, **body})
    opts = msgspec.convert(options or {}, TranslationOptions)
    ctx = RequestContext(message_id="msg_t", requested_model=req.model, tool_names=ToolNameMap(opts.max_tool_name_length),
                         system_prefix=system_prefix)
    if protocol == "chat":
        out: Any = chat_request(req, "gpt-4.1", opts, ctx)
    else:
        out = responses_request(req, "gpt-4.1", opts, ctx, reasoning_key=KEY)
    return as_sent(out), ctx.notes  # as sent on the wire
