"""Micro-benchmark (not a test): the route choice a policy adds to each request, on the 78 KB Claude Code body.

    python bench/bench_policy.py [--samples N]

Rows: feature extraction alone; the seed policy's decide() on ready features; the whole route choice
(extract_features + decide, lazy features computed); the same plus building the header dict from ASGI's
header list; and the whole choice on a synthetic 400-message conversation, where the has_images /
input_tokens scan walks every block. Target: the whole choice <= 50 us p50. Each sample times one call with
perf_counter_ns (~50-100 ns of timer overhead included). Request decoding is not included: the server decodes
the body anyway.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from dragoman.protocols.anthropic import MessagesRequest
from dragoman.policy.features import RequestFeatures, extract_features
from dragoman.policy.language import compile_policy

FIXTURE = Path(__file__).resolve().parents[1] / "tests/fixtures/claude_code/claude_code_2.1.197_first_turn.json"
SEED = """\
if input_tokens < 8000 and tool_call_count <= 2:
  route gpt-5-mini-via-gateway
elif input_tokens < 60000:
  route gpt-5-via-gateway
else:
  route claude-opus-fallback
"""
ASGI_HEADERS = [
    (b"host", b"127.0.0.1:8080"),
    (b"content-type", b"application/json"),
    (b"x-api-key", b"sk-team-1"),
    (b"anthropic-version", b"2023-06-01"),
    (b"anthropic-beta", b"claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27"),
    (b"user-agent", b"claude-cli/2.1.197 (external, cli)"),
    (b"x-app", b"cli"),
    (b"x-stainless-lang", b"js"),
    (b"x-stainless-package-version", b"0.60.0"),
    (b"accept", b"application/json"),
    (b"content-length", b"82369"),
]


def percentiles(fn: Callable[[], Any], samples: int) -> tuple[float, float]:
    """(p50, p95) in µs of `fn()` over `samples` calls, after a warm-up, with the GC off."""
    for _ in range(min(samples, 2000)):  # warm caches and the specialising interpreter
        fn()
    clock = time.perf_counter_ns
    times = []
    gc.disable()  # a collection inside one sample is noise, not the cost of routing
    try:
        for _ in range(samples):
            start = clock()
            fn()
            times.append(clock() - start)
    finally:
        gc.enable()
    cuts = statistics.quantiles(times, n=100)
    return cuts[49] / 1000, cuts[94] / 1000


def _long_conversation(req: MessagesRequest) -> tuple[MessagesRequest, int]:
    turn = [
        {"role": "assistant", "content": [{"type": "text", "text": "Reading."}]
         + [{"type": "tool_use", "id": f"t{i}", "name": "Read", "input": {"file_path": f"/p/{i}.py"}} for i in range(3)]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"t{i}", "content": "x = 1\n" * 40}
                                     for i in range(3)]},
    ]  # fmt: skip
    body = msgspec.json.decode(msgspec.json.encode(req))  # a tool schema is JSON text (msgspec.Raw): encode, not to_builtins
    body["messages"] = body["messages"][:1] + turn * 200
    raw = msgspec.json.encode(body)
    return msgspec.json.decode(raw, type=MessagesRequest), len(raw)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=50_000)
    n = parser.parse_args().samples
    raw = FIXTURE.read_bytes()
    req = msgspec.json.decode(raw, type=MessagesRequest)
    size = len(raw)
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in ASGI_HEADERS}
    policy = compile_policy("cost_aware_routing", SEED)
    ready = extract_features(req, size, headers)
    ready.input_tokens, ready.tool_call_count  # noqa: B018 - compute the lazy features once
    long_req, long_size = _long_conversation(req)

    def asgi_choice() -> Any:
        h = {k.decode("latin-1"): v.decode("latin-1") for k, v in ASGI_HEADERS}
        return policy.decide(extract_features(req, size, h))

    rows: list[tuple[str, Callable[[], Any]]] = [
        ("extract_features (lazy parts not yet read)", lambda: extract_features(req, size, headers)),
        ("decide on ready features", lambda: policy.decide(ready)),
        ("route choice: extract_features + decide", lambda: policy.decide(extract_features(req, size, headers))),
        ("route choice + header dict from ASGI list", asgi_choice),
        ("route choice, 401-message conversation", lambda: policy.decide(extract_features(long_req, long_size, {}))),
        ("RequestFeatures(**values) + decide (dry run)", lambda: policy.decide(RequestFeatures(input_tokens=9000))),
    ]
    decision = policy.decide(extract_features(req, size, headers))
    print(f"fixture {FIXTURE.name}: {size} bytes, {len(req.messages)} messages -> {decision}")
    print(f"long conversation: {long_size} bytes, {len(long_req.messages)} messages")
    print(f"{'':46} {'p50 us':>8} {'p95 us':>8}   ({n} samples each)")
    for label, fn in rows:
        p50, p95 = percentiles(fn, n)
        print(f"{label:46} {p50:8.2f} {p95:8.2f}")


if __name__ == "__main__":
    main()
