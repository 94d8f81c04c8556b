"""The rules an Anthropic Messages request follows on its way to any OpenAI protocol (Chat or Responses).

Each function reads part of the Anthropic request and returns protocol-neutral values (`ToolSpec`,
`ToolChoice`, `Text`/`Image`/`File` parts, plain tuples); `chat.request` and `responses.request`
map them to their own wire shapes, so each rule lives here once. Pure: no I/O, no config, no clock.
"""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple

import msgspec

from dragoman.errors import InvalidRequest
from dragoman.protocols import anthropic as A
from dragoman.protocols.claude_code import parse_claude_user
from dragoman.translate.models import is_reasoning_model, output_limit
from dragoman.translate.options import TranslationOptions
from dragoman.translate.request_context import RequestContext

_encode = msgspec.json.encode
# What a tool call that got no result is answered with: both protocols reject a call left unanswered.
NO_RESULT = "[no result was returned for this tool call]"
_EFFORTS = ("minimal", "low", "medium", "high")
# Reasoning models spend tokens thinking before they answer; a probe with max_tokens 1 (Claude Code's /model
# check) would fail upstream with "max_tokens was reached" (BerriAI/litellm#35061), so they get a floor.
_REASONING_MIN_OUTPUT = 1024


class Text(NamedTuple):
    text: str


class Image(NamedTuple):
    url: str  # an http(s) URL or a data: URL


class File(NamedTuple):
    filename: str | None = None
    file_data: str | None = None  # a data: URL
    file_id: str | None = None


Part = Text | Image | File


class ToolSpec(NamedTuple):
    """A client tool as the upstream sees it: its upstream name, description and JSON schema."""

    name: str
    description: str | None
    parameters: dict[str, Any]


class ToolChoice(NamedTuple):
    """kind: auto | required | none | function (then `name`); parallel: False only when the client asked."""

    kind: str
    name: str | None = None
    parallel: bool | None = None


def is_reasoning(options: TranslationOptions, upstream_model: str) -> bool:
    """Whether the upstream model reasons: the route's setting, else what the model's name says."""
    return is_reasoning_model(upstream_model) if options.reasoning_model is None else options.reasoning_model


# ---- content -------------------------------------------------------------------------------------------


def system_text(content: str | list[A.ContentBlock], ctx: RequestContext) -> str:
    """The text of a system prompt or a system message, its text blocks joined."""
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if block.cache_control is not None:
            ctx.note("cache_control dropped")
        if block.type == "text" and block.text:
            parts.append(block.text)
    return "\n\n".join(parts)


def user_part(block: A.ContentBlock, ctx: RequestContext) -> Part | None:
    """A user block other than tool_result as a content part, or None when the upstream cannot take it."""
    kind = block.type
    if kind == "text":
        if block.text is None:
            raise InvalidRequest("user text block without text")
        return Text(block.text)
    if kind == "image":
        return _image(block.source)
    if kind == "document":
        return _document(block, ctx)
    ctx.note(f"user {kind} block dropped")
    return None


class UserTurn(NamedTuple):
    """A user turn placed after the assistant turn it answers: one result per open call, in the calls' order
    (Claude Code answers parallel calls in completion order, and strict servers expect the calls' order), then
    what follows in a user message: the results' attachments, then the turn's other blocks."""

    results: list[tuple[str, str]]  # (call id, text); a call left without a result gets NO_RESULT
    follow: list[Part]


def user_turn(content: list[A.ContentBlock], open_calls: list[str], ctx: RequestContext) -> UserTurn:
    """Pair a user turn's tool_result blocks with the calls still open; the rest are parts that follow."""
    texts: dict[str, str] = {}
    attachments: list[Part] = []
    parts: list[Part] = []
    for block in content:
        if block.cache_control is not None:
            ctx.note("cache_control dropped")
        if block.type == "tool_result":
            call_id = block.tool_use_id or ""
            text, extra = tool_result(block, ctx)
            if call_id in open_calls and call_id not in texts:
                texts[call_id] = text
                attachments.extend(extra)
            else:
                # A result whose call is gone (compaction, a retried turn) would be rejected as a result.
                ctx.note("orphan tool_result sent as text")
                parts.append(Text(f"[result of tool call {call_id}]\n{text}"))
                parts.extend(extra)
        else:
            part = user_part(block, ctx)
            if part is not None:
                parts.append(part)
    if len(texts) < len(open_calls):
        ctx.note("missing tool_result filled in")
    results = [(call_id, texts.get(call_id, NO_RESULT)) for call_id in open_calls]
    return UserTurn(results, attachments + parts)


def tool_result(block: A.ContentBlock, ctx: RequestContext) -> tuple[str, list[Image | File]]:
    """The text of a tool result (never empty) and the images and files it holds, which follow in a user turn."""
    content = block.content
    attachments: list[Image | File] = []
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
                attachments.append(_image(item.source))
            elif item.type == "document":
                part = _document(item, ctx)
                if isinstance(part, Text):
                    texts.append(part.text)
                else:
                    attachments.append(part)
            else:
                ctx.note(f"tool_result {item.type} block dropped")
        if loaded:
            # Claude Code's ToolSearch answers with tool_reference blocks only: say which tools are now loaded.
            texts.insert(0, "Loaded tools: " + ", ".join(loaded))
        if attachments:
            texts.append(f"[{len(attachments)} attachment(s) follow in the next message]")
        text = "\n".join(t for t in texts if t)
    if not text:
        text = "(no output)"
    if block.is_error:
        text = f"[tool error] {text}"
    return text, attachments


def _image(source: A.Source | str | None) -> Image:
    if not isinstance(source, A.Source):
        raise InvalidRequest("image block without a source object")
    if source.type == "base64":
        return Image(f"data:{source.media_type or 'image/png'};base64,{source.data}")
    if source.type == "url" and source.url:
        return Image(source.url)
    raise InvalidRequest(f"image source type {source.type!r} cannot be sent to this upstream")


def _document(block: A.ContentBlock, ctx: RequestContext) -> Text | File:
    source = block.source
    if not isinstance(source, A.Source):
        raise InvalidRequest("document block without a source object")
    title = block.title or "document"
    if source.type == "text":
        return Text(f"[{title}]\n{source.data or ''}")
    if source.type == "content" and isinstance(source.content, list):
        return Text("\n\n".join(b.text for b in source.content if b.type == "text" and b.text))
    if source.type == "base64":
        media = source.media_type or "application/pdf"
        return File(filename=_filename(title, media), file_data=f"data:{media};base64,{source.data}")
    if source.type == "file" and source.file_id:
        return File(file_id=source.file_id)
    if source.type == "url" and source.url:
        ctx.note("document url sent as text")
        return Text(f"[{title}: {source.url}]")
    raise InvalidRequest(f"document source type {source.type!r} cannot be sent to this upstream")


def _filename(title: str, media: str) -> str:
    return title if "." in title else f"{title}.{media.rsplit('/', 1)[-1]}"


def tool_use_arguments(block: A.ContentBlock) -> str:
    """An assistant tool_use block's input as the JSON text OpenAI's tool calls carry."""
    return _encode(block.input if block.input is not None else {}).decode()


# ---- tools -----------------------------------------------------------------------------------------------


def referenced_tools(messages: list[A.Message]) -> set[str]:
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


def tool_specs(
    tools: list[A.Tool] | None, referenced: set[str], options: TranslationOptions, ctx: RequestContext
) -> list[ToolSpec]:
    """The client tools the upstream is offered: server tools rejected or dropped, unloaded deferred tools left out."""
    out: list[ToolSpec] = []
    for tool in tools or ():
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
        out.append(ToolSpec(ctx.tool_names.upstream(tool.name), tool.description, _object_schema(tool.input_schema, ctx)))
    return out


def _object_schema(schema: dict[str, Any] | None, ctx: RequestContext) -> dict[str, Any]:
    """A tool's input_schema as OpenAI takes it: an object schema with properties. Anthropic accepts `{}`, and
    MCP servers send parameterless tools without properties; OpenAI rejects both with invalid_function_parameters
    ("schema must be a JSON Schema of 'type: object'", "object schema missing properties": spring-ai#4776)."""
    if schema is None:
        return {"type": "object", "properties": {}}
    if "type" in schema and (schema["type"] != "object" or "properties" in schema):
        return schema
    ctx.note("tool input_schema completed")
    return {"type": "object", "properties": {}, **schema}


def tool_choice(choice: A.ToolChoice | None, ctx: RequestContext) -> ToolChoice | None:
    """The client's tool_choice, or None when it gave none (the upstream's default, auto)."""
    if choice is None:
        return None
    kind = choice.type
    # Only an explicit request serialises calls; forcing it would break Claude Code's fan-outs
    # (raine/claude-code-proxy#36).
    parallel = False if choice.disable_parallel_tool_use else None
    if kind == "auto":
        return ToolChoice("auto", parallel=parallel)
    if kind == "any":
        return ToolChoice("required", parallel=parallel)
    if kind == "none":
        return ToolChoice("none", parallel=parallel)
    if kind == "tool":
        if not choice.name:
            raise InvalidRequest("tool_choice: type 'tool' needs a name")
        return ToolChoice("function", ctx.tool_names.upstream(choice.name), parallel)
    raise InvalidRequest(f"tool_choice: unknown type {kind!r} (expected auto, any, tool or none)")


# ---- sampling, limits, reasoning, identity ---------------------------------------------------------------


def max_output_tokens(
    asked: int, model: str, reasoning: bool, options: TranslationOptions, ctx: RequestContext, *, floor: int = 1
) -> int:
    """max_tokens clamped to the model's output limit and raised to the floor a reasoning model (or the upstream
    protocol: `floor`) needs. The context keeps both budgets: a raised one has its visible output cut back."""
    if asked < 1:
        raise InvalidRequest("max_tokens: must be at least 1")
    ceiling = options.max_output_tokens or output_limit(model)
    value = asked
    if ceiling and value > ceiling:
        value = ceiling  # Claude Code asks for 128000; a clamp, never a 400
        ctx.note("max_tokens clamped")
    floor = max(options.min_output_tokens or (_REASONING_MIN_OUTPUT if reasoning else 1), floor)
    if value < floor:
        value = floor
        ctx.note("max_tokens raised")
    ctx.max_tokens = value
    ctx.visible_max_tokens = asked if value > asked else 0
    return value


def sampling(req: A.MessagesRequest, reasoning: bool, ctx: RequestContext) -> tuple[float | None, float | None]:
    """(temperature, top_p) to send; both None for reasoning models, which reject them."""
    if req.top_k is not None:
        ctx.note("top_k dropped")
    if req.temperature is None and req.top_p is None:
        return None, None
    if reasoning:
        ctx.note("temperature/top_p dropped")  # OpenAI reasoning models reject them
        return None, None
    return req.temperature, req.top_p


def reasoning_effort(
    req: A.MessagesRequest, reasoning: bool, options: TranslationOptions, ctx: RequestContext
) -> str | None:
    """The reasoning effort to ask for: the route's setting, else from the client's thinking settings."""
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


def identity(metadata: A.Metadata | None) -> tuple[str | None, str | None]:
    """(safety_identifier, prompt_cache_key) from the client's metadata.user_id, for OpenAI's abuse and cache keys."""
    if metadata is None or not metadata.user_id:
        return None, None
    user, session = parse_user_id(metadata.user_id)
    # OpenAI asks for a stable identifier that is not the user's own id: hash it.
    safety = hashlib.sha256(user.encode()).hexdigest()[:64] if user else None
    return safety, session or None  # one session shares one prompt prefix: OpenAI's cache hits


def parse_user_id(user_id: str) -> tuple[str | None, str | None]:
    """(user, session) from Claude Code's metadata.user_id; any other string is the user itself."""
    found = parse_claude_user(user_id)
    user = found.account_uuid or found.device_id
    if user is None and found.session_id is None:
        return user_id, None
    return user, found.session_id
