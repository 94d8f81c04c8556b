"""Micro-benchmark (not a test): what reading an upstream's tool-call arguments costs (translate/tool_arguments.py).

    python bench/bench_tool_arguments.py [--repeats N]

The first rows are the hot path, every tool call of every answer: whole arguments as a Chat or Responses server
sends them (best of N, ns per call). The last rows are a bad upstream's: arguments a truncated answer left open,
1 MiB of them, repaired (best of N, ms per call, next to a plain decode of the same text).
"""

from __future__ import annotations

import argparse
import sys
import timeit
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dragoman.translate.tool_arguments import closing_fragment, parse_arguments  # noqa: E402

READ = '{"file_path": "/src/app/main.py", "offset": 120, "limit": 400}'
EDIT = msgspec.json.encode({"file_path": "/src/app/main.py", "old_string": "x = 1\n" * 70,
                            "new_string": "x = [2, {'a': 3}]\n" * 25}).decode()
WRITE = msgspec.json.encode({"file_path": "/src/app/page.tsx", "content": "<div>{items.map(i => [i])}</div>\n" * 600}).decode()
NESTED = msgspec.json.encode({"edits": [{"old": "a", "new": "b", "at": [i, i + 1]} for i in range(200)]}).decode()
MIB = (1 << 20) - 64  # just under the length past which a repair is refused
TRUNCATED = {
    "open string": '{"x": "' + "a" * MIB,
    "escaped quotes": '{"x": "' + 'say \\"hi\\" ' * (MIB // 11),
    "open brackets": '{"x": ' + "[" * MIB,
    "many pairs": '{"x": [' + "[]," * (MIB // 3),
    "many keys": '{"x": 1, ' + '"k": 1, ' * (MIB // 8),
    "nested pairs": '{"x": [' + "[[[[]]]]," * (MIB // 9),
}


def _best(call, repeats: int, number: int) -> float:  # noqa: ANN001
    return min(timeit.repeat(call, number=number, repeat=repeats)) / number


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for label, text in [("Read", READ), ("Edit", EDIT), ("nested", NESTED), ("Write", WRITE)]:
        ns = 1e9 * _best(lambda: parse_arguments(text), args.repeats, 2000)
        print(f"parse_arguments {label:8s} {len(text):>6,} chars  {ns:>9,.0f} ns")
    for label, text in [("Read", READ), ("nested", NESTED)]:
        as_object = msgspec.json.decode(text)
        ns = 1e9 * _best(lambda: parse_arguments(as_object), args.repeats, 2000)
        print(f"parse_arguments {label + ', as an object':24s} {ns:>9,.0f} ns")
    for label, text in TRUNCATED.items():
        parse = 1e3 * _best(lambda: parse_arguments(text), args.repeats, 1)
        close = 1e3 * _best(lambda: closing_fragment(text, False), args.repeats, 1)

        def decode() -> None:
            try:
                msgspec.json.decode(text)
            except (msgspec.DecodeError, RecursionError):
                pass

        plain = 1e3 * _best(decode, args.repeats, 1)
        print(f"truncated {label:14s} 1 MiB: parse_arguments {parse:6.1f} ms, closing_fragment {close:6.1f} ms"
              f" (a decode alone {plain:5.1f} ms)")


if __name__ == "__main__":
    main()
