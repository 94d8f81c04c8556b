"""Anthropic Messages API wire shapes: requests, responses, stream events and errors.

Claude Code adds fields, block types and betas with each release, so every struct here ignores unknown
fields, and content blocks are one struct with optional fields rather than a tagged union: a tagged union
would reject a block type we have not met yet, and a request must never fail on what we do not know.
"""

# gc=False on every struct: wire shapes are trees, never cycles, so the garbage collector need not track
# them; a 78 KB request allocates thousands, and tracking them cost measurable CPU (bench/RESULTS.md).

from __future__ import annotations

from typing import Annotated, Any, Union

import msgspec


# The longest `model` a request may name. Real names (ARNs, Vertex resource paths, OpenRouter slugs included) are
# well under 256 characters; without a bound a client could name megabytes, which the router would then keep as
# cache keys. A longer name is a 400 invalid_request_error at decode, before routing.
MAX_MODEL_CHARS = 256
ModelName = Annotated[str, msgspec.Meta(max_length=MAX_MODEL_CHARS)]


class CacheControl(msgspec.Struct, omit_defaults=True, gc=False):
    type: str = "ephemeral"
    ttl: str | None = None


class Source(msgspec.Struct, omit_defaults=True, gc=False):
    """The `source` of an image or document block: base64 data, a URL, plain text, or a file id."""

    type: str
    media_type: str | None = None
    data: str | None = None
    url: str | None = None
    file_id: str | None = None
    content: Union[str, list["ContentBlock"], None] = None  # document source of type "content"

    def __post_init__(self) -> None:
        # Raised here, msgspec reports it as a 400 with the JSON path; unknown source types pass.
        if self.type == "base64" and self.data is None:
            raise ValueError("a base64 source needs `data`")


class ContentBlock(msgspec.Struct, omit_defaults=True, gc=False):
    """Any content block. `type` says which fields apply:

    text(text) · image(source) · document(source, title, context) · tool_use(id, name, input) ·
    tool_result(tool_use_id, content, is_error) · thinking(thinking, signature) · redacted_thinking(data) ·
    tool_reference(tool_name) · server_tool_use / *_tool_result and anything newer (ignored upstream).
    """

    type: str
    text: str | None = None
    source: Union[Source, str, None] = None  # a string in search_result blocks
    title: str | None = None
    context: str | None = None
    id: str | None = None
    name: str | None = None
    input: Any = None
    tool_use_id: str | None = None
    content: Union[str, list["ContentBlock"], None] = None
    is_error: bool | None = None
    thinking: str | None = None
    signature: str | None = None
    data: str | None = None
    tool_name: str | None = None
    cache_control: CacheControl | None = None

    def __post_init__(self) -> None:
        # `source` is a string only in search_result blocks; an image or document needs the object, and
        # every reader of those blocks relies on it. Raised here, msgspec reports it as a 400 with the JSON
        # path. msgspec calls this for every decoded block (~40 ns each, bench/bench_json_depth.py): keep it small.
        if self.source.__class__ is str and self.type in _SOURCE_OBJECT_BLOCKS:
            raise ValueError(f"`source` must be an object (type, media_type, data, ...) for {self.type} blocks")


_SOURCE_OBJECT_BLOCKS = frozenset(("image", "document"))


class Message(msgspec.Struct, omit_defaults=True, gc=False):
    role: str  # user | assistant | system (Claude Code >= 2.1 sends system messages mid-conversation)
    content: Union[str, list[ContentBlock]]


# A tool's input_schema is kept as the JSON text the client sent (a msgspec.Raw, a view of the body, never
# decoded on the way through): the gateway passes a schema on (Chat and Responses take it as it is) and the loop
# validates against it by its bytes. Decoding Claude Code's twelve schemas into dicts was ~15 of the ~52 µs its
# tool-calling turn took to decode and encoding them again ~6 µs, and with the loop on they were freed cache-cold
# at the request's end (bench/RESULTS.md, "Tool schemas as sent").
NO_SCHEMA = msgspec.Raw()  # a tool sent without input_schema
_NULL = msgspec.Raw(b"null")


def schema_given(schema: msgspec.Raw) -> bool:
    """Whether a tool's input_schema was sent, and not as null."""
    return bool(schema) and schema != _NULL


class Tool(msgspec.Struct, omit_defaults=True, gc=False):
    """A client tool ({name, description, input_schema}) or a server tool (a dated `type`, e.g. web_search_20250305)."""

    name: str
    type: str | None = None
    description: str | None = None
    input_schema: msgspec.Raw = NO_SCHEMA  # the schema's JSON text as sent (NO_SCHEMA: none; see schema_given)
    defer_loading: bool | None = None
    cache_control: CacheControl | None = None


class ToolChoice(msgspec.Struct, omit_defaults=True, gc=False):
    type: str  # auto | any | tool | none
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class Thinking(msgspec.Struct, omit_defaults=True, gc=False):
    type: str  # enabled | disabled | adaptive
    budget_tokens: int | None = None
    display: str | None = None


class OutputConfig(msgspec.Struct, omit_defaults=True, gc=False):
    effort: str | None = None  # low | medium | high | max


class Metadata(msgspec.Struct, omit_defaults=True, gc=False):
    user_id: str | None = None


class MessagesRequest(msgspec.Struct, omit_defaults=True, gc=False):
    """POST /v1/messages. Unknown top-level fields (context_management, betas to come) are ignored."""

    model: ModelName
    messages: list[Message]
    max_tokens: int
    system: Union[str, list[ContentBlock], None] = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    stream: bool = False
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop_sequences: list[str] | None = None
    thinking: Thinking | None = None
    output_config: OutputConfig | None = None
    metadata: Metadata | None = None
    context_management: Any = None  # Anthropic-only context editing; dropped upstream, recorded


class CountTokensRequest(msgspec.Struct, omit_defaults=True, gc=False):
    """POST /v1/messages/count_tokens: a Messages request without max_tokens."""

    model: ModelName
    messages: list[Message]
    system: Union[str, list[ContentBlock], None] = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: Thinking | None = None


# ---- responses -------------------------------------------------------------------------------------------


class Usage(msgspec.Struct, gc=False):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0


class TextOut(msgspec.Struct, tag_field="type", tag="text", gc=False):
    text: str


class ThinkingOut(msgspec.Struct, tag_field="type", tag="thinking", gc=False):
    thinking: str
    signature: str = ""


class ToolUseOut(msgspec.Struct, tag_field="type", tag="tool_use", gc=False):
    id: str
    name: str
    input: Any


OutBlock = Union[TextOut, ThinkingOut, ToolUseOut]


class MessagesResponse(msgspec.Struct, tag_field="type", tag="message", gc=False):
    id: str
    model: str
    content: list[OutBlock]
    stop_reason: str | None
    stop_sequence: str | None
    usage: Usage
    role: str = "assistant"


# ---- stream events ---------------------------------------------------------------------------------------


class MessageStartBody(msgspec.Struct, tag_field="type", tag="message", gc=False):
    id: str
    model: str
    usage: Usage
    role: str = "assistant"
    content: list[OutBlock] = []
    stop_reason: str | None = None
    stop_sequence: str | None = None


class MessageStart(msgspec.Struct, tag_field="type", tag="message_start", gc=False):
    message: MessageStartBody


class Ping(msgspec.Struct, tag_field="type", tag="ping", gc=False):
    pass


class ContentBlockStart(msgspec.Struct, tag_field="type", tag="content_block_start", gc=False):
    index: int
    content_block: OutBlock


class TextDelta(msgspec.Struct, tag_field="type", tag="text_delta", gc=False):
    text: str


class ThinkingDelta(msgspec.Struct, tag_field="type", tag="thinking_delta", gc=False):
    thinking: str


class SignatureDelta(msgspec.Struct, tag_field="type", tag="signature_delta", gc=False):
    signature: str


class InputJsonDelta(msgspec.Struct, tag_field="type", tag="input_json_delta", gc=False):
    partial_json: str


Delta = Union[TextDelta, ThinkingDelta, SignatureDelta, InputJsonDelta]


class ContentBlockDelta(msgspec.Struct, tag_field="type", tag="content_block_delta", gc=False):
    index: int
    delta: Delta


class ContentBlockStop(msgspec.Struct, tag_field="type", tag="content_block_stop", gc=False):
    index: int


class MessageDeltaBody(msgspec.Struct, gc=False):
    stop_reason: str | None
    stop_sequence: str | None = None


class MessageDeltaUsage(msgspec.Struct, gc=False):
    output_tokens: int
    input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0


class MessageDelta(msgspec.Struct, tag_field="type", tag="message_delta", gc=False):
    delta: MessageDeltaBody
    usage: MessageDeltaUsage


class MessageStop(msgspec.Struct, tag_field="type", tag="message_stop", gc=False):
    pass


class ErrorBody(msgspec.Struct, gc=False):
    type: str
    message: str


class Error(msgspec.Struct, tag_field="type", tag="error", gc=False):
    """Both the HTTP error body and the stream `error` event."""

    error: ErrorBody


StreamEvent = Union[
    MessageStart, Ping, ContentBlockStart, ContentBlockDelta, ContentBlockStop, MessageDelta, MessageStop, Error
]


class ModelInfo(msgspec.Struct, tag_field="type", tag="model", gc=False):
    id: str
    display_name: str
    created_at: str = "2025-01-01T00:00:00Z"


class ModelList(msgspec.Struct, gc=False):
    data: list[ModelInfo]
    has_more: bool = False
    first_id: str | None = None
    last_id: str | None = None


class TokenCount(msgspec.Struct, gc=False):
    input_tokens: int
