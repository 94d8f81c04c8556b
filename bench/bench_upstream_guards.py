"""Micro-benchmark (not a test): what the upstream hardening adds to each request and each stream chunk.

    python bench/bench_upstream_guards.py [--samples N]

Rows, each against what it replaced:
- inbound key lookup: `KeyTable.lookup` (keyed BLAKE2s of the presented key, then a dict access) vs `dict.get`,
  and what HMAC-SHA256 would cost instead;
- the client-disconnect watch of a non-streamed request: a watcher task on an ASGI receive that never fires,
  `_unless_gone(work)`, the task's cancellation, vs awaiting `work` plainly (streams already had the watcher);
- the content-type check of an upstream's answer (aiohttp's parsed, cached content_type);
- SSE decoding of the `stream` scenario's 63 Chat chunks, one feed per chunk, with the event-size bound, vs the
  same decoder without it (a copy of the old feed), per chunk.
Each sample times one call with perf_counter_ns (~50-100 ns of timer overhead included); p50 and p95 printed.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import os
import time
from collections.abc import Callable
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy

from bench_policy import percentiles  # bench/ is on the path: these scripts run as `python bench/…`
from dragoman.key_table import KeyTable
from dragoman.protocols.sse import SSEDecoder
from dragoman.http_io import unless_gone as _unless_gone
from dragoman.upstreams.client import _content_type_ok


def _async_percentiles(make: Callable[[], Any], samples: int) -> tuple[float, float]:
    async def run() -> tuple[float, float]:
        clock = time.perf_counter_ns
        times = []
        for i in range(samples + min(samples, 2000)):
            start = clock()
            await make()
            if i >= min(samples, 2000):
                times.append(clock() - start)
        times.sort()
        return times[len(times) // 2] / 1000, times[int(len(times) * 0.95)] / 1000

    return asyncio.run(run())


async def _never_disconnects() -> dict:
    await asyncio.Event().wait()
    return {"type": "http.disconnect"}


async def _work() -> int:
    await asyncio.sleep(0)  # one loop turn, as an upstream call has many
    return 1


async def _watched() -> int:
    async def wait_disconnect() -> None:
        while (await _never_disconnects())["type"] != "http.disconnect":
            pass

    gone = asyncio.ensure_future(wait_disconnect())
    try:
        return await _unless_gone(_work(), gone)
    finally:
        gone.cancel()


class _OldDecoder(SSEDecoder):
    """SSEDecoder.feed as it was before the bound (a frozen copy, on purpose): the baseline of the per-chunk row."""

    def __init__(self) -> None:
        super().__init__()
        self._buf = b""  # the old decoder's held line (the current one holds it as pieces)

    def feed(self, chunk: bytes) -> list[tuple[bytes | None, bytes]]:
        buf = self._buf + chunk if self._buf else chunk
        lines = buf.split(b"\n")
        self._buf = lines.pop()
        frames: list[tuple[bytes | None, bytes]] = []
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if self._data:
                    frames.append((self._event, b"\n".join(self._data)))
                    self._data = []
                self._event = None
            elif line.startswith(b"data:"):
                self._data.append(line[6:] if line[5:6] == b" " else line[5:])
            elif line.startswith(b"event:"):
                self._event = line[6:].strip()
        return frames


def _stream_chunks() -> list[bytes]:
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-5", "choices": []}
    chunks = [{**base, "choices": [{"index": 0, "delta": {"content": f" tok{i}"}, "finish_reason": None}]}
              for i in range(61)]
    chunks.append({**base, "usage": {"prompt_tokens": 10, "completion_tokens": 60}})
    return [b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks] + [b"data: [DONE]\n\n"]


def _decode_all(kind: type[SSEDecoder], chunks: list[bytes]) -> Callable[[], None]:
    def run() -> None:
        decoder = kind()
        for chunk in chunks:
            decoder.feed(chunk)

    return run


class _Resp:
    def __init__(self, content_type: str) -> None:
        self.headers = CIMultiDictProxy(CIMultiDict({"Content-Type": content_type}))
        self.content_type = content_type.split(";")[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=20000)
    n = parser.parse_args().samples
    keys = {f"sk-team-{i:04d}-{'x' * 24}": object() for i in range(100)}
    table, plain, mac_key = KeyTable(keys), dict(keys), os.urandom(32)
    presented = "sk-team-0042-" + "x" * 24
    chunks = _stream_chunks()
    resp = _Resp("text/event-stream; charset=utf-8")
    rows = [
        ("key lookup, keyed BLAKE2s (KeyTable.lookup)", percentiles(lambda: table.lookup(presented), n)),
        ("key lookup, were it HMAC-SHA256", percentiles(lambda: plain.get(hmac.digest(mac_key, presented.encode(), "sha256")), n)),
        ("key lookup, dict.get (before)", percentiles(lambda: plain.get(presented), n)),
        ("content-type check of an answer", percentiles(lambda: _content_type_ok(resp, True), n)),  # type: ignore[arg-type]
        ("await work, watched for a disconnect", _async_percentiles(_watched, n)),
        ("await work, plainly (before)", _async_percentiles(_work, n)),
        (f"SSE decode, {len(chunks)} chunks, bounded", percentiles(_decode_all(SSEDecoder, chunks), n // 10)),
        (f"SSE decode, {len(chunks)} chunks, unbounded (before)", percentiles(_decode_all(_OldDecoder, chunks), n // 10)),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"{'':{width}}  p50 µs   p95 µs")
    for name, (p50, p95) in rows:
        print(f"{name:{width}}  {p50:7.2f}  {p95:7.2f}")
    print(f"({n} samples per row, SSE rows {n // 10})")


if __name__ == "__main__":
    main()
