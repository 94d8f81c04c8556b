"""How deeply a request body may nest arrays and objects: deeper is a client error (400), never a crash.

msgspec follows nesting by C recursion guarded only by CPython's recursion limit, counted from the caller's
own stack depth (the maintainers leave it there: msgspec/msgspec#1033). Called plainly from the server it
stopped at ~980 levels with a RecursionError (a 500), and the walks after the decode (translation,
re-encoding for the upstream, the passthrough's re-decode) run a few frames deeper on the same stack, so a
body the decode had just accepted could overflow there: a tool `input_schema` nested 978 deep passed the
decode and failed the translation. `decode` therefore runs the decoder HEADROOM frames deeper than its
caller, so whatever it accepts leaves every later walk that much stack, and turns RecursionError into
TooDeep. (Measured on CPython 3.11, where Python frames count toward the limit msgspec checks; from 3.12 they
count only toward Python's own, so the headroom may reserve less there: the nesting tests pin the behaviour.)

That costs ~1 µs a request (32 Python calls), next to ~82 µs for decoding the 78 KB Claude Code body. A
pre-scan of the raw bytes costs more than it saves: ~46 µs only to count the brackets, ~300 µs to strip the
strings an exact count must skip (bench/bench_json_depth.py).

The limit is ~949 levels from the server, one less when a body arrives after its headers (the server then
decodes one frame deeper); TooDeep names the limit that applied.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import msgspec

T = TypeVar("T")

# Frames kept free for the walks after the decode; they ran at most 2 frames deeper when measured.
HEADROOM = 32
_probe = msgspec.json.Decoder().decode


class TooDeep(ValueError):
    """The body nests arrays and objects deeper than `limit` levels."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body nests arrays and objects more than {limit} levels deep, the gateway's limit")
        self.limit = limit


def decode(decoder: Callable[[bytes], T], body: bytes) -> T:
    """`decoder(body)`, with a too deep body raised as TooDeep instead of RecursionError."""
    try:
        return _deeper(HEADROOM, decoder, body)
    except RecursionError:
        pass
    raise TooDeep(_deepest_accepted())


def _deeper(frames: int, decoder: Callable[[bytes], T], body: bytes) -> T:
    return decoder(body) if frames <= 0 else _deeper(frames - 1, decoder, body)


def _deepest_accepted() -> int:
    """The deepest nesting `decode` accepts, probed from `decode`'s stack depth (one frame below us)."""
    # Only refused bodies pay for this (~20 small decodes). Probing beats arithmetic on the recursion limit:
    # how msgspec's guard counts depends on the Python version (Python frames stopped counting in 3.12).
    def accepted(depth: int) -> bool:
        try:
            _deeper(HEADROOM - 2, _probe, b"[" * depth + b"]" * depth)  # -2: this frame and accepted()'s
        except RecursionError:
            return False
        return True

    low, high = 1, 64
    while accepted(high):
        low, high = high, high * 2
    while high - low > 1:  # accepted(low), not accepted(high)
        middle = (low + high) // 2
        low, high = (middle, high) if accepted(middle) else (low, middle)
    return low
