"""Anthropic Messages request → OpenAI Responses request (design §4). Pure: no I/O, no config, no clock.

The rules Chat and Responses share live in `conversation` (the messages: system text, tool results paired
with their calls, images and documents) and `anthropic_request` (deferred and server tools, tool choice,
max_tokens clamp, sampling, reasoning effort, identity); this module renders their protocol-neutral values
as Responses shapes, so each rule stays in one place.
What is Responses-only lives here: input items instead of messages, flat function tools, `instructions`,
and the reasoning round trip (thinking blocks whose signature we sealed become reasoning items again).
"""

from __future__ import annotations

from dragoman.protocols import anthropic as A
from dragoman.protocols import openai_responses as R
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
    loaded: set[str] = set()  # deferred tools the conversation loaded
    items, instructions = _input(req, options, ctx, reasoning_key, loaded)
    out = R.ResponsesRequest(
        model=upstream_model,
        input=items,
        stream=req.stream,
        # The gateway keeps no upstream state and replays the conversation each turn; nothing need persist.
        store=False,
    )
    if instructions:
        out.instructions = instructions
    out.max_output_tokens = max_output_tokens(req.max_tokens, upstream_model, reasoning, options, ctx, floor=_MIN_OUTPUT)
    tools = tool_specs(req.tools, loaded, options, ctx)
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


def _input(
    req: A.MessagesRequest, options: TranslationOptions, ctx: RequestContext, key: bytes, loaded: set[str]
) -> tuple[list[R.InputItem], str]:
    """(input items, instructions): the conversation's turns as items; the system prompt as `instructions`,
    or as the first item where the route says the server ignores `instructions`."""
    items: list[R.InputItem] = []
    instructions = ""
    system_role = options.system_role
    for turn in conversation(req, ctx, loaded):
        kind = type(turn)
        if kind is Results:
            items.extend(R.FunctionCallOutputItem(call_id=call_id, output=text) for call_id, text in turn.results)  # type: ignore[union-attr]
        elif kind is User:
            items.append(R.MessageItem(role="user", content=[_part(part) for part in turn.parts]))  # type: ignore[union-attr]
        elif kind is Assistant:
            _assistant(turn.pieces, items, ctx, key)  # type: ignore[union-attr]
        elif turn.prompt and options.system_placement != "first_message":  # type: ignore[union-attr]
            instructions = turn.text  # type: ignore[union-attr]
        else:
            items.append(R.MessageItem(role=system_role, content=[R.InputText(text=turn.text)]))  # type: ignore[union-attr]
    return items, instructions


def _assistant(pieces: list[Text | ToolCall | A.ContentBlock], items: list[R.InputItem], ctx: RequestContext, key: bytes) -> None:
    """Append the assistant turn's items in block order."""
    turn: list[R.InputItem] = []
    for piece in pieces:
        kind = type(piece)
        if kind is Text:
            turn.append(R.MessageItem(role="assistant", content=[R.OutputText(text=piece.text)]))  # type: ignore[union-attr]
        elif kind is ToolCall:
            turn.append(R.FunctionCallItem(call_id=piece.id, name=piece.name, arguments=piece.arguments))  # type: ignore[union-attr]
        elif piece.type == "thinking":  # type: ignore[union-attr]
            item = _replayable_reasoning(piece, ctx, key)  # type: ignore[arg-type]
            if item is not None:
                turn.append(item)
        else:
            ctx.note("redacted_thinking dropped")  # Anthropic's encrypted thinking: no other upstream can read it
    while turn and isinstance(turn[-1], R.ReasoningItem):
        # OpenAI rejects a reasoning item "provided without its required following item".
        turn.pop()
        ctx.note("trailing reasoning item dropped")
    items.extend(turn)


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


def _part(part: Part) -> R.InputPart:
    if isinstance(part, Text):
        return R.InputText(text=part.text)
    if isinstance(part, Image):
        return R.InputImage(image_url=part.url)
    return R.InputFile(filename=part.filename, file_data=part.file_data, file_id=part.file_id)
