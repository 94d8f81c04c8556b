"""The Anthropic request fields a passthrough route strips before the request goes upstream (`drop_headers`).
Pure: a decoded JSON body in, the same body changed in place. Some Anthropic-compatible upstreams reject
`cache_control` (or its `ttl`) with a 400 on every turn (design §8, BerriAI/litellm PR #39355)."""

from __future__ import annotations

from typing import Any

_FIELD = "cache_control"


def drop_cache_control(body: dict[str, Any]) -> bool:
    """Remove every `cache_control` the Messages API defines: top level, system and tool blocks, message
    content blocks and the content of tool_result blocks. Tool inputs are the client's data and stay as sent.
    True when one was removed."""
    dropped = body.pop(_FIELD, None) is not None
    dropped = _drop_in(body.get("system"), nested=False) or dropped
    dropped = _drop_in(body.get("tools"), nested=False) or dropped
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict):
                dropped = _drop_in(message.get("content"), nested=True) or dropped
    return dropped


def _drop_in(blocks: Any, *, nested: bool) -> bool:
    if not isinstance(blocks, list):
        return False  # a plain string has no markers
    dropped = False
    for block in blocks:
        if isinstance(block, dict):
            dropped = block.pop(_FIELD, None) is not None or dropped
            if nested and block.get("type") == "tool_result":
                dropped = _drop_in(block.get("content"), nested=False) or dropped
    return dropped
