"""Micro-benchmark (not a test): what the stream bridges cost per upstream chunk, the streaming hot path.

    python bench/bench_stream_bridges.py [--repeats N]

Each row replays one realistic upstream stream (rendered by the scripted upstreams of tests/upstreams) through a
fresh bridge, N times, and prints the median cost per upstream chunk/event: the bridge alone (chunks decoded
beforehand), and the relay (SSE bytes in, Anthropic SSE bytes out: what the proxy calls per read). Rows marked
`cut` give the request a visible max_tokens smaller than the upstream's budget (a reasoning model's floor), so
the client's max_tokens is applied to the output; the stream is the same.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dragoman.exchange.dialects.chat import chat_relay  # noqa: E402
from dragoman.exchange.dialects.responses import responses_relay  # noqa: E402
from dragoman.protocols import openai_chat as C  # noqa: E402
from dragoman.protocols import openai_responses as R  # noqa: E402
from dragoman.translate.chat.stream import ChatStreamBridge  # noqa: E402
from dragoman.translate.request_context import RequestContext  # noqa: E402
from dragoman.translate.responses.stream import ResponsesStreamBridge  # noqa: E402
from dragoman.translate.tool_names import ToolNameMap  # noqa: E402
from tests.upstreams.openai_chat import ChatReply, render_chunks  # noqa: E402
from tests.upstreams.openai_responses import ResponsesReply, render_events, sse_events  # noqa: E402

KEY = b"bench-key"
TEXT = "The quick brown fox jumps over the lazy dog. " * 40  # ~1800 characters, ~450 tokens
ARGS = '{"file_path": "/src/app/main.py", "offset": 120, "limit": 400}'


def _ctx(cut: bool) -> RequestContext:
    ctx = RequestContext(message_id="msg_bench", requested_model="claude-x", tool_names=ToolNameMap(64), max_tokens=32000)
    if cut:
        # A Claude Code haiku-style call with a small max_tokens on a reasoning model raised to 1024; big
        # enough that the text is not cut early, so the whole stream is bridged.
        ctx.max_tokens, ctx.visible_max_tokens = 1024, 1000
    return ctx


def _chat_sse(reply: ChatReply) -> list[bytes]:
    chunks = render_chunks(reply)
    return [b"data: " + msgspec.json.encode(c) + b"\n\n" for c in chunks] + [b"data: [DONE]\n\n"]


def _median_per_item(run: Callable[[], int], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        began = time.perf_counter_ns()
        items = run()
        samples.append((time.perf_counter_ns() - began) / items)
    return statistics.median(samples)


def interleaved(size: int, fragment: int) -> list[dict]:
    """Two Write calls, their arguments ~`size` characters each, that a server interleaves `fragment` characters a
    chunk (one of each call's in turn): the Chat bridge holds the second until the first is whole."""
    texts = [msgspec.json.encode({"file_path": f"/src/{n}.py", "content": n * size}).decode() for n in "ab"]
    chunks = [{"choices": [{"index": 0, "delta": {"tool_calls": [{"index": i, "id": f"call_{i}", "type": "function",
                                                                  "function": {"name": "Write", "arguments": ""}}]}}]}
              for i in range(2)]
    for at in range(0, len(texts[0]), fragment):
        for i, text in enumerate(texts):
            piece = {"index": i, "function": {"arguments": text[at : at + fragment]}}
            chunks.append({"choices": [{"index": 0, "delta": {"tool_calls": [piece]}}]})
    return chunks + [{"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}]


def many_calls(count: int) -> list[dict]:
    """`count` whole Read calls, one a chunk: the bridge's cost per chunk must not grow with the calls before it."""
    chunks = [{"choices": [{"index": 0, "delta": {"tool_calls": [{"index": i, "id": f"call_{i}", "type": "function",
               "function": {"name": "Read", "arguments": ARGS}}]}}]} for i in range(count)]
    return chunks + [{"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}]


def chat_bridge(reply: ChatReply | list[dict], cut: bool) -> Callable[[], int]:
    given = render_chunks(reply) if isinstance(reply, ChatReply) else reply
    chunks = [msgspec.convert(c, C.ChatChunk) for c in given]

    def run() -> int:
        bridge = ChatStreamBridge(_ctx(cut))
        for chunk in chunks:
            bridge.on_chunk(chunk)
        bridge.on_done()
        return len(chunks) + 1

    return run


def responses_bridge(reply: ResponsesReply, cut: bool) -> Callable[[], int]:
    events = [R.decode_event(msgspec.json.encode(e), e["type"].encode()) for e in render_events(reply)]

    def run() -> int:
        bridge = ResponsesStreamBridge(_ctx(cut), KEY)
        for event in events:
            bridge.on_event(event)  # type: ignore[arg-type]
        return len(events)

    return run


def relay(make: Callable[[RequestContext], Any], frames: list[bytes], cut: bool) -> Callable[[], int]:
    def run() -> int:
        r = make(_ctx(cut))
        for frame in frames:
            r.feed(frame)
        r.eof()
        return len(frames)

    return run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=400)
    args = parser.parse_args()
    text = ChatReply(text=TEXT, pieces=200, usage=(10, 450, 0))
    tools = ChatReply(text="Reading both.", tool_calls=[("call_1", "Read", ARGS), ("call_2", "Read", ARGS)], pieces=20)
    r_text = ResponsesReply(text=TEXT, reasoning="Thinking about it.", pieces=200)
    r_tools = ResponsesReply(text="Reading both.", function_calls=[("call_1", "Read", ARGS), ("call_2", "Read", ARGS)], pieces=20)
    rows: list[tuple[str, Callable[[], int]]] = []
    for cut in (False, True):
        tag = " cut" if cut else ""
        rows += [
            (f"chat bridge, text{tag}", chat_bridge(text, cut)),
            (f"chat bridge, tools{tag}", chat_bridge(tools, cut)),
            (f"chat relay, text{tag}", relay(lambda ctx: chat_relay(ctx, "bench"), _chat_sse(text), cut)),
            (f"responses bridge, text{tag}", responses_bridge(r_text, cut)),
            (f"responses bridge, tools{tag}", responses_bridge(r_tools, cut)),
            (f"responses relay, text{tag}", relay(lambda ctx: responses_relay(ctx, KEY, "bench"), sse_events(render_events(r_text)), cut)),
        ]
    # The cost of an interleaving server's stream per chunk, flat in the arguments' length (quadratic before: each
    # fragment of the held call decoded the open call's whole text; bench/RESULTS.md, "Interleaved calls, read once").
    rows += [(f"chat bridge, interleaved {size // 1000}k", chat_bridge(interleaved(size, 4), False))
             for size in (2_000, 20_000)]
    rows += [(f"chat bridge, {count:,} calls", chat_bridge(many_calls(count), False)) for count in (20, 2_000)]
    print(f"{'stream':32} {'ns per upstream chunk (median of ' + str(args.repeats) + ')':>40}")
    for name, run in rows:
        run()  # warm up
        print(f"{name:32} {_median_per_item(run, args.repeats):>40.0f}")


if __name__ == "__main__":
    main()
