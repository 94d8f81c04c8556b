"""OpenAI Responses response → Anthropic Messages response (design §4). Pure.

The helpers here (item text, call ids) are the rules the stream bridge applies too, as are stop_reasons,
usage and failures, so a streamed answer reassembles to exactly the message this module builds.
"""

from __future__ import annotations

from dragoman.protocols import anthropic as A
from dragoman.protocols import openai_responses as R
from dragoman.translate.failures import failed_response_error
from dragoman.translate.output_budget import cut_message
from dragoman.translate.reasoning_signature import seal_reasoning
from dragoman.translate.request_context import RequestContext
from dragoman.translate.stop_reasons import responses_stop_reason
from dragoman.translate.tool_arguments import parse_arguments
from dragoman.translate.tool_ids import ToolUseIds
from dragoman.translate.usage import responses_usage

SUMMARY_SEPARATOR = "\n\n"  # between the parts of a reasoning summary, in one thinking block

def translate_response(resp: R.Response, ctx: RequestContext, reasoning_key: bytes) -> A.MessagesResponse:
    """The Anthropic message for a non-streamed Responses answer; a failed response raises a GatewayError."""
    if resp.status == "failed":
        raise failed_response_error(resp.error)
    blocks: list[A.OutBlock] = []
    has_tools = refusal = False
    ids = ToolUseIds(ctx)
    for index, item in enumerate(resp.output):
        kind = item.type
        if kind == "reasoning":
            blocks.append(A.ThinkingOut(thinking=summary_text(item), signature=seal_reasoning(item, reasoning_key)))
        elif kind == "message":
            text, is_refusal = message_text(item)
            if text:
                blocks.append(A.TextOut(text=text))
            refusal = refusal or is_refusal
        elif kind == "function_call":
            blocks.append(tool_use_block(item, index, ids, ctx))
            has_tools = True
        else:
            ctx.note(f"output {kind} item dropped")
    message = A.MessagesResponse(
        id=ctx.message_id,
        model=ctx.requested_model,
        content=blocks,
        stop_reason=responses_stop_reason(resp, resp.status, has_tools, refusal),
        stop_sequence=None,
        usage=responses_usage(resp.usage, ctx, fallback_output=0),
    )
    return cut_message(message, ctx)


def summary_text(item: R.OutputItem) -> str:
    """The thinking text of a reasoning item: its summary parts, in order; without a summary, its reasoning_text
    content parts (the raw reasoning that llama.cpp and gpt-oss servers send, with `summary: []`)."""
    text = SUMMARY_SEPARATOR.join(part.text for part in item.summary or () if part.text)
    if text or not item.content:
        return text
    return SUMMARY_SEPARATOR.join(part.text for part in item.content if part.type == "reasoning_text" and part.text)


def message_text(item: R.OutputItem) -> tuple[str, bool]:
    """(text, is_refusal) of an output message: output_text and refusal parts in order."""
    texts: list[str] = []
    refusal = False
    for part in item.content or ():
        if part.type == "refusal":
            refusal = True
            texts.append(part.refusal or "")
        elif part.type == "output_text":
            texts.append(part.text or "")
    return "".join(texts), refusal


def tool_use_block(item: R.OutputItem, index: int, ids: ToolUseIds, ctx: RequestContext) -> A.ToolUseOut:
    """A function_call item as a tool_use block: call_id kept (the client answers with it) unless `ids` must
    replace it, name restored."""
    value, note = parse_arguments(item.arguments)
    if note:
        ctx.note(note)
    return A.ToolUseOut(id=call_id(item, index, ids), name=ctx.tool_names.client(item.name or ""), input=value)


def call_id(item: R.OutputItem, index: int, ids: ToolUseIds) -> str:
    """The id the tool_use carries, which the function_call_output answers with next turn: the item's call_id
    (or, without one, its item id) when `ids` takes it."""
    return ids.client(item.call_id or item.id, index)
