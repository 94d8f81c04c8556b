"""Server-sent events framing: decoding upstream streams and encoding Anthropic events."""

from __future__ import annotations

import msgspec

from dragoman.protocols import anthropic as A

_encode = msgspec.json.encode

# The largest event an upstream may send, its lines held until the blank line that ends it: an upstream that
# never ends a line must not grow the gateway's memory without bound (a 100 MB line cost 273 MB of RSS). The
# largest legitimate events are Responses' response.completed, which repeats the whole output, instructions and
# tools: at ~4 bytes a token, ~0.6 MB for a 128k-token answer to Claude Code's 78 KB first turn; 4 MiB leaves room.
MAX_EVENT_BYTES = 4 << 20


class EventTooLarge(ValueError):
    """An upstream SSE event (or a line of it) grew past the decoder's limit."""


class SSEDecoder:
    """Incremental SSE parser: feed raw bytes as they arrive, get whole (event, data) frames back."""

    __slots__ = ("_buf", "_data", "_event", "_size", "_limit")

    def __init__(self, limit: int = MAX_EVENT_BYTES) -> None:
        self._buf = b""
        self._data: list[bytes] = []
        self._event: bytes | None = None
        self._size = 0  # bytes of data lines held for the event not yet ended
        self._limit = limit

    def feed(self, chunk: bytes) -> list[tuple[bytes | None, bytes]]:
        """The frames `chunk` completes; raises EventTooLarge when the event still open exceeds the limit."""
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
                    self._size = 0
                self._event = None
            elif line.startswith(b"data:"):
                self._data.append(line[6:] if line[5:6] == b" " else line[5:])
                self._size += len(line)
            elif line.startswith(b"event:"):
                self._event = line[6:].strip()
            # comments (":") and unknown fields are ignored, as the SSE spec says
        if self._size + len(self._buf) > self._limit:
            raise EventTooLarge(f"a stream event larger than the gateway's limit of {_size_text(self._limit)}")
        return frames

    def close(self) -> list[tuple[bytes | None, bytes]]:
        """Frames left when the stream ends without a final blank line."""
        frames = self.feed(b"\n\n") if (self._buf or self._data) else []
        self._buf = b""
        return frames


def _size_text(limit: int) -> str:
    return f"{limit >> 20} MiB" if limit >= 1 << 20 and not limit % (1 << 20) else f"{limit} bytes"


def _event_prefixes() -> dict[type, bytes]:
    kinds = (
        A.MessageStart, A.Ping, A.ContentBlockStart, A.ContentBlockDelta, A.ContentBlockStop,
        A.MessageDelta, A.MessageStop, A.Error,
    )
    return {kind: b"event: " + kind.__struct_config__.tag.encode() + b"\ndata: " for kind in kinds}  # type: ignore[union-attr]


_PREFIX = _event_prefixes()


def encode_events(events: list[A.StreamEvent]) -> bytes:
    """Anthropic stream events as one SSE byte string (the `event:` name equals the data's `type`)."""
    return b"".join(_PREFIX[type(ev)] + _encode(ev) + b"\n\n" for ev in events)
