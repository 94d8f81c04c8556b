"""Anthropic Messages request → OpenAI Chat Completions request (design §2). Pure: no I/O, no config, no clock."""

from __future__ import annotations

from dragoman.protocols import anthropic as A
from dragoman.protocols import openai_chat as C
from dragoman.translate.anthropic_request import (
    ToolChoice,
    identity,
    is_reasoning,
    max_output_tokens,
    reasoning_effort,
    sampling,
    tool_choice,
    tool_specs,
)
from dragoman.translate.content import Image, Part, Text
from dragoman.translate.conversation import Assistant, Results, ToolCall, User, conversation
from dragoman.translate.options import TranslationOptions
from dragoman.translate.request_context import RequestContext


def translate_request(
    req: A.MessagesRequest,
    upstream_model: str,
    options: TranslationOptions,
    ctx: RequestContext,
    *,
    openai_extensions: bool = True,
) -> C.ChatRequest:
    """Build the Chat request for `req`. `openai_extensions` adds OpenAI-only fields (prompt_cache_key…)."""
    reasoning = is_reasoning(options, upstream_model)
    loaded: set[str] = set()  # deferred tools the conversation loaded
    messages = _messages(req, options, ctx, loaded)
    tools = tool_specs(req.tools, loaded, options, ctx)
    out = C.ChatRequest(model=upstream_model, messages=messages, stream=req.stream)
    if req.stream:
        out.stream_options = C.StreamOptions(include_usage=True)
    max_tokens = max_output_tokens(req.max_tokens, upstream_model, reasoning, options, ctx)
    field = options.max_tokens_field or ("max_completion_tokens" if openai_extensions else "max_tokens")
    if field == "max_completion_tokens":
        out.max_completion_tokens = max_tokens
    else:
        out.max_tokens = max_tokens
    if tools:
        out.tools = [C.ToolDef(function=C.FunctionDef(name=t.name, description=t.description, parameters=t.parameters))
                     for t in tools]
        _tool_choice(tool_choice(req.tool_choice, ctx), out)
    out.temperature, out.top_p = sampling(req, reasoning, ctx)
    _stop(req.stop_sequences, out, options, ctx)
    effort = reasoning_effort(req, reasoning, options, ctx)
    if effort:
        out.reasoning_effort = effort
    if openai_extensions:
        out.safety_identifier, out.prompt_cache_key = identity(req.metadata)
    else:
        _content_never_null(messages)
    if req.context_management is not None:
        ctx.note("context_management dropped")  # Anthropic-only context editing; Chat has no equivalent
    return out


def _content_never_null(messages: list[C.ChatMessage]) -> None:
    # OpenAI takes content null beside tool_calls; llama.cpp's server and other chat-template servers fail on a
    # missing or null content ("'dict object' has no attribute 'content'") and accept "".
    for message in messages:
        if message.content is None:
            message.content = ""


# ---- messages --------------------------------------------------------------------------------------------


def _messages(
    req: A.MessagesRequest, options: TranslationOptions, ctx: RequestContext, loaded: set[str]
) -> list[C.ChatMessage]:
    """The conversation's turns as Chat messages: system text where it stands, one tool message per result."""
    out: list[C.ChatMessage] = []
    system_role = options.system_role
    for turn in conversation(req, ctx, loaded):
        kind = type(turn)
        if kind is Results:
            out.extend(C.ChatMessage(role="tool", tool_call_id=call_id, content=text) for call_id, text in turn.results)  # type: ignore[union-attr]
        elif kind is User:
            out.append(C.ChatMessage(role="user", content=_user_content(turn.parts)))  # type: ignore[union-attr]
        elif kind is Assistant:
            message = _assistant(turn.pieces, ctx)  # type: ignore[union-attr]
            if message is not None:
                out.append(message)
        else:
            out.append(C.ChatMessage(role=system_role, content=turn.text))  # type: ignore[union-attr]
    return out


def _assistant(pieces: list[Text | ToolCall | A.ContentBlock], ctx: RequestContext) -> C.ChatMessage | None:
    """ONE assistant message for the turn: its text, then all its calls (Chat has no order between them)."""
    texts: list[str] = []
    calls: list[C.ToolCall] = []
    for piece in pieces:
        kind = type(piece)
        if kind is Text:
            texts.append(piece.text)  # type: ignore[union-attr]
        elif kind is ToolCall:
            calls.append(C.ToolCall(id=piece.id, function=C.FunctionCall(name=piece.name, arguments=piece.arguments)))  # type: ignore[union-attr]
        else:
            ctx.note("thinking dropped")  # Chat has no way to send reasoning back
    if not texts and not calls:
        return None
    message = C.ChatMessage(role="assistant", content="\n\n".join(texts) if texts else None)
    if calls:
        message.tool_calls = calls
    return message


def _user_content(parts: list[Part]) -> str | list[C.ContentPart]:
    # Text-only content goes as a plain string: every OpenAI-compatible server accepts it, many reject arrays.
    if all(type(part) is Text for part in parts):
        return "\n\n".join(part.text for part in parts)  # type: ignore[union-attr]
    return [_part(part) for part in parts]


def _part(part: Part) -> C.ContentPart:
    if isinstance(part, Text):
        return C.TextPart(text=part.text)
    if isinstance(part, Image):
        return C.ImagePart(image_url=C.ImageUrl(url=part.url))
    return C.FilePart(file=C.FileData(filename=part.filename, file_data=part.file_data, file_id=part.file_id))


# ---- tools, stop -----------------------------------------------------------------------------------------


def _tool_choice(choice: ToolChoice | None, out: C.ChatRequest) -> None:
    if choice is None:
        return
    if choice.kind == "function":
        out.tool_choice = C.NamedToolChoice(function=C.NamedFunction(name=choice.name or ""))
    else:
        out.tool_choice = choice.kind
    out.parallel_tool_calls = choice.parallel


def _stop(stop: list[str] | None, out: C.ChatRequest, options: TranslationOptions, ctx: RequestContext) -> None:
    if not stop:
        return
    if len(stop) > options.max_stop_sequences:
        ctx.note("stop_sequences truncated")
    out.stop = stop[: options.max_stop_sequences]
