"""The 400 for a request part no upstream can take: what is wrong, then where, as msgspec says it.

msgspec's own validation errors end with the part's JSON path (`Expected int, got str - at $.max_tokens`);
the translators' errors end the same way, so a client reads one format whichever layer refused its request.
"""

from __future__ import annotations

from dragoman.errors import InvalidRequest


def invalid(message: str, *path: str | int) -> InvalidRequest:
    """The InvalidRequest for the part at `path` (keys and indices from the request's root)."""
    return InvalidRequest(f"{message} - at `{json_path(path)}`")


def json_path(path: tuple[str | int, ...]) -> str:
    """`$.messages[3].content[1]` for ("messages", 3, "content", 1)."""
    return "$" + "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in path)


class PartError(Exception):
    """A content part that cannot be sent, raised where the part is read; the loops that know where the part
    sits add their steps on the way out (`within`), and the conversation walk turns it into `invalid`.
    Nothing is built on the way in: the path costs only when a request is refused."""

    def __init__(self, message: str, *path: str | int) -> None:
        super().__init__(message)
        self.message = message
        self.path = path

    def within(self, *steps: str | int) -> PartError:
        self.path = steps + self.path
        return self

    def refusal(self) -> InvalidRequest:
        return invalid(self.message, *self.path)
