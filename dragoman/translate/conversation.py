"""The conversation walk: an Anthropic request's system prompt and messages, read once, as protocol-neutral
turns that `chat.request` and `responses.request` render into their wire shapes.

The rules every upstream shares live here once: system text keeps its place; each assistant turn's tool
calls are answered, in the calls' order, before anything else is said (a result whose call is gone is sent
as text; a call left unanswered gets `NO_RESULT`, since OpenAI rejects calls without results on Chat and
Responses alike); a part no upstream can take is a 400 naming where it is. Pure: no I/O, no config, no clock.
"""

from __future__ import annotations

from typing import Iterator

import msgspec

from dragoman.protocols import anthropic as A
from dragoman.translate.content import Part, Text, tool_result, user_part
from dragoman.translate.request_context import RequestContext
from dragoman.translate.request_errors import PartError

# What a tool call that got no result is answered with: both protocols reject a call left unanswered.
NO_RESULT = "[no result was returned for this tool call]"
_encode = msgspec.json.encode

# The turns are Structs rather than NamedTuples: a few per message on the hot path, a Struct is built in ~30 ns,
# a NamedTuple in ~200 ns (measured).


class System(msgspec.Struct, gc=False):
    """System text: the request's prompt (`prompt`), or a system message kept at its place in the conversation."""

    text: str
    prompt: bool


class Results(msgspec.Struct, gc=False):
    """The answers to the previous assistant turn's calls, one per call in the calls' order (Claude Code answers
    parallel calls in completion order; strict servers expect the calls' order): (call id, text)."""

    results: list[tuple[str, str]]


class User(msgspec.Struct, gc=False):
    """What a user says: its text, images and documents, after the results of its turn."""

    parts: list[Part]


class ToolCall(msgspec.Struct, gc=False):
    id: str
    name: str  # the upstream's name for the tool
    arguments: str  # the input as the JSON text OpenAI's calls carry


class Assistant(msgspec.Struct, gc=False):
    """An assistant turn's pieces in block order: runs of text (adjacent text blocks joined), tool calls, and the
    thinking / redacted_thinking blocks as sent (what an upstream can do with them differs)."""

    pieces: list[Text | ToolCall | A.ContentBlock]


Turn = System | Results | User | Assistant


def conversation(req: A.MessagesRequest, ctx: RequestContext, loaded: set[str]) -> Iterator[Turn]:
    """The request's turns in order: its system prompt, then its messages. On the way, the deferred tools the
    conversation loaded (tool_reference blocks in tool results) are added to `loaded`: they are offered."""
    text = system_text(req.system, ctx) if req.system else ""
    if ctx.system_prefix:  # the route's prompt-prefix variant (the correctness loop's choice) comes first
        text = f"{ctx.system_prefix}\n\n{text}" if text else ctx.system_prefix
    if text:
        yield System(text, True)
    open_calls: list[str] = []  # ids of the last assistant turn's calls still waiting for results
    for i, msg in enumerate(req.messages):
        role, content = msg.role, msg.content
        try:
            if role == "user":
                if isinstance(content, str):
                    if open_calls:
                        yield _unanswered(open_calls, ctx)
                    yield User([Text(content)])
                else:
                    results, parts = _user_turn(content, open_calls, ctx, loaded)
                    if results:
                        yield Results(results)
                    if parts:
                        yield User(parts)
                open_calls = []
            elif role == "assistant":
                if open_calls:
                    yield _unanswered(open_calls, ctx)
                pieces = _assistant(content, ctx)
                open_calls = [piece.id for piece in pieces if type(piece) is ToolCall]
                if pieces:
                    yield Assistant(pieces)
            elif role == "system":
                # Claude Code >= 2.1 sends system messages mid-conversation: they keep their place.
                if open_calls:
                    yield _unanswered(open_calls, ctx)
                    open_calls = []
                text = system_text(content, ctx)
                if text:
                    yield System(text, False)
            else:
                raise PartError(f"unknown role {role!r} (expected user, assistant or system)", "role")
        except PartError as exc:
            raise exc.within("messages", i).refusal() from None
    if open_calls:
        yield _unanswered(open_calls, ctx)


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


def _unanswered(open_calls: list[str], ctx: RequestContext) -> Results:
    # OpenAI rejects a call without its result ("assistant message with 'tool_calls' must be followed by tool
    # messages", openai/codex#8638; Responses: "No tool output found for function call …").
    ctx.note("missing tool_result filled in")
    return Results([(call_id, NO_RESULT) for call_id in open_calls])


def _assistant(content: str | list[A.ContentBlock], ctx: RequestContext) -> list[Text | ToolCall | A.ContentBlock]:
    if isinstance(content, str):
        return [Text(content)] if content else []
    pieces: list[Text | ToolCall | A.ContentBlock] = []
    texts: list[str] = []
    for j, block in enumerate(content):
        kind = block.type
        if block.cache_control is not None:
            ctx.note("cache_control dropped")
        if kind == "text":
            if block.text is None:
                raise PartError("text block has no text", "content", j)  # the SDK's TextBlockParam requires it
            if block.text:
                texts.append(block.text)
            continue
        if texts:  # text before a call or a thinking block stays before it
            pieces.append(Text("\n\n".join(texts)))
            texts = []
        if kind == "tool_use":
            if not block.id or not block.name:
                # The id pairs the call with its result (OpenAI rejects calls without one on both protocols); the
                # SDK's ToolUseBlockParam requires both, and no client sends a call without them.
                raise PartError(f"tool_use block has no {'id' if not block.id else 'name'}", "content", j)
            arguments = _encode(block.input if block.input is not None else {}).decode()
            pieces.append(ToolCall(block.id, ctx.tool_names.upstream(block.name), arguments))
        elif kind == "thinking" or kind == "redacted_thinking":
            pieces.append(block)
        else:
            ctx.note(f"assistant {kind} block dropped")
    if texts:
        pieces.append(Text("\n\n".join(texts)))
    return pieces


def _user_turn(
    content: list[A.ContentBlock], open_calls: list[str], ctx: RequestContext, loaded: set[str]
) -> tuple[list[tuple[str, str]], list[Part]]:
    """(results, parts): one result per open call in the calls' order, then what the user says: the results'
    attachments first, then the turn's other blocks."""
    texts: dict[str, str] = {}
    attachments: list[Part] = []
    parts: list[Part] = []
    waiting = set(open_calls)  # looked up per result: a list's scan made N results of N calls quadratic
    for j, block in enumerate(content):
        if block.cache_control is not None:
            ctx.note("cache_control dropped")
        try:
            if block.type == "tool_result":
                call_id = block.tool_use_id or ""
                text, extra = tool_result(block, ctx, loaded)
                if call_id in waiting and call_id not in texts:
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
        except PartError as exc:
            raise exc.within("content", j) from None
    if len(texts) < len(open_calls):
        ctx.note("missing tool_result filled in")
    results = [(call_id, texts.get(call_id, NO_RESULT)) for call_id in open_calls]
    return results, (attachments + parts if attachments else parts)
