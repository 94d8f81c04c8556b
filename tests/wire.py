"""Protocol structs built the way the gateway builds them: decoded from JSON bytes (a tool's input_schema stays the
JSON text it was sent as, which `msgspec.convert` from a dict cannot make)."""

from __future__ import annotations

from typing import Any

import msgspec

from dragoman.protocols import anthropic as A


def messages_request(body: dict[str, Any]) -> A.MessagesRequest:
    return msgspec.json.decode(msgspec.json.encode(body), type=A.MessagesRequest)


def count_tokens_request(body: Any) -> A.CountTokensRequest:
    return msgspec.json.decode(msgspec.json.encode(body), type=A.CountTokensRequest)


def as_sent(value: Any) -> Any:
    """A translated request as JSON builtins, as it goes on the wire."""
    return msgspec.json.decode(msgspec.json.encode(value))
