"""OpenAI Chat Completions wire shapes: requests, responses, stream chunks and errors.

Request structs omit defaults so the upstream receives no null it never asked for; many OpenAI-compatible
servers reject unknown or null fields. Response structs ignore unknown fields: every server adds its own.
"""

# gc=False on every struct: wire shapes are trees, never cycles, so the garbage collector need not track
# them; a 78 KB request allocates thousands, and tracking them cost measurable CPU (bench/RESULTS.md).

from __future__ import annotations

from typing import Any, Union

import msgspec

# ---- request ---------------------------------------------------------------------------------------------


class ImageUrl(msgspec.Struct, omit_defaults=True, gc=False):
    url: str


class FileData(msgspec.Struct, omit_defaults=True, gc=False):
    filename: str | None = None
    file_data: str | None = None
    file_id: str | None = None


class TextPart(msgspec.Struct, tag_field="type", tag="text", gc=False):
    text: str


class ImagePart(msgspec.Struct, tag_field="type", tag="image_url", gc=False):
    image_url: ImageUrl


class FilePart(msgspec.Struct, tag_field="type", tag="file", gc=False):
    file: FileData


ContentPart = Union[TextPart, ImagePart, FilePart]


class FunctionCall(msgspec.Struct, gc=False):
    name: str
    arguments: str


class ToolCall(msgspec.Struct, tag_field="type", tag="function", gc=False):
    id: str
    function: FunctionCall


class ChatMessage(msgspec.Struct, omit_defaults=True, gc=False):
    role: str  # system | developer | user | assistant | tool
    # Assistant messages that only call tools carry content null; OpenAI accepts null there, not "".
    content: Union[str, list[ContentPart], None] = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class FunctionDef(msgspec.Struct, omit_defaults=True, gc=False):
    name: str
    description: str | None = None
    parameters: msgspec.Raw | dict[str, Any] | None = None  # a client schema as sent, or one the gateway built


class ToolDef(msgspec.Struct, tag_field="type", tag="function", gc=False):
    function: FunctionDef


class NamedFunction(msgspec.Struct, gc=False):
    name: str


class NamedToolChoice(msgspec.Struct, tag_field="type", tag="function", gc=False):
    function: NamedFunction


class StreamOptions(msgspec.Struct, gc=False):
    include_usage: bool = True


class ChatRequest(msgspec.Struct, omit_defaults=True, gc=False):
    model: str
    messages: list[ChatMessage]
    max_completion_tokens: int | None = None
    max_tokens: int | None = None  # older OpenAI-compatible servers only know this one
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[ToolDef] | None = None
    tool_choice: Union[str, NamedToolChoice, None] = None
    parallel_tool_calls: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    reasoning_effort: str | None = None
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None


# ---- response --------------------------------------------------------------------------------------------


# Counts are any JSON number: a server that wrote `12.0` for 12 would otherwise fail the whole answer over a field
# that only reports it (translate/usage.py reads them as whole numbers).
Count = Union[int, float, None]


class PromptTokensDetails(msgspec.Struct, gc=False):
    cached_tokens: Count = None


class CompletionTokensDetails(msgspec.Struct, gc=False):
    reasoning_tokens: Count = None


class ChatUsage(msgspec.Struct, gc=False):
    prompt_tokens: Count = None
    completion_tokens: Count = None
    total_tokens: Count = None
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None


class ResponseFunctionCall(msgspec.Struct, gc=False):
    name: str | None = None
    arguments: Any = None  # a JSON string per spec; some servers send an object


# A tool call's id: a string per spec; some OpenAI-compatible servers send a number (`"id": 0`), read as its text
# (translate/tool_ids.py `upstream_id`) rather than failing the whole answer over it.
CallId = Union[str, int, None]


class ResponseToolCall(msgspec.Struct, gc=False):
    id: CallId = None
    type: str | None = None
    function: ResponseFunctionCall | None = None


class ResponseMessage(msgspec.Struct, gc=False):
    role: str | None = None
    content: Any = None  # a string per spec; some servers send a list of parts
    refusal: str | None = None
    tool_calls: list[ResponseToolCall] | None = None
    reasoning_content: str | None = None  # DeepSeek, vLLM
    reasoning: str | None = None  # OpenRouter, Ollama, newer vLLM


class Choice(msgspec.Struct, gc=False):
    index: int = 0
    message: ResponseMessage | None = None
    finish_reason: str | None = None
    error: Any = None  # OpenRouter: the provider behind it failed on this choice


class ChatResponse(msgspec.Struct, gc=False):
    id: str | None = None
    model: str | None = None
    choices: list[Choice] = []
    usage: ChatUsage | None = None
    error: Any = None  # OpenRouter answers a failure after the request was taken as a 200 holding `error`


# ---- stream chunks ---------------------------------------------------------------------------------------


class FunctionDelta(msgspec.Struct, gc=False):
    name: str | None = None
    arguments: Any = None


class ToolCallDelta(msgspec.Struct, gc=False):
    index: int | None = None  # some servers omit it when they send one call per chunk
    id: CallId = None
    type: str | None = None
    function: FunctionDelta | None = None


class Delta(msgspec.Struct, gc=False):
    role: str | None = None
    content: Any = None
    refusal: str | None = None
    tool_calls: list[ToolCallDelta] | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None


class ChunkChoice(msgspec.Struct, gc=False):
    index: int = 0
    delta: Delta | None = None
    finish_reason: str | None = None


class GroqExtras(msgspec.Struct, gc=False):
    usage: ChatUsage | None = None


class ChatChunk(msgspec.Struct, gc=False):
    id: str | None = None
    model: str | None = None
    choices: list[ChunkChoice] | None = None
    usage: ChatUsage | None = None
    error: Any = None  # some servers report a failure mid-stream as a chunk holding `error`
    x_groq: GroqExtras | None = None  # Groq sends a stream's usage here, on its last chunk, not in `usage`


# ---- errors ----------------------------------------------------------------------------------------------


class ChatErrorBody(msgspec.Struct, gc=False):
    message: str | None = None
    type: str | None = None
    code: Any = None


class ChatError(msgspec.Struct, gc=False):
    error: Union[ChatErrorBody, str, None] = None
