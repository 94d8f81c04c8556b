"""The key a client presents, and whose it is: one rule for the Messages API and the admin API.

Anthropic's API takes the key as `x-api-key`; clients built for OpenAI-style gateways send
`Authorization: Bearer <key>` (the scheme is case-insensitive, RFC 9110 §11.1)."""

from __future__ import annotations

from typing import TypeVar

from dragoman.errors import AuthenticationFailed
from dragoman.key_table import KeyTable

T = TypeVar("T")


def client_key(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The presented key: x-api-key, or an Authorization Bearer token, whichever header comes first; None if neither."""
    for name, value in headers:
        if name == b"x-api-key":
            return value.decode("latin-1")
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            return value[7:].decode("latin-1").strip()
    return None


def key_holder(table: KeyTable[T], headers: list[tuple[bytes, bytes]], what: str) -> T:
    """The holder of the presented key; AuthenticationFailed (401) when it is missing or not in `table`.
    `what` names the key in the message (API key, admin key)."""
    presented = client_key(headers)
    if presented is None:
        raise AuthenticationFailed(f"missing {what}: send it as x-api-key or Authorization: Bearer")
    holder = table.lookup(presented)
    if holder is None:
        raise AuthenticationFailed(f"invalid {what}")
    return holder
