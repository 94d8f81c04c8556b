"""Reversible tool-name shortening: OpenAI caps function names at 64 characters; MCP tool names run longer."""

from __future__ import annotations

import hashlib


def shorten(name: str, limit: int) -> str:
    """Return `name` if it fits, else a stable prefix plus a hash of the whole name (same input, same output)."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9]}_{digest}"


class ToolNameMap:
    """Upstream name → client name for the names that were shortened in one request."""

    __slots__ = ("limit", "restored")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.restored: dict[str, str] = {}

    def upstream(self, name: str) -> str:
        if len(name) <= self.limit:
            return name
        short = shorten(name, self.limit)
        self.restored[short] = name
        return short

    def client(self, name: str) -> str:
        return self.restored.get(name, name) if self.restored else name
