"""Anthropic Messages request → OpenAI Chat Completions request (design §2). Pure: no I/O, no config, no clock."""

from __future__ import annotations

import hashlib

import msgspec

from dragoman.errors import InvalidRequest
from dragoman.protocols import anthropic as A
from dragoman.protocols import openai_chat as C
from dragoman.protocols.claude_code import parse_claude_user
from dragoman.translate.models import is_reasoning_model, output_limit
from dragoman.translate.options import TranslationOptions
from dragoman.translate.request_context import RequestContext
from dragoman.translate.tool_names import ToolNameMap

_encode = msgspec.json.encode
_EFFORTS = ("minimal", "low", "medium", "high")
# Reasoning models spend tokens thinking before they answer; a probe with max_tokens 1 (Claude Code's /model
# check) would fail upstream with "max_tokens was reached" (BerriAI/litellm#35061), so they get a floor.
_REASONING_MIN_OUTPUT = 1024
_NO_RESULT = "[no result was returned for this tool call]"


def translate_request(
    req: A.MessagesRequest,
    upstream_model: str,
    options: TranslationOptions,
    ctx: RequestContext,
    *,
    openai_extensions: bool = True,
) -> C.ChatRequest:
    """Build the Chat request for `req`. `openai_extensions` adds OpenAI-only fields (prompt_cache_key…)."""
    reasoning = options.reasoning_model
    if reasoning is None:
        reasoning = is_reasoning_model(upstream_model)
    referenced = _referenced_tools(req.messages)
    messages = _messages(req, options, ctx)
    tools = _tools(req.tools, referenced, options, ctx)
    out = C.ChatRequest(model=upstream_model, messages=messages, stream=req.stream)
    if req.stream:
        out.stream_options = C.StreamOptions(include_usage=True)
    max_tokens = _max_tokens(req.max_tokens, upstream_model, reasoning, options, ctx)
    ctx.max_tokens = max_tokens
    field = options.max_tokens_field or ("max_completion_tokens" if openai_extensions else "max_tokens")
    if field == "max_completion_tokens":
        out.max_completion_tokens = max_tokens
    else:
        out.max_tokens = max_tokens
    if tools:
        out.tools = tools
        _tool_choice(req.tool_choice, out, ctx)
    _sampling(req, out, reasoning, ctx)
    _stop(req.stop_sequences, out, options, ctx)
    effort = _reasoning_effort(req, reasoning, options, ctx)
    if effort:
        out.reasoning_effort = effort
    if openai_extensions:
        _identity(req.metadata, out)
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
        text = _system_text(req.system, ctx)
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
            text = _system_text(msg.content, ctx)
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
            out.append(C.ChatMessage(role="tool", tool_call_id=call_id, content=_NO_RESULT))
        ctx.note("missing tool_result filled in")
        open_calls.clear()


def _system_text(content: str | list[A.ContentBlock], ctx: RequestContext) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if block.cache_control is not None:
            ctx.note("cache_control dropped")
        if block.type == "text" and block.text:
            parts.append(block.text)
    return "\n\n".join(parts)


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
            arguments = _encode(block.input if block.input is not None else {}).decode()
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
    results: dict[str, C.ChatMessage] = {}
    parts: list[C.ContentPart] = []
    result_images: list[C.ContentPart] = []
    for block in content:
        if block.cache_control is not None:
            ctx.note("cache_control dropped")
        if block.type == "tool_result":
            call_id = block.tool_use_id or ""
            text, images = _tool_result_content(block, ctx)
            if call_id in open_calls and call_id not in results:
                results[call_id] = C.ChatMessage(role="tool", tool_call_id=call_id, content=text)
                result_images.extend(images)
            else:
                # A result whose call is gone (compaction, a retried turn) would be rejected as a tool message.
                ctx.note("orphan tool_result sent as text")
                parts.append(C.TextPart(text=f"[result of tool call {call_id}]\n{text}"))
                parts.extend(images)
        else:
            part = _user_part(block, ctx)
            if part is not None:
                parts.append(part)
    # Tool messages go right after the assistant that called, in the order of its calls: Claude Code
    # answers parallel calls in completion order, and strict servers expect the calls' order.
    for call_id in open_calls:
        out.append(results.get(call_id) or C.ChatMessage(role="tool", tool_call_id=call_id, content=_NO_RESULT))
    if len(results) < len(open_calls):
        ctx.note("missing tool_result filled in")
    follow = result_images + parts
    if follow:
        out.append(C.ChatMessage(role="user", content=_user_content(follow)))
    return []


def _user_content(parts: list[C.ContentPart]) -> str | list[C.ContentPart]:
    # Text-only content goes as a plain string: every OpenAI-compatible server accepts it, many reject arrays.
    if all(type(part) is C.TextPart for part in parts):
        return "\n\n".join(part.text for part in parts)  # type: ignore[union-attr]
    return parts


def _user_part(block: A.ContentBlock, ctx: RequestContext) -> C.ContentPart | None:
    kind = block.type
    if kind == "text":
        if block.text is None:
            raise InvalidRequest("user text block without text")
        return C.TextPart(text=block.text)
    if kind == "image":
        return _image_part(block.source)
    if kind == "document":
        return _document_part(block, ctx)
    ctx.note(f"user {kind} block dropped")
    return None


def _image_part(source: A.Source | str | None) -> C.ContentPart | None:
    if not isinstance(source, A.Source):
        raise InvalidRequest("image block without a source object")
    if source.type == "base64":
        return C.ImagePart(image_url=C.ImageUrl(url=f"data:{source.media_type or 'image/png'};base64,{source.data}"))
    if source.type == "url" and source.url:
        return C.ImagePart(image_url=C.ImageUrl(url=source.url))
    raise InvalidRequest(f"image source type {source.type!r} cannot be sent to this upstream")


def _document_part(block: A.ContentBlock, ctx: RequestContext) -> C.ContentPart | None:
    source = block.source
    if not isinstance(source, A.Source):
        raise InvalidRequest("document block without a source object")
    title = block.title or "document"
    if source.type == "text":
        return C.TextPart(text=f"[{title}]\n{source.data or ''}")
    if source.type == "content" and isinstance(source.content, list):
        return C.TextPart(text="\n\n".join(b.text for b in source.content if b.type == "text" and b.text))
    if source.type == "base64":
        media = source.media_type or "application/pdf"
        data = f"data:{media};base64,{source.data}"
        return C.FilePart(file=C.FileData(filename=_filename(title, media), file_data=data))
    if source.type == "file" and source.file_id:
        return C.FilePart(file=C.FileData(file_id=source.file_id))
    if source.type == "url" and source.url:
        ctx.note("document url sent as text")
        return C.TextPart(text=f"[{title}: {source.url}]")
    raise InvalidRequest(f"document source type {source.type!r} cannot be sent to this upstream")


def _filename(title: str, media: str) -> str:
    return title if "." in title else f"{title}.{media.rsplit('/', 1)[-1]}"


def _tool_result_content(block: A.ContentBlock, ctx: RequestContext) -> tuple[str, list[C.ContentPart]]:
    """The text of a tool result (never empty) and the images it holds, which follow in a user message."""
    content = block.content
    images: list[C.ContentPart] = []
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    else:
        texts: list[str] = []
        loaded: list[str] = []
        for item in content:
            if item.type == "text":
                texts.append(item.text or "")
            elif item.type == "tool_reference":
                loaded.append(item.tool_name or "")
            elif item.type == "image":
                part = _image_part(item.source)
                if part is not None:
                    images.append(part)
            elif item.type == "document":
                part = _document_part(item, ctx)
                if isinstance(part, C.TextPart):
                    texts.append(part.text)
                elif part is not None:
                    images.append(part)
            else:
                ctx.note(f"tool_result {item.type} block dropped")
        if loaded:
            # Claude Code's ToolSearch answers with tool_reference blocks only: say which tools are now loaded.
            texts.insert(0, "Loaded tools: " + ", ".join(loaded))
        if images:
            texts.append(f"[{len(images)} attachment(s) follow in the next message]")
        text = "\n".join(t for t in texts if t)
    if not text:
        text = "(no output)"
    if block.is_error:
        text = f"[tool error] {text}"
    return text, images


# ---- tools -----------------------------------------------------------------------------------------------


def _referenced_tools(messages: list[A.Message]) -> set[str]:
    """Names of deferred tools the conversation has loaded (tool_reference blocks inside tool results)."""
    names: set[str] = set()
    for msg in messages:
        if msg.role != "user" or isinstance(msg.content, str):
            continue
        for block in msg.content:
            if block.type == "tool_result" and isinstance(block.content, list):
                for item in block.content:
                    if item.type == "tool_reference" and item.tool_name:
                        names.add(item.tool_name)
    return names


def _tools(
    tools: list[A.Tool] | None, referenced: set[str], options: TranslationOptions, ctx: RequestContext
) -> list[C.ToolDef]:
    if not tools:
        return []
    out: list[C.ToolDef] = []
    for tool in tools:
        if tool.type not in (None, "custom") and tool.input_schema is None:
            if options.server_tools == "drop":
                ctx.note(f"server tool {tool.type} dropped")
                continue
            raise InvalidRequest(
                f"tool {tool.name!r} is an Anthropic server tool ({tool.type}), which this route's upstream "
                "cannot run; remove it or set translation.server_tools: drop on the route"
            )
        if tool.defer_loading and tool.name not in referenced:
            # Anthropic keeps deferred tools out of the model's context until a tool_reference loads them.
            continue
        if tool.cache_control is not None:
            ctx.note("cache_control dropped")
        fn = C.FunctionDef(
            name=ctx.tool_names.upstream(tool.name),
            description=tool.description,
            parameters=tool.input_schema if tool.input_schema is not None else {"type": "object", "properties": {}},
        )
        out.append(C.ToolDef(function=fn))
    return out


def _tool_choice(choice: A.ToolChoice | None, out: C.ChatRequest, ctx: RequestContext) -> None:
    if choice is None:
        return
    kind = choice.type
    if kind == "auto":
        out.tool_choice = "auto"
    elif kind == "any":
        out.tool_choice = "required"
    elif kind == "none":
        out.tool_choice = "none"
    elif kind == "tool":
        if not choice.name:
            raise InvalidRequest("tool_choice: type 'tool' needs a name")
        out.tool_choice = C.NamedToolChoice(function=C.NamedFunction(name=ctx.tool_names.upstream(choice.name)))
    else:
        raise InvalidRequest(f"tool_choice: unknown type {kind!r} (expected auto, any, tool or none)")
    # Only an explicit request serialises calls; forcing it would break Claude Code's fan-outs
    # (raine/claude-code-proxy#36).
    if choice.disable_parallel_tool_use:
        out.parallel_tool_calls = False


# ---- sampling, limits, reasoning, identity ---------------------------------------------------------------


def _max_tokens(
    asked: int, model: str, reasoning: bool, options: TranslationOptions, ctx: RequestContext
) -> int:
    if asked < 1:
        raise InvalidRequest("max_tokens: must be at least 1")
    ceiling = options.max_output_tokens or output_limit(model)
    value = asked
    if ceiling and value > ceiling:
        value = ceiling  # Claude Code asks for 128000; a clamp, never a 400
        ctx.note("max_tokens clamped")
    floor = options.min_output_tokens or (_REASONING_MIN_OUTPUT if reasoning else 1)
    if value < floor:
        value = floor
        ctx.note("max_tokens raised")
    return value


def _sampling(req: A.MessagesRequest, out: C.ChatRequest, reasoning: bool, ctx: RequestContext) -> None:
    if req.top_k is not None:
        ctx.note("top_k dropped")
    if req.temperature is None and req.top_p is None:
        return
    if reasoning:
        ctx.note("temperature/top_p dropped")  # OpenAI reasoning models reject them
        return
    out.temperature = req.temperature
    out.top_p = req.top_p


def _stop(stop: list[str] | None, out: C.ChatRequest, options: TranslationOptions, ctx: RequestContext) -> None:
    if not stop:
        return
    if len(stop) > options.max_stop_sequences:
        ctx.note("stop_sequences truncated")
    out.stop = stop[: options.max_stop_sequences]


def _reasoning_effort(
    req: A.MessagesRequest, reasoning: bool, options: TranslationOptions, ctx: RequestContext
) -> str | None:
    setting = options.reasoning_effort
    if setting == "off":
        return None
    if setting in _EFFORTS:
        return setting
    if req.thinking is not None and req.thinking.display is not None:
        ctx.note("thinking.display dropped")
    if not reasoning:
        if req.thinking is not None and req.thinking.type != "disabled":
            ctx.note("thinking dropped")
        return None
    return anthropic_effort(req.thinking, req.output_config)


def anthropic_effort(thinking: A.Thinking | None, output_config: A.OutputConfig | None) -> str | None:
    """OpenAI's reasoning effort for Anthropic's thinking settings, or None to leave the model's default."""
    effort = output_config.effort if output_config is not None else None
    if effort in ("low", "medium", "high"):
        return effort
    if effort in ("max", "xhigh"):
        return "high"
    if thinking is None or thinking.type == "disabled":
        return None
    if thinking.type == "enabled" and thinking.budget_tokens is not None:
        budget = thinking.budget_tokens
        return "low" if budget < 4096 else "medium" if budget < 16384 else "high"
    return "medium"


def _identity(metadata: A.Metadata | None, out: C.ChatRequest) -> None:
    if metadata is None or not metadata.user_id:
        return
    user, session = parse_user_id(metadata.user_id)
    if user:
        # OpenAI asks for a stable identifier that is not the user's own id: hash it.
        out.safety_identifier = hashlib.sha256(user.encode()).hexdigest()[:64]
    if session:
        out.prompt_cache_key = session  # one session shares one prompt prefix: OpenAI's cache hits


def parse_user_id(user_id: str) -> tuple[str | None, str | None]:
    """(user, session) from Claude Code's metadata.user_id; any other string is the user itself."""
    found = parse_claude_user(user_id)
    user = found.account_uuid or found.device_id
    if user is None and found.session_id is None:
        return user_id, None
    return user, found.session_id
