"""Server-sent events framing: decoding upstream streams and encoding Anthropic events."""

from __future__ import annotations

import msgspec

from dragoman.protocols import anthropic as A

_encode = msgspec.json.encode


class SSEDecoder:
    """Incremental SSE parser: feed raw bytes as they arrive, get whole (event, data) frames back."""

    __slots__ = ("_buf", "_data", "_event")

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[bytes] = []
        self._event: bytes | None = None

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
            # comments (":") and unknown fields are ignored, as the SSE spec says
        return frames

    def close(self) -> list[tuple[bytes | None, bytes]]:
        """Frames left when the stream ends without a final blank line."""
        frames = self.feed(b"\n\n") if (self._buf or self._data) else []
        self._buf = b""
        return frames


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
