"""Split `<think>…</think>` text, which reasoning models on OpenAI-compatible servers put in the visible
answer, into thinking and text. One splitter serves the JSON and the streamed paths."""

from __future__ import annotations

_OPEN = "<think>"
_CLOSE = "</think>"


class ThinkTagSplitter:
    """Feed text pieces; get (kind, text) pieces back, kind "thinking" or "text". Tags may span pieces."""

    __slots__ = ("_state", "_held")

    def __init__(self) -> None:
        self._state = "start"  # start → (thinking → after →) text
        self._held = ""

    def feed(self, piece: str) -> list[tuple[str, str]]:
        if self._state == "text":
            return [("text", piece)] if piece else []
        if self._state == "after":  # the newlines after </think> may come in later pieces: drop them there too
            piece = piece.lstrip("\n")
            if not piece:
                return []
            self._state = "text"
            return [("text", piece)]
        buf = self._held + piece
        self._held = ""
        if self._state == "start":
            stripped = buf.lstrip()
            if _OPEN.startswith(stripped):  # not enough text yet to tell
                self._held = buf
                return []
            if not stripped.startswith(_OPEN):
                self._state = "text"
                return [("text", buf)]
            self._state = "thinking"
            buf = stripped[len(_OPEN):]
        return self._feed_thinking(buf)

    def _feed_thinking(self, buf: str) -> list[tuple[str, str]]:
        end = buf.find(_CLOSE)
        if end >= 0:
            out = [("thinking", buf[:end])] if end else []
            rest = buf[end + len(_CLOSE):].lstrip("\n")
            self._state = "text" if rest else "after"
            if rest:
                out.append(("text", rest))
            return out
        keep = _partial_suffix(buf, _CLOSE)
        self._held = buf[len(buf) - keep:] if keep else ""
        emit = buf[: len(buf) - keep]
        return [("thinking", emit)] if emit else []

    def flush(self) -> list[tuple[str, str]]:
        """At the end of the answer: whatever was held back is what it looked like."""
        held, self._held = self._held, ""
        if not held:
            return []
        return [("thinking" if self._state == "thinking" else "text", held)]


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `tag`."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0
