"""OpenAI Responses API (`POST /v1/responses`) wire shapes: requests, responses, stream events and errors.

Request structs omit defaults so the upstream receives no null it never asked for. Response structs ignore
unknown fields, and output items are one struct with optional fields rather than a tagged union: OpenAI adds
item types (web_search_call, mcp_call, …) and a union would reject an answer over an item we skip anyway.
Stream events are decoded in two steps (`decode_event`): the envelope's `type` first, then the struct for
that type; event types we do not know decode to None and are ignored.
"""

# gc=False on every struct: wire shapes are trees, never cycles, so the garbage collector need not track
# them; a 78 KB request allocates thousands, and tracking them cost measurable CPU (bench/RESULTS.md).

from __future__ import annotations

from typing import Any, Union

import msgspec

# ---- request: input items --------------------------------------------------------------------------------


class InputText(msgspec.Struct, tag_field="type", tag="input_text", gc=False):
    text: str


class InputImage(msgspec.Struct, tag_field="type", tag="input_image", gc=False):
    image_url: str  # an https URL or a data: URL
    detail: str = "auto"  # OpenAI's schema requires it; sent even when it is the default (no omit_defaults)


class InputFile(msgspec.Struct, tag_field="type", tag="input_file", omit_defaults=True, gc=False):
    filename: str | None = None
    file_data: str | None = None  # a data: URL
    file_id: str | None = None
    file_url: str | None = None


class OutputText(msgspec.Struct, tag_field="type", tag="output_text", gc=False):
    """Assistant text replayed as input (what an earlier answer said)."""

    text: str


InputPart = Union[InputText, InputImage, InputFile, OutputText]


class MessageItem(msgspec.Struct, tag_field="type", tag="message", gc=False):
    role: str  # user | assistant | system | developer
    content: Union[str, list[InputPart]]


class FunctionCallItem(msgspec.Struct, tag_field="type", tag="function_call", gc=False):
    call_id: str
    name: str
    arguments: str  # a JSON text


class FunctionCallOutputItem(msgspec.Struct, tag_field="type", tag="function_call_output", gc=False):
    call_id: str
    output: str


class SummaryText(msgspec.Struct, tag_field="type", tag="summary_text", gc=False):
    text: str


class ReasoningItem(msgspec.Struct, tag_field="type", tag="reasoning", omit_defaults=True, gc=False):
    """A reasoning item: in output with its `encrypted_content` (store: false), replayed as input next turn."""

    summary: list[SummaryText]  # required by OpenAI even when empty: no default, always encoded
    id: str | None = None
    encrypted_content: str | None = None


InputItem = Union[MessageItem, FunctionCallItem, FunctionCallOutputItem, ReasoningItem]


# ---- request: tools and options --------------------------------------------------------------------------


class FunctionTool(msgspec.Struct, tag_field="type", tag="function", omit_defaults=True, gc=False):
    """A function tool, flat (Chat nests name/parameters under `function`)."""

    name: str
    parameters: msgspec.Raw | dict[str, Any]  # a client schema as sent, or one the gateway built
    # Responses treats function tools as strict unless told otherwise, and strict mode rejects schemas
    # without `additionalProperties: false` on every object; Claude Code's schemas are not written for it.
    # No default, so it is always sent.
    strict: bool
    description: str | None = None


class NamedToolChoice(msgspec.Struct, tag_field="type", tag="function", gc=False):
    name: str


class ReasoningConfig(msgspec.Struct, omit_defaults=True, gc=False):
    effort: str | None = None  # minimal | low | medium | high
    summary: str | None = None  # auto | concise | detailed


class ResponsesRequest(msgspec.Struct, omit_defaults=True, gc=False):
    model: str
    input: list[InputItem]
    instructions: str | None = None
    stream: bool = False
    max_output_tokens: int | None = None
    tools: list[FunctionTool] | None = None
    tool_choice: Union[str, NamedToolChoice, None] = None
    parallel_tool_calls: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    reasoning: ReasoningConfig | None = None
    store: bool | None = None
    include: list[str] | None = None
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None
    user: str | None = None


# ---- response --------------------------------------------------------------------------------------------


class OutputContent(msgspec.Struct, gc=False):
    """A content part of an output message, output_text(text) or refusal(refusal), or of a reasoning item,
    reasoning_text(text) (servers that send the raw reasoning: llama.cpp, gpt-oss)."""

    type: str
    text: str | None = None
    refusal: str | None = None


class Summary(msgspec.Struct, gc=False):
    type: str = "summary_text"
    text: str = ""


class OutputItem(msgspec.Struct, gc=False):
    """Any output item. `type` says which fields apply:

    message(id, role, content, status) · function_call(id, call_id, name, arguments, status) ·
    reasoning(id, summary, content, encrypted_content) · anything newer (ignored).
    """

    type: str
    id: str | None = None
    status: str | None = None
    role: str | None = None
    content: list[OutputContent] | None = None
    call_id: str | None = None
    name: str | None = None
    arguments: Any = None  # a JSON string per spec; tolerated as an object
    summary: list[Summary] | None = None
    encrypted_content: str | None = None


class InputTokensDetails(msgspec.Struct, gc=False):
    cached_tokens: int | None = None


class OutputTokensDetails(msgspec.Struct, gc=False):
    reasoning_tokens: int | None = None


class ResponsesUsage(msgspec.Struct, gc=False):
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    input_tokens_details: InputTokensDetails | None = None
    output_tokens_details: OutputTokensDetails | None = None


class IncompleteDetails(msgspec.Struct, gc=False):
    reason: str | None = None  # max_output_tokens | content_filter


class ResponseError(msgspec.Struct, gc=False):
    code: Any = None
    message: str | None = None


class Response(msgspec.Struct, gc=False):
    id: str | None = None
    model: str | None = None
    status: str | None = None  # completed | incomplete | failed | in_progress | cancelled | queued
    output: list[OutputItem] = []
    usage: ResponsesUsage | None = None
    incomplete_details: IncompleteDetails | None = None
    error: ResponseError | None = None


# ---- stream events ---------------------------------------------------------------------------------------


class ResponseEvent(msgspec.Struct, gc=False):
    """response.created / in_progress / completed / incomplete / failed: the response object so far."""

    type: str
    response: Response = msgspec.field(default_factory=Response)
    sequence_number: int | None = None


class OutputItemEvent(msgspec.Struct, gc=False):
    """response.output_item.added / done."""

    type: str
    item: OutputItem
    output_index: int = 0
    sequence_number: int | None = None


class ContentPartEvent(msgspec.Struct, gc=False):
    """response.content_part.added / done."""

    type: str
    part: OutputContent | None = None
    item_id: str | None = None
    output_index: int = 0
    content_index: int = 0
    sequence_number: int | None = None


class DeltaEvent(msgspec.Struct, gc=False):
    """response.output_text.delta, response.refusal.delta, response.function_call_arguments.delta,
    response.reasoning_summary_text.delta, response.reasoning_text.delta: a fragment of one output item."""

    type: str
    delta: str = ""
    item_id: str | None = None
    output_index: int = 0
    content_index: int = 0
    summary_index: int = 0
    sequence_number: int | None = None


class DoneEvent(msgspec.Struct, gc=False):
    """response.output_text.done (text), response.refusal.done (refusal),
    response.function_call_arguments.done (arguments), response.reasoning_summary_text.done and
    response.reasoning_text.done (text)."""

    type: str
    text: str | None = None
    refusal: str | None = None
    arguments: str | None = None
    item_id: str | None = None
    output_index: int = 0
    content_index: int = 0
    summary_index: int = 0
    sequence_number: int | None = None


class SummaryPartEvent(msgspec.Struct, gc=False):
    """response.reasoning_summary_part.added / done."""

    type: str
    part: Summary | None = None
    item_id: str | None = None
    output_index: int = 0
    summary_index: int = 0
    sequence_number: int | None = None


class ErrorEvent(msgspec.Struct, gc=False):
    """`error`: a failure mid-stream. OpenAI puts code/message at the top; some servers nest them in `error`."""

    # Not required: an `error` event's data without it (whatever else it says) is still a failure, read as an error
    # event that is not OpenAI's (exchange/dialects/responses.py), not refused as an event that is not valid JSON.
    type: str = ""
    code: Any = None
    message: str | None = None
    param: Any = None
    error: Any = None
    sequence_number: int | None = None


StreamEvent = Union[ResponseEvent, OutputItemEvent, ContentPartEvent, DeltaEvent, DoneEvent, SummaryPartEvent, ErrorEvent]

EVENT_TYPES: dict[str, type] = {
    "response.created": ResponseEvent,
    "response.in_progress": ResponseEvent,
    "response.queued": ResponseEvent,
    "response.completed": ResponseEvent,
    "response.incomplete": ResponseEvent,
    "response.failed": ResponseEvent,
    "response.output_item.added": OutputItemEvent,
    "response.output_item.done": OutputItemEvent,
    "response.content_part.added": ContentPartEvent,
    "response.content_part.done": ContentPartEvent,
    "response.output_text.delta": DeltaEvent,
    "response.refusal.delta": DeltaEvent,
    "response.function_call_arguments.delta": DeltaEvent,
    "response.reasoning_summary_text.delta": DeltaEvent,
    "response.reasoning_text.delta": DeltaEvent,
    "response.output_text.done": DoneEvent,
    "response.refusal.done": DoneEvent,
    "response.function_call_arguments.done": DoneEvent,
    "response.reasoning_summary_text.done": DoneEvent,
    "response.reasoning_text.done": DoneEvent,
    "response.reasoning_summary_part.added": SummaryPartEvent,
    "response.reasoning_summary_part.done": SummaryPartEvent,
    "error": ErrorEvent,
}


class _Envelope(msgspec.Struct, gc=False):
    type: str = ""


_decode_envelope = msgspec.json.Decoder(_Envelope).decode
_DECODERS = {name: msgspec.json.Decoder(kind).decode for name, kind in EVENT_TYPES.items()}
_DECODERS_BY_NAME = {name.encode(): decoder for name, decoder in _DECODERS.items()}


def decode_event(data: bytes, event: bytes | None = None) -> StreamEvent | None:
    """One SSE `data:` payload → its event struct, or None for an event type we do not bridge.

    `event` is the frame's `event:` name, which OpenAI sets to the payload's type: when given, the payload is
    decoded once instead of twice. Raises msgspec.DecodeError / ValidationError when the payload is not JSON
    or a known event is malformed.
    """
    if event is not None:
        decoder = _DECODERS_BY_NAME.get(event)
        if decoder is not None:
            decoded = decoder(data)
            if decoded.type == event.decode():  # a server whose event names lie gets the slow path
                return decoded
    decoder = _DECODERS.get(_decode_envelope(data).type)
    return decoder(data) if decoder is not None else None


# ---- errors ----------------------------------------------------------------------------------------------


class ErrorBody(msgspec.Struct, gc=False):
    message: str | None = None
    type: str | None = None
    param: Any = None
    code: Any = None


class ErrorResponse(msgspec.Struct, gc=False):
    """An HTTP error answer: `{"error": {"message", "type", "param", "code"}}` (the same shape as Chat's)."""

    error: Union[ErrorBody, str, None] = None
