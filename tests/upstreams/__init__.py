"""Scripted upstreams served on 127.0.0.1 over real HTTP; every end-to-end test talks to these."""

from .openai_chat import (
    ChatReply,
    Disconnect,
    ErrorReply,
    Gate,
    Hang,
    Held,
    Hold,
    RawBody,
    RawStream,
    RecordedRequest,
    Redirect,
    ScriptedChatUpstream,
)

__all__ = [
    "ChatReply",
    "Disconnect",
    "ErrorReply",
    "Gate",
    "Hang",
    "Held",
    "Hold",
    "RawBody",
    "RawStream",
    "RecordedRequest",
    "Redirect",
    "ScriptedChatUpstream",
]
