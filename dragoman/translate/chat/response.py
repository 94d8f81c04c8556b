"""OpenAI Chat Completions response → Anthropic Messages response (design §3). Pure."""

from __future__ import annotations

from typing import Any

from dragoman.protocols import anthropic as A
from dragoman.protocols import openai_chat as C
from dragoman.translate.failures import failed_chat_answer
from dragoman.translate.output_budget import cut_message
from dragoman.translate.request_context import RequestContext
from dragoman.translate.stop_reasons import chat_stop_reason
from dragoman.translate.think_tags import ThinkTagSplitter
from dragoman.translate.tool_arguments import parse_arguments
from dragoman.translate.tool_ids import ToolUseIds, upstream_id
from dragoman.translate.usage import chat_usage

def translate_response(resp: C.ChatResponse, ctx: RequestContext) -> A.MessagesResponse:
    """The Anthropic message for a non-streamed Chat completion; raises the failure a 200 may stand for."""
    failure = failed_chat_answer(resp)
    if failure is not None:
        raise failure
    choice = resp.choices[0] if resp.choices else C.Choice()
    message = choice.message or C.ResponseMessage()
    blocks: list[A.OutBlock] = []
    reasoning = message.reasoning_content or message.reasoning
    if reasoning:
        blocks.append(A.ThinkingOut(thinking=reasoning))
    text = content_text(message.content)
    if text and ctx.think_tags:
        blocks.extend(_split_think_tags(text))
    elif text:
        blocks.append(A.TextOut(text=text))
    if message.refusal and not text:
        blocks.append(A.TextOut(text=message.refusal))
    if message.tool_calls:
        ids = ToolUseIds(ctx)
        for index, call in enumerate(message.tool_calls):
            blocks.append(_tool_use(call, index, ids, ctx))
    refusal = bool(message.refusal) and not text
    stop_reason, stop_sequence = chat_stop_reason(choice.finish_reason, bool(message.tool_calls), refusal, text, ctx)
    message = A.MessagesResponse(
        id=ctx.message_id,
        model=ctx.requested_model,
        content=blocks,
        stop_reason=stop_reason,
        stop_sequence=stop_sequence,
        usage=chat_usage(resp.usage, ctx, fallback_output=0),
    )
    return cut_message(message, ctx)


def content_text(content: Any) -> str:
    """Message text: a string per spec; some servers send a list of {type: text} parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        # a part's text is read only when it is a string: servers have sent `"text": null` (and the JSON may say
        # anything), and a join of anything else raised TypeError, past every error the relays turn into answers
        return "".join(text for p in content if isinstance(p, dict) and p.get("type") == "text"
                       and isinstance(text := p.get("text"), str))
    return ""


def _split_think_tags(text: str) -> list[A.OutBlock]:
    splitter = ThinkTagSplitter()
    out: list[A.OutBlock] = []
    for kind, piece in splitter.feed(text) + splitter.flush():
        if kind == "thinking":
            out.append(A.ThinkingOut(thinking=piece))
        elif piece:
            out.append(A.TextOut(text=piece))
    return out


def _tool_use(call: C.ResponseToolCall, index: int, ids: ToolUseIds, ctx: RequestContext) -> A.ToolUseOut:
    fn = call.function or C.ResponseFunctionCall()
    value, note = parse_arguments(fn.arguments)
    if note:
        ctx.note(note)
    return A.ToolUseOut(
        id=ids.client(upstream_id(call.id), index),
        name=ctx.tool_names.client(fn.name or ""),
        input=value,
    )
