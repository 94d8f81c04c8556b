"""The turn shape: the coarse kind of request a score is kept for. A route can be fine for plain chat and broken
for tool calls, or for long inputs, or with thinking on; scores and demotions are per shape so one kind of turn
failing does not take a route away from the others.

A shape is a short stable string, `tools|32k|stream|think` style, cheap to build on the hot path from what the
request already says (no tokenizer: the size bucket is the exchange's input estimate)."""

from __future__ import annotations

from dragoman.protocols import anthropic as A

# Upper bounds of the size buckets, in estimated input tokens; the last bucket is open.
SIZE_BUCKETS: tuple[tuple[int, str], ...] = ((8_000, "8k"), (32_000, "32k"), (128_000, "128k"))
LARGEST = "huge"


def size_bucket(input_tokens: int) -> str:
    for bound, name in SIZE_BUCKETS:
        if input_tokens < bound:
            return name
    return LARGEST


def turn_shape(req: A.MessagesRequest, input_tokens: int) -> str:
    """`tools|8k|stream|think`: tools offered or `notools`, the input's size bucket, `stream` or `json`,
    thinking `think` or `nothink`. One of the few shapes there are, the same string object every time: the loop
    keeps a call's shape as long as it keeps the call, and a string per request would be kept with each."""
    thinking = req.thinking is not None and req.thinking.type != "disabled"
    return _SHAPES[(bool(req.tools), size_bucket(input_tokens), bool(req.stream), thinking)]


_SHAPES = {
    (tools, bucket, stream, thinking): (f"{'tools' if tools else 'notools'}|{bucket}|{'stream' if stream else 'json'}"
                                        f"|{'think' if thinking else 'nothink'}")
    for tools in (False, True) for bucket in (*(name for _, name in SIZE_BUCKETS), LARGEST)
    for stream in (False, True) for thinking in (False, True)
}
