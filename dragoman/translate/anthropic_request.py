"""The rules an Anthropic Messages request's settings follow on their way to any OpenAI protocol (Chat or
Responses): tools, tool choice, output limit, sampling, reasoning effort, identity.

Each function reads part of the Anthropic request and returns protocol-neutral values (`ToolSpec`,
`ToolChoice`, plain tuples); `chat.request` and `responses.request` map them to their own wire shapes, so
each rule lives here once (the messages themselves: `conversation.py`). Pure: no I/O, no config, no clock.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from dragoman.protocols import anthropic as A
from dragoman.protocols.claude_code import parse_claude_user
from dragoman.translate.models import is_reasoning_model, output_limit
from dragoman.translate.options import TranslationOptions
from dragoman.translate.request_context import RequestContext
from dragoman.translate.request_errors import invalid

_EFFORTS = ("minimal", "low", "medium", "high")
# Reasoning models spend tokens thinking before they answer; a probe with max_tokens 1 (Claude Code's /model
# check) would fail upstream with "max_tokens was reached" (BerriAI/litellm#35061), so they get a floor.
_REASONING_MIN_OUTPUT = 1024


# Structs rather than NamedTuples: built per tool per request, a Struct takes ~30 ns, a NamedTuple ~200 ns.
class ToolSpec(msgspec.Struct, gc=False):
    """A client tool as the upstream sees it: its upstream name, description and JSON schema."""

    name: str
    description: str | None
    parameters: msgspec.Raw | dict[str, Any]  # the client's schema as sent, or one completed here (_object_schema)


class ToolChoice(msgspec.Struct, gc=False):
    """kind: auto | required | none | function (then `name`); parallel: False only when the client asked."""

    kind: str
    name: str | None = None
    parallel: bool | None = None


def is_reasoning(options: TranslationOptions, upstream_model: str) -> bool:
    """Whether the upstream model reasons: the route's setting, else what the model's name says."""
    return is_reasoning_model(upstream_model) if options.reasoning_model is None else options.reasoning_model


# ---- tools -----------------------------------------------------------------------------------------------


def tool_specs(
    tools: list[A.Tool] | None, loaded: set[str], options: TranslationOptions, ctx: RequestContext
) -> list[ToolSpec]:
    """The client tools the upstream is offered: server tools rejected or dropped, deferred tools left out until
    the conversation `loaded` them."""
    out: list[ToolSpec] = []
    for k, tool in enumerate(tools or ()):
        if tool.type not in (None, "custom") and not A.schema_given(tool.input_schema):
            if options.server_tools == "drop":
                ctx.note(f"server tool {tool.type} dropped")
                continue
            raise invalid(
                f"tool {tool.name!r} is an Anthropic server tool ({tool.type}), which this route's upstream "
                "cannot run; remove it or set translation.server_tools: drop on the route",
                "tools", k,
            )
        if tool.defer_loading and tool.name not in loaded:
            # Anthropic keeps deferred tools out of the model's context until a tool_reference loads them.
            continue
        if tool.cache_control is not None:
            ctx.note("cache_control dropped")
        parameters = _object_schema(tool.name, tool.input_schema, k, ctx)
        out.append(ToolSpec(ctx.tool_names.upstream(tool.name), tool.description, parameters))
    return out


class _SchemaTop(msgspec.Struct, gc=False):
    """What `_object_schema` reads of a schema: its top-level `type`, and whether it has `properties` (their
    content skipped, not decoded)."""

    type: Any = msgspec.UNSET
    properties: msgspec.Raw = A.NO_SCHEMA


_decode_top = msgspec.json.Decoder(_SchemaTop).decode
_EMPTY_OBJECT_SCHEMA = msgspec.Raw(b'{"type":"object","properties":{}}')
_MEMO_ENTRY_LIMIT = 512
_MEMO_SCHEMA_LIMIT = 32 * 1024  # bytes of one schema memoized; Claude Code's are 0.1-2 KB, MCP servers' a few KB
_MEMO_BYTE_LIMIT = 2 * 1024 * 1024  # bytes the memo holds: its schemas and their completed forms


class _SchemaMemo:
    """The last schema seen under each tool name and what `_object_schema` made of it (None: the schema as sent),
    both as JSON bytes. A client sends the same schemas every turn: comparing the bytes is ~20x cheaper than reading
    the schema's top level again (~0.5 µs for one of Claude Code's). A memo of a pure function; the translation
    stays pure. Bounded by entries and by bytes (cleared when either is spent), and a schema larger than
    `_MEMO_SCHEMA_LIMIT` is read every time instead: a request with a fresh tool name and an 8 MiB schema leaves
    nothing behind once it ends."""

    __slots__ = ("schemas", "size")

    def __init__(self) -> None:
        self.schemas: dict[str, tuple[msgspec.Raw, msgspec.Raw | None]] = {}
        self.size = 0  # bytes held in `schemas`

    def keep(self, name: str, schema: msgspec.Raw, completed: dict[str, Any] | None) -> msgspec.Raw | None:
        """Remember what `schema` became under `name`; the completed schema as bytes (what the memo holds)."""
        made = msgspec.Raw(msgspec.json.encode(completed)) if completed is not None else None
        size = len(schema) + (len(made) if made is not None else 0)
        old = self.schemas.pop(name, None)
        if old is not None:
            self.size -= len(old[0]) + (len(old[1]) if old[1] is not None else 0)
        if len(self.schemas) >= _MEMO_ENTRY_LIMIT or self.size + size > _MEMO_BYTE_LIMIT:
            self.schemas.clear()
            self.size = 0
        self.schemas[name] = (msgspec.Raw(bytes(schema)), made)  # a copy: the memo must not keep the body alive
        self.size += size
        return made


_SEEN_SCHEMAS = _SchemaMemo()
_seen_schema = _SEEN_SCHEMAS.schemas.get  # (the same dict for the process's life: `keep` clears it, never replaces it)


def _object_schema(name: str, schema: msgspec.Raw, k: int, ctx: RequestContext) -> msgspec.Raw | dict[str, Any]:
    """A tool's input_schema as OpenAI takes it: an object schema with properties. Anthropic accepts `{}`, and
    MCP servers send parameterless tools without properties; OpenAI rejects both with invalid_function_parameters
    ("schema must be a JSON Schema of 'type: object'", "object schema missing properties": spring-ai#4776)."""
    if not A.schema_given(schema):
        return _EMPTY_OBJECT_SCHEMA
    completed: msgspec.Raw | dict[str, Any] | None
    seen = _seen_schema(name)
    if seen is not None and seen[0] == schema:
        completed = seen[1]
    else:
        completed = _completed(schema, k)
        if len(schema) <= _MEMO_SCHEMA_LIMIT:
            completed = _SEEN_SCHEMAS.keep(name, schema, completed)
    if completed is None:
        return schema
    ctx.note("tool input_schema completed")
    return completed


def _completed(schema: msgspec.Raw, k: int) -> dict[str, Any] | None:
    """The object schema with properties a schema becomes, or None when it is one already (or has another type)."""
    try:
        top = _decode_top(schema)
    except msgspec.ValidationError:
        raise invalid("a tool's input_schema must be a JSON object", "tools", k, "input_schema") from None
    if top.type is not msgspec.UNSET and (top.type != "object" or top.properties):
        return None
    return {"type": "object", "properties": {}, **msgspec.json.decode(schema)}


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
            raise invalid("tool_choice of type 'tool' needs a name", "tool_choice")
        return ToolChoice("function", ctx.tool_names.upstream(choice.name), parallel)
    raise invalid(f"unknown tool_choice type {kind!r} (expected auto, any, tool or none)", "tool_choice", "type")


# ---- sampling, limits, reasoning, identity ---------------------------------------------------------------


def max_output_tokens(
    asked: int, model: str, reasoning: bool, options: TranslationOptions, ctx: RequestContext, *, floor: int = 1
) -> int:
    """max_tokens clamped to the model's output limit and raised to the floor a reasoning model (or the upstream
    protocol: `floor`) needs. The context keeps both budgets: a raised one has its visible output cut back."""
    if asked < 1:
        raise invalid("max_tokens must be at least 1", "max_tokens")
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
