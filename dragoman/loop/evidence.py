"""STAND-IN until branch `verdicts` lands (the lead replaces this file with theirs at merge).

What the exchange hands over for a finished call, as far as this branch needs it: the decoded request and the
JSON answer's body (streamed answers are not captured here)."""

from __future__ import annotations

import msgspec

from dragoman.protocols import anthropic as A


class Evidence(msgspec.Struct, kw_only=True):
    request: A.MessagesRequest | None = None
    answer: bytes | None = None  # the Anthropic JSON answer sent to the client (None: streamed, or an error)
