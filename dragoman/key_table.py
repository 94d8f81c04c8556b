"""The inbound gateway keys as the server looks them up: by a keyed hash of the presented key, never the key.

A dict keyed by the keys themselves compares the presented key with a stored one byte by byte, so the time a
failed lookup takes could tell an attacker how much of a key they guessed. Here both sides are keyed BLAKE2s
digests (a MAC, as HMAC-SHA256 is; the hashlib docs offer keyed BLAKE2 in HMAC's place) under a random
per-process key: what an attacker controls is not what gets compared, and the lookup stays one dict access.
BLAKE2s: ~0.5 µs a key, HMAC-SHA256 ~1.5 µs (bench/bench_upstream_guards.py)."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from hashlib import blake2s
from typing import Generic, TypeVar

_PROCESS_KEY = secrets.token_bytes(32)  # new at every start: the digests mean nothing outside this process

T = TypeVar("T")


def key_digest(key: str) -> bytes:
    """The digest a key is looked up by."""
    return blake2s(key.encode(), key=_PROCESS_KEY).digest()


class KeyTable(Generic[T]):
    """Key → holder, holding only digests of the keys."""

    __slots__ = ("_by_digest",)

    def __init__(self, keys: Mapping[str, T]) -> None:
        self._by_digest = {key_digest(key): holder for key, holder in keys.items()}

    def __len__(self) -> int:
        return len(self._by_digest)

    def holders(self) -> list[T]:
        """Every key's holder (never the keys: the table holds only their digests)."""
        return list(self._by_digest.values())

    def lookup(self, presented: str) -> T | None:
        """The holder of `presented`, or None when it is no key of this table."""
        return self._by_digest.get(key_digest(presented))
