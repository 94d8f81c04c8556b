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


Frame = tuple[bytes | None, bytes]


class SSEDecoder:
    """Incremental SSE parser: feed raw bytes as they arrive, get whole (event, data) frames back, and
    `event_end`: where in the bytes just fed the last event that ended in them stops (a relay cuts there)."""

    __slots__ = ("_line", "_data", "_event", "_size", "_limit", "_after_cr", "_error_lines", "event_end")

    def __init__(self, limit: int = MAX_EVENT_BYTES, error_lines: bool = False) -> None:
        # The line not yet ended, in the pieces it came in: joined once, when it ends, so a long line arriving in
        # many reads costs each read its own bytes, not a copy of the line so far.
        self._line: list[bytes] = []
        self._data: list[bytes] = []
        self._event: bytes | None = None
        # Bytes of the event not yet ended, every line counted (comments, event:, id:, line ends too): an upstream
        # sending endless comment lines with no blank line between them is held to the limit like one long line.
        self._size = 0
        self._limit = limit
        self._after_cr = False  # the last bytes ended with CR: an LF first in the next ones is that CRLF's end
        self.event_end = 0  # in the bytes last fed, just past the blank line that ended the last event (0: none)
        # llama.cpp's server writes a failure mid-stream as an `error: {...}` line, not `data:` (its server_sent_event
        # with the event "error"), then `data: [DONE]`: read as an `error` event holding that data, the failure is not
        # lost to a clean end. Not a field the SSE spec knows, so only a relay that asks for it reads it.
        self._error_lines = error_lines

    def feed(self, chunk: bytes) -> list[Frame]:
        """The frames `chunk` completes; raises EventTooLarge when the event still open exceeds the limit."""
        if not chunk:  # nothing to read, and a CRLF cut before it is still waiting for its LF
            self.event_end = 0
            return []
        # `13 in chunk` (an int: a memchr, ~20 ns) rather than `b"\r" in chunk` (~160 ns for a 180-byte chunk).
        if 13 in chunk or self._after_cr:
            lines, end = self._split_cr(chunk)
        else:  # LF alone, as OpenAI and Anthropic send: last_event_end's rule with only "\n\n" to find
            lines = chunk.split(b"\n")
            found = chunk.rfind(b"\n\n")
            end = found + 2 if found >= 0 else int(chunk[:1] == b"\n" and not self._line)
        rest = lines.pop()
        frames: list[Frame] = []
        if lines and self._line:
            lines[0] = b"".join(self._line) + lines[0]
            self._line = []
        for line in lines:
            if not line:
                if self._data:
                    frames.append((self._event, b"\n".join(self._data)))
                    self._data = []
                self._event = None
            elif line.startswith(b"data:"):
                self._data.append(line[6:] if line[5:6] == b" " else line[5:])
            elif line.startswith(b"event:"):
                self._event = line[6:].strip()
            elif self._error_lines and line.startswith(b"error:"):  # met only on lines neither data nor event
                self._event = b"error"
                self._data.append(line[7:] if line[6:7] == b" " else line[6:])
            # comments (":") and unknown fields are ignored, as the SSE spec says
        if rest:
            self._line.append(rest)
        self.event_end = end
        self._size = len(chunk) - end if end else self._size + len(chunk)
        if self._size > self._limit:
            raise EventTooLarge(f"a stream event larger than the gateway's limit of {_size_text(self._limit)}")
        return frames

    def close(self) -> list[Frame]:
        """Frames left when the stream ends without a final blank line."""
        frames = self.feed(b"\n\n") if (self._line or self._data) else []
        self._line = []
        return frames

    def _split_cr(self, chunk: bytes) -> tuple[list[bytes], int]:
        """`chunk`'s lines, whatever ends them (the last not ended yet), and where its last blank line ends."""
        start = 1 if self._after_cr and chunk[:1] == b"\n" else 0  # a CRLF cut between two reads: one line end
        self._after_cr = chunk[-1:] == b"\r"
        text = chunk[start:] if start else chunk
        lines = text.splitlines()  # at CRLF, LF and CR: ASCII line boundaries, all of SSE's
        if text[-1:] in (b"\r", b"\n", b""):
            lines.append(b"")  # ended at a line end: no line is left open
        end = last_event_end(text, at_line_start=not self._line)
        return lines, end + start if end else 0


# How bytes that end with a blank line can end: its line end (LF, CR, CRLF) after another one's last byte.
_BLANK_LINE_TAILS = (b"\n\n", b"\n\r", b"\r\r", b"\n\r\n", b"\r\r\n")


def last_event_end(data: bytes, at_line_start: bool = False) -> int:
    """Where the last blank line in `data` ends (0: none does), whatever ends its lines. A blank line's end
    follows another line end, so it begins at the second byte of the last "\\n\\n", "\\n\\r" or "\\r\\r" (an LF
    after a CR is that CRLF's end, never a line end of its own), or at data's first byte when `at_line_start`."""
    if data.endswith(_BLANK_LINE_TAILS):  # the usual read, whole events: no search
        return len(data)
    at = max(data.rfind(b"\n\n"), data.rfind(b"\n\r"), data.rfind(b"\r\r")) + 1
    if not at and not (at_line_start and data[:1] in (b"\n", b"\r")):
        return 0
    return at + 2 if data[at : at + 2] == b"\r\n" else at + 1


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
