"""OpenAI Chat Completions response → Anthropic Messages response (design §3). Pure."""

from __future__ import annotations

from typing import Any

from dragoman.protocols import anthropic as A
from dragoman.protocols import openai_chat as C
from dragoman.translate.output_budget import cut_message
from dragoman.translate.request_context import RequestContext
from dragoman.translate.think_tags import ThinkTagSplitter
from dragoman.translate.tool_arguments import parse_arguments

_FINISH = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def translate_response(resp: C.ChatResponse, ctx: RequestContext) -> A.MessagesResponse:
    """The Anthropic message for a non-streamed Chat completion."""
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
    for index, call in enumerate(message.tool_calls or ()):
        blocks.append(_tool_use(call, index, ctx))
    has_tools = bool(message.tool_calls)
    stop_reason, stop_sequence = stop_reason_for(choice.finish_reason, has_tools, text, ctx)
    if message.refusal and not text and not has_tools:
        stop_reason = "refusal"
    message = A.MessagesResponse(
        id=ctx.message_id,
        model=ctx.requested_model,
        content=blocks,
        stop_reason=stop_reason,
        stop_sequence=stop_sequence,
        usage=anthropic_usage(resp.usage, fallback_input=ctx.input_estimate, fallback_output=0),
    )
    return cut_message(message, ctx)


def content_text(content: Any) -> str:
    """Message text: a string per spec; some servers send a list of {type: text} parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
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


def _tool_use(call: C.ResponseToolCall, index: int, ctx: RequestContext) -> A.ToolUseOut:
    fn = call.function or C.ResponseFunctionCall()
    value, note = parse_arguments(fn.arguments)
    if note:
        ctx.note(note)
    return A.ToolUseOut(
        id=call.id or tool_use_id(ctx.message_id, index),
        name=ctx.tool_names.client(fn.name or ""),
        input=value,
    )


def tool_use_id(message_id: str, index: int) -> str:
    """A stable id for a tool call the upstream sent without one."""
    return f"toolu_{message_id.removeprefix('msg_')}_{index}"


def stop_reason_for(
    finish_reason: str | None, has_tools: bool, text_tail: str, ctx: RequestContext
) -> tuple[str, str | None]:
    """Anthropic (stop_reason, stop_sequence) for an OpenAI finish_reason."""
    if has_tools and finish_reason in (None, "stop", "tool_calls", "function_call"):
        return "tool_use", None  # some servers answer tool calls with finish_reason "stop"
    reason = _FINISH.get(finish_reason or "stop", "end_turn")
    if reason == "end_turn" and ctx.stop_sequences:
        for seq in ctx.stop_sequences:
            if seq and text_tail.endswith(seq):
                return "stop_sequence", seq
    return reason, None


def anthropic_usage(usage: C.ChatUsage | None, *, fallback_input: int, fallback_output: int) -> A.Usage:
    """Anthropic usage: input excludes cached tokens, which are reported as cache reads."""
    if usage is None:
        return A.Usage(input_tokens=fallback_input, output_tokens=fallback_output)
    prompt = usage.prompt_tokens or 0
    details = usage.prompt_tokens_details
    cached = (details.cached_tokens or 0) if details is not None else 0
    return A.Usage(
        input_tokens=max(prompt - cached, 0),
        output_tokens=usage.completion_tokens or 0,
        cache_read_input_tokens=cached,
    )
