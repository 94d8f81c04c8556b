"""The key a client presents: one rule for the Messages API and the admin API.

Anthropic's API takes the key as `x-api-key`; clients built for OpenAI-style gateways send
`Authorization: Bearer <key>` (the scheme is case-insensitive, RFC 9110 §11.1). Whose key it is:
govern/authenticate.py."""

from __future__ import annotations


def client_key(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The presented key: x-api-key, or an Authorization Bearer token, whichever header comes first; None if neither."""
    for name, value in headers:
        if name == b"x-api-key":
            return value.decode("latin-1")
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            return value[7:].decode("latin-1").strip()
    return None
