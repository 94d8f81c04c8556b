"""Micro-benchmark (not a test): what bounding a request's nesting costs per request, on the 78 KB Claude Code
body, against the alternatives that scan the raw bytes.

    python bench/bench_json_depth.py [--samples N] [--fixture PATH]

Rows: the plain msgspec decode; `json_depth.decode` (the same decode HEADROOM frames deeper, what the server
runs); the headroom alone; then what a pre-scan of the bytes would add before the decode: counting brackets
(the cheapest possible upper bound), keeping only brackets, quotes and backslashes with bytes.translate (the
first step of an exact scan), and stripping strings with a regex (the step an exact scan cannot skip). Last,
one call of ContentBlock.__post_init__, which msgspec makes per decoded block (the source-shape check).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from dragoman.protocols import json_depth
from dragoman.protocols.anthropic import ContentBlock, MessagesRequest

from bench_policy import FIXTURE, percentiles  # noqa: I001 - run as a script from bench/, like bench_policy

_KEEP = b'[]{}"\\'
_DELETE = bytes(b for b in range(256) if b not in _KEEP)
_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5_000)
    parser.add_argument("--fixture", type=Path, default=FIXTURE)
    args = parser.parse_args()
    n, fixture = args.samples, args.fixture
    raw = fixture.read_bytes()
    decode = msgspec.json.Decoder(MessagesRequest).decode
    block = ContentBlock(type="text", text="hi")
    rows: list[tuple[str, Callable[[], Any]]] = [
        ("msgspec decode", lambda: decode(raw)),
        ("json_depth.decode (decode + headroom)", lambda: json_depth.decode(decode, raw)),
        (f"headroom alone ({json_depth.HEADROOM} frames)", lambda: json_depth._deeper(json_depth.HEADROOM, len, raw)),
        ("scan: count [ and {", lambda: raw.count(b"[") + raw.count(b"{")),
        ("scan: bytes.translate to brackets", lambda: raw.translate(None, _DELETE)),
        ("scan: regex strip strings", lambda: _STRINGS.sub(b"", raw)),
        ("ContentBlock.__post_init__ (per block)", block.__post_init__),
    ]
    print(f"fixture {fixture.name}: {len(raw)} bytes")
    print(f"{'':42} {'p50 us':>8} {'p95 us':>8}   ({n} samples each)")
    for label, fn in rows:
        p50, p95 = percentiles(fn, n)
        print(f"{label:42} {p50:8.2f} {p95:8.2f}")


if __name__ == "__main__":
    main()
