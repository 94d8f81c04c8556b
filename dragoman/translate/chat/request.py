"""Anthropic Messages request → OpenAI Chat Completions request (design §2). Pure: no I/O, no config, no clock."""

from __future__ import annotations

from dragoman.errors import InvalidRequest
from dragoman.protocols import anthropic as A
from dragoman.protocols import openai_chat as C
from dragoman.translate.anthropic_request import (
    NO_RESULT,
    Image,
    Part,
    Text,
    ToolChoice,
    identity,
    is_reasoning,
    max_output_tokens,
    reasoning_effort,
    referenced_tools,
    sampling,
    system_text,
    tool_choice,
    tool_specs,
    tool_use_arguments,
    user_turn,
)
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
    messages = _messages(req, options, ctx)
    tools = tool_specs(req.tools, referenced_tools(req.messages), options, ctx)
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


def _messages(req: A.MessagesRequest, options: TranslationOptions, ctx: RequestContext) -> list[C.ChatMessage]:
    out: list[C.ChatMessage] = []
    system_role = options.system_role
    if req.system:
        text = system_text(req.system, ctx)
        if text:
            out.append(C.ChatMessage(role=system_role, content=text))
    open_calls: list[str] = []  # tool_call ids of the last assistant message still waiting for results
    for msg in req.messages:
        role = msg.role
        if role == "assistant":
            _close_calls(open_calls, out, ctx)
            message = _assistant(msg.content, ctx)
            if message is not None:
                out.append(message)
                if message.tool_calls:
                    open_calls = [call.id for call in message.tool_calls]
        elif role == "user":
            open_calls = _user(msg.content, open_calls, out, ctx)
        elif role == "system":
            _close_calls(open_calls, out, ctx)
            text = system_text(msg.content, ctx)
            if text:
                out.append(C.ChatMessage(role=system_role, content=text))
        else:
            raise InvalidRequest(f"messages: unknown role {role!r} (expected user, assistant or system)")
    _close_calls(open_calls, out, ctx)
    return out


def _close_calls(open_calls: list[str], out: list[C.ChatMessage], ctx: RequestContext) -> None:
    # OpenAI rejects an assistant message with tool_calls not followed by a tool message for each id
    # ("assistant message with 'tool_calls' must be followed by tool messages", openai/codex#8638).
    if open_calls:
        for call_id in open_calls:
            out.append(C.ChatMessage(role="tool", tool_call_id=call_id, content=NO_RESULT))
        ctx.note("missing tool_result filled in")
        open_calls.clear()


def _assistant(content: str | list[A.ContentBlock], ctx: RequestContext) -> C.ChatMessage | None:
    if isinstance(content, str):
        return C.ChatMessage(role="assistant", content=content)
    texts: list[str] = []
    calls: list[C.ToolCall] = []
    for block in content:
        kind = block.type
        if block.cache_control is not None:
            ctx.note("cache_control dropped")
        if kind == "text":
            if block.text is None:
                raise InvalidRequest("assistant text block without text")
            if block.text:
                texts.append(block.text)
        elif kind == "tool_use":
            if not block.id or not block.name:
                # The id pairs the call with its tool message; OpenAI rejects calls without one.
                raise InvalidRequest("assistant tool_use block needs an id and a name")
            name = ctx.tool_names.upstream(block.name)
            arguments = tool_use_arguments(block)
            calls.append(C.ToolCall(id=block.id, function=C.FunctionCall(name=name, arguments=arguments)))
        elif kind in ("thinking", "redacted_thinking"):
            ctx.note("thinking dropped")  # Chat has no way to send reasoning back
        else:
            ctx.note(f"assistant {kind} block dropped")
    if not texts and not calls:
        return None
    message = C.ChatMessage(role="assistant", content="\n\n".join(texts) if texts else None)
    if calls:
        message.tool_calls = calls
    return message


def _user(
    content: str | list[A.ContentBlock], open_calls: list[str], out: list[C.ChatMessage], ctx: RequestContext
) -> list[str]:
    """Append the user turn; return the tool calls still open (none once this turn is placed)."""
    if isinstance(content, str):
        _close_calls(open_calls, out, ctx)
        out.append(C.ChatMessage(role="user", content=content))
        return []
    turn = user_turn(content, open_calls, ctx)
    for call_id, text in turn.results:
        out.append(C.ChatMessage(role="tool", tool_call_id=call_id, content=text))
    if turn.follow:
        out.append(C.ChatMessage(role="user", content=_user_content([_part(part) for part in turn.follow])))
    return []


def _user_content(parts: list[C.ContentPart]) -> str | list[C.ContentPart]:
    # Text-only content goes as a plain string: every OpenAI-compatible server accepts it, many reject arrays.
    if all(type(part) is C.TextPart for part in parts):
        return "\n\n".join(part.text for part in parts)  # type: ignore[union-attr]
    return parts


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
