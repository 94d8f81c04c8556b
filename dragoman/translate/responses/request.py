"""Anthropic Messages request → OpenAI Responses request (design §4). Pure: no I/O, no config, no clock.

The rules Chat and Responses share (system text, tool results, images and documents, deferred and server
tools, tool choice, max_tokens clamp, sampling, reasoning effort, identity) live in `anthropic_request`; this
module maps their protocol-neutral values to Responses shapes, so each rule stays in one place.
What is Responses-only lives here: input items instead of messages, flat function tools, `instructions`,
and the reasoning round trip (thinking blocks whose signature we sealed become reasoning items again).
"""

from __future__ import annotations

from dragoman.errors import InvalidRequest
from dragoman.protocols import anthropic as A
from dragoman.protocols import openai_responses as R
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
from dragoman.translate.reasoning_signature import open_reasoning
from dragoman.translate.request_context import RequestContext

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
    reasoning = is_reasoning(options, upstream_model)
    system = system_text(req.system, ctx) if req.system else ""
    items = _input(req, options, ctx, reasoning_key)
    out = R.ResponsesRequest(
        model=upstream_model,
        input=items,
        stream=req.stream,
        # The gateway keeps no upstream state and replays the conversation each turn; nothing need persist.
        store=False,
    )
    if system and options.system_placement == "first_message":
        # For Responses servers that ignore `instructions`: the system text leads the input, as on Chat.
        items.insert(0, R.MessageItem(role=options.system_role, content=[R.InputText(text=system)]))
    elif system:
        out.instructions = system
    out.max_output_tokens = max_output_tokens(req.max_tokens, upstream_model, reasoning, options, ctx, floor=_MIN_OUTPUT)
    tools = tool_specs(req.tools, referenced_tools(req.messages), options, ctx)
    if tools:
        out.tools = [R.FunctionTool(name=t.name, parameters=t.parameters, strict=False, description=t.description) for t in tools]
        _tool_choice(tool_choice(req.tool_choice, ctx), out)
    out.temperature, out.top_p = sampling(req, reasoning, ctx)
    if openai_extensions:
        out.safety_identifier, out.prompt_cache_key = identity(req.metadata)
    if req.stop_sequences:
        ctx.note("stop_sequences dropped")  # the Responses API has no stop parameter
    effort = reasoning_effort(req, reasoning, options, ctx)
    if reasoning or effort:
        # summary "auto": the summaries become the thinking text Claude Code shows.
        out.reasoning = R.ReasoningConfig(effort=effort, summary="auto")
        # Only reasoning models take it: others answer 400 "Encrypted content is not supported with this model".
        out.include = list(_INCLUDE_REASONING)
    if req.context_management is not None:
        ctx.note("context_management dropped")  # Anthropic-only context editing; Responses has no equivalent
    return out


def _tool_choice(choice: ToolChoice | None, out: R.ResponsesRequest) -> None:
    if choice is None:
        return
    out.tool_choice = R.NamedToolChoice(name=choice.name or "") if choice.kind == "function" else choice.kind
    out.parallel_tool_calls = choice.parallel


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
            text = system_text(msg.content, ctx)
            if text:
                items.append(R.MessageItem(role=options.system_role, content=[R.InputText(text=text)]))
        else:
            raise InvalidRequest(f"messages: unknown role {role!r} (expected user, assistant or system)")
    _close_calls(open_calls, items, ctx)
    return items


def _close_calls(open_calls: list[str], items: list[R.InputItem], ctx: RequestContext) -> None:
    # OpenAI rejects a function_call without its output ("No tool output found for function call …").
    if open_calls:
        items.extend(R.FunctionCallOutputItem(call_id=call_id, output=NO_RESULT) for call_id in open_calls)
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
            arguments = tool_use_arguments(block)
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
    turn = user_turn(content, open_calls, ctx)
    for call_id, text in turn.results:
        items.append(R.FunctionCallOutputItem(call_id=call_id, output=text))
    if turn.follow:
        items.append(R.MessageItem(role="user", content=[_part(part) for part in turn.follow]))
    return []


def _part(part: Part) -> R.InputPart:
    if isinstance(part, Text):
        return R.InputText(text=part.text)
    if isinstance(part, Image):
        return R.InputImage(image_url=part.url)
    return R.InputFile(filename=part.filename, file_data=part.file_data, file_id=part.file_id)
