"""Anthropic Messages request → OpenAI Responses request (design §4). Pure: no I/O, no config, no clock.

The rules Chat and Responses share (system text, tool results, images and documents, deferred and server
tools, tool choice, max_tokens clamp, sampling, reasoning effort, identity) live in `anthropic_to_chat`; this
module calls them and reshapes their Chat output into Responses items, so each rule stays in one place.
What is Responses-only lives here: input items instead of messages, flat function tools, `instructions`,
and the reasoning round trip (thinking blocks whose signature we sealed become reasoning items again).
"""

from __future__ import annotations

import msgspec

from dragoman.errors import InvalidRequest
from dragoman.protocols import anthropic as A
from dragoman.protocols import openai_chat as C
from dragoman.protocols import openai_responses as R
from dragoman.translate.anthropic_to_chat import (
    _NO_RESULT,
    _identity,
    _max_tokens,
    _reasoning_effort,
    _referenced_tools,
    _sampling,
    _system_text,
    _tool_choice,
    _tool_result_content,
    _tools,
    _user_part,
)
from dragoman.translate.models import is_reasoning_model
from dragoman.translate.options import TranslationOptions
from dragoman.translate.reasoning_signature import open_reasoning
from dragoman.translate.request_context import RequestContext

_encode = msgspec.json.encode
# OpenAI rejects max_output_tokens below 16 ("integer below minimum value") on every Responses model.
_MIN_OUTPUT = 16
# With store: false nothing persists at OpenAI, so the reasoning a later turn needs must come back encrypted.
_INCLUDE_REASONING = ["reasoning.encrypted_content"]


def translate_request(
    req: A.MessagesRequest,
    upstream_model: str,
    options: TranslationOptions,
    ctx: RequestContext,
    *,
    reasoning_key: bytes,
    openai_extensions: bool = True,
) -> R.ResponsesRequest:
    """Build the Responses request for `req`. `reasoning_key` opens the thinking signatures we sealed earlier;
    `openai_extensions` adds OpenAI-only fields (prompt_cache_key, safety_identifier)."""
    reasoning = options.reasoning_model
    if reasoning is None:
        reasoning = is_reasoning_model(upstream_model)
    instructions = _system_text(req.system, ctx) if req.system else ""
    out = R.ResponsesRequest(
        model=upstream_model,
        input=_input(req, options, ctx, reasoning_key),
        stream=req.stream,
        # The gateway keeps no upstream state and replays the conversation each turn; nothing need persist.
        store=False,
    )
    if instructions:
        out.instructions = instructions
    max_tokens = _max_tokens(req.max_tokens, upstream_model, reasoning, options, ctx)
    if max_tokens < _MIN_OUTPUT:
        max_tokens = _MIN_OUTPUT
        ctx.note("max_tokens raised")
    out.max_output_tokens = max_tokens
    ctx.max_tokens = max_tokens
    tools = _tools(req.tools, _referenced_tools(req.messages), options, ctx)
    if tools:
        out.tools = [_flat_tool(tool.function) for tool in tools]
    # Tool choice, sampling and identity are Chat's rules, applied to a scratch Chat request and copied over.
    shared = C.ChatRequest(model=upstream_model, messages=[])
    if tools:
        _tool_choice(req.tool_choice, shared, ctx)
    _sampling(req, shared, reasoning, ctx)
    if openai_extensions:
        _identity(req.metadata, shared)
    _copy_shared(shared, out)
    if req.stop_sequences:
        ctx.note("stop_sequences dropped")  # the Responses API has no stop parameter
    effort = _reasoning_effort(req, reasoning, options, ctx)
    if reasoning or effort:
        # summary "auto": the summaries become the thinking text Claude Code shows.
        out.reasoning = R.ReasoningConfig(effort=effort, summary="auto")
        # Only reasoning models take it: others answer 400 "Encrypted content is not supported with this model".
        out.include = list(_INCLUDE_REASONING)
    if req.context_management is not None:
        ctx.note("context_management dropped")  # Anthropic-only context editing; Responses has no equivalent
    return out


def _flat_tool(fn: C.FunctionDef) -> R.FunctionTool:
    parameters = fn.parameters if fn.parameters is not None else {"type": "object", "properties": {}}
    return R.FunctionTool(name=fn.name, parameters=parameters, strict=False, description=fn.description)


def _copy_shared(shared: C.ChatRequest, out: R.ResponsesRequest) -> None:
    choice = shared.tool_choice
    out.tool_choice = R.NamedToolChoice(name=choice.function.name) if isinstance(choice, C.NamedToolChoice) else choice
    out.parallel_tool_calls = shared.parallel_tool_calls
    out.temperature = shared.temperature
    out.top_p = shared.top_p
    out.safety_identifier = shared.safety_identifier
    out.prompt_cache_key = shared.prompt_cache_key


# ---- input items -----------------------------------------------------------------------------------------


def _input(req: A.MessagesRequest, options: TranslationOptions, ctx: RequestContext, key: bytes) -> list[R.InputItem]:
    items: list[R.InputItem] = []
    open_calls: list[str] = []  # call_ids of the last assistant turn still waiting for outputs
    for msg in req.messages:
        role = msg.role
        if role == "assistant":
            _close_calls(open_calls, items, ctx)
            open_calls = _assistant(msg.content, items, ctx, key)
        elif role == "user":
            open_calls = _user(msg.content, open_calls, items, ctx)
        elif role == "system":
            # Claude Code >= 2.1 sends system messages mid-conversation: they keep their place.
            _close_calls(open_calls, items, ctx)
            text = _system_text(msg.content, ctx)
            if text:
                items.append(R.MessageItem(role=options.system_role, content=[R.InputText(text=text)]))
        else:
            raise InvalidRequest(f"messages: unknown role {role!r} (expected user, assistant or system)")
    _close_calls(open_calls, items, ctx)
    return items


def _close_calls(open_calls: list[str], items: list[R.InputItem], ctx: RequestContext) -> None:
    # OpenAI rejects a function_call without its output ("No tool output found for function call …").
    if open_calls:
        items.extend(R.FunctionCallOutputItem(call_id=call_id, output=_NO_RESULT) for call_id in open_calls)
        ctx.note("missing tool_result filled in")
        open_calls.clear()


def _assistant(content: str | list[A.ContentBlock], items: list[R.InputItem], ctx: RequestContext, key: bytes) -> list[str]:
    """Append the assistant turn's items in block order; return its call_ids."""
    if isinstance(content, str):
        if content:
            items.append(_assistant_text([content]))
        return []
    turn: list[R.InputItem] = []
    texts: list[str] = []
    for block in content:
        kind = block.type
        if block.cache_control is not None:
            ctx.note("cache_control dropped")
        if kind == "text":
            if block.text:
                texts.append(block.text)
            continue
        if texts:  # text before a call or a reasoning item stays before it
            turn.append(_assistant_text(texts))
            texts = []
        if kind == "tool_use":
            arguments = _encode(block.input if block.input is not None else {}).decode()
            turn.append(R.FunctionCallItem(call_id=block.id or "", name=ctx.tool_names.upstream(block.name or ""), arguments=arguments))
        elif kind == "thinking":
            item = _replayable_reasoning(block, ctx, key)
            if item is not None:
                turn.append(item)
        elif kind == "redacted_thinking":
            ctx.note("redacted_thinking dropped")  # Anthropic's encrypted thinking: no other upstream can read it
        else:
            ctx.note(f"assistant {kind} block dropped")
    if texts:
        turn.append(_assistant_text(texts))
    while turn and isinstance(turn[-1], R.ReasoningItem):
        # OpenAI rejects a reasoning item "provided without its required following item".
        turn.pop()
        ctx.note("trailing reasoning item dropped")
    items.extend(turn)
    return [item.call_id for item in turn if isinstance(item, R.FunctionCallItem)]


def _assistant_text(texts: list[str]) -> R.MessageItem:
    return R.MessageItem(role="assistant", content=[R.OutputText(text="\n\n".join(texts))])


def _replayable_reasoning(block: A.ContentBlock, ctx: RequestContext, key: bytes) -> R.ReasoningItem | None:
    item = open_reasoning(block.signature, key)
    if item is None:
        # Not sealed by this gateway: a real Anthropic model's signature earlier in the session, or altered.
        ctx.note("thinking dropped (signature not from this gateway)")
        return None
    if not item.encrypted_content:
        # With store: false OpenAI can only resolve a reasoning item from its encrypted content.
        ctx.note("thinking dropped (reasoning item without encrypted_content)")
        return None
    return item


def _user(
    content: str | list[A.ContentBlock], open_calls: list[str], items: list[R.InputItem], ctx: RequestContext
) -> list[str]:
    """Append the user turn; return the calls still open (none once this turn is placed)."""
    if isinstance(content, str):
        _close_calls(open_calls, items, ctx)
        items.append(R.MessageItem(role="user", content=[R.InputText(text=content)]))
        return []
    outputs: dict[str, R.FunctionCallOutputItem] = {}
    parts: list[R.InputPart] = []
    result_parts: list[R.InputPart] = []
    for block in content:
        if block.cache_control is not None:
            ctx.note("cache_control dropped")
        if block.type == "tool_result":
            call_id = block.tool_use_id or ""
            text, attachments = _tool_result_content(block, ctx)
            if call_id in open_calls and call_id not in outputs:
                outputs[call_id] = R.FunctionCallOutputItem(call_id=call_id, output=text)
                result_parts.extend(_part(p) for p in attachments)
            else:
                # An output whose call is gone (compaction, a retried turn) would be rejected by OpenAI.
                ctx.note("orphan tool_result sent as text")
                parts.append(R.InputText(text=f"[result of tool call {call_id}]\n{text}"))
                parts.extend(_part(p) for p in attachments)
        else:
            part = _user_part(block, ctx)
            if part is not None:
                parts.append(_part(part))
    # Outputs in the calls' order, right after them: Claude Code answers parallel calls in completion order.
    for call_id in open_calls:
        items.append(outputs.get(call_id) or R.FunctionCallOutputItem(call_id=call_id, output=_NO_RESULT))
    if len(outputs) < len(open_calls):
        ctx.note("missing tool_result filled in")
    follow = result_parts + parts
    if follow:
        items.append(R.MessageItem(role="user", content=follow))
    return []


def _part(part: C.ContentPart) -> R.InputPart:
    """A content part built by the shared Chat rules, as a Responses input part."""
    if isinstance(part, C.TextPart):
        return R.InputText(text=part.text)
    if isinstance(part, C.ImagePart):
        return R.InputImage(image_url=part.image_url.url)
    return R.InputFile(filename=part.file.filename, file_data=part.file.file_data, file_id=part.file.file_id)
