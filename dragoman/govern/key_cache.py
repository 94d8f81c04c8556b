"""The virtual keys of one gateway process, in memory: a request's key lookup is a SHA-256 and a dict hit.

Every instance sharing a store sees a revoke within a second: a background task reads the rows changed since
the last change number it saw (KeyStore.changed_since) every `refresh_interval` (0.5 s by default), in a thread
of its own so the event loop never waits on the database. Expiry needs no refresh: it is checked against the
clock on every lookup.

A key the cache does not know (created a moment ago, on another instance or with the CLI) makes the lookup wait
for the next refresh, started at once. Refreshes never overlap and are at least `_MIN_GAP` apart, so a flood of
made-up keys costs the database at most one small indexed query per `_MIN_GAP`, whatever its rate; only keys of
a virtual key's shape wait at all, and a key found unknown is remembered (boundedly) and refused at once after."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from dragoman import errors as E
from dragoman.config.governance import KeySettings
from dragoman.govern.grant import USER, Grant
from dragoman.govern.key_store import KeyStore, SqlStore
from dragoman.govern.keys import VirtualKey, digest_bytes, looks_like_key, same_digest
from dragoman.observe.stores import open_store

log = logging.getLogger("dragoman.keys")

_MIN_GAP = 0.05  # seconds between two refreshes, whatever asks for them
_MAX_WAIT = 5.0  # seconds a call with an unknown key waits for a refresh (PostgreSQL's connect timeout)
_NEVER = float("inf")


class _Entry:
    __slots__ = ("digest", "grant", "usable_until", "key")

    def __init__(self, key: VirtualKey) -> None:
        self.digest = bytes.fromhex(key.digest)
        self.grant = key.grant()
        self.key = key
        self.usable_until = -_NEVER if key.revoked_at is not None else (key.expires_at or _NEVER)


class KeyCache:
    """Virtual keys by digest, kept fresh from a KeyStore."""

    def __init__(
        self,
        store: KeyStore,
        *,
        refresh_interval: float = 0.5,
        unknown_size: int = 10_000,
        unknown_ttl: float = 60.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.refresh_interval = refresh_interval
        self.clock = clock
        self._monotonic = monotonic
        self._by_digest: dict[bytes, _Entry] = {}
        self._by_id: dict[str, _Entry] = {}
        self._unknown: OrderedDict[bytes, float] = OrderedDict()  # digest → monotonic time it is forgotten
        self._unknown_size = unknown_size
        self._unknown_ttl = unknown_ttl
        self._watermark = 0
        self._replacements = store.replacements()
        self._replaced_keys = False  # keys were held before the store's file was replaced: calls still need one
        self.staff = 0  # keys with role admin or viewer, ever: with none (and no admin.keys) the admin API is off
        self._executor: ThreadPoolExecutor | None = None
        self._wake: asyncio.Event | None = None
        self._next: asyncio.Future | None = None  # resolved when the next refresh to start is done
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failing = False

    def __len__(self) -> int:
        return len(self._by_digest)

    @property
    def has_keys(self) -> bool:
        """Whether any virtual key was ever created: then every call must present a key."""
        return bool(self._by_digest) or self._replaced_keys

    # ---- the hot path --------------------------------------------------------------------------------------

    def lookup(self, presented: str) -> Grant | None:
        """The grant of a usable key; None when the cache does not know it; AuthenticationFailed (401) when the
        key is revoked, expired, or rotated past its grace."""
        wanted = digest_bytes(presented)
        entry = self._by_digest.get(wanted)
        if entry is None or not same_digest(entry.digest, wanted):
            return None
        if self.clock() < entry.usable_until:
            return entry.grant
        raise E.AuthenticationFailed(entry.key.refusal(self.clock()) or "invalid API key")

    def live_role(self, key_id: str) -> str | None:
        """The role of the usable key named `key_id`; None when there is none (unknown, revoked, expired)."""
        entry = self._by_id.get(key_id)
        if entry is None or self.clock() >= entry.usable_until:
            return None
        return entry.grant.role

    async def lookup_fresh(self, presented: str) -> Grant | None:
        """`lookup` for a key the cache did not know: after the next refresh, unless it is not a virtual key's
        shape or was found unknown recently."""
        if not looks_like_key(presented):
            return None
        wanted = digest_bytes(presented)
        forget_at = self._unknown.get(wanted)
        if forget_at is not None and self._monotonic() < forget_at:
            return None
        await self.refreshed()
        grant = self.lookup(presented)
        if grant is None:
            self._remember_unknown(wanted)
        return grant

    def _remember_unknown(self, wanted: bytes) -> None:
        self._unknown[wanted] = self._monotonic() + self._unknown_ttl
        self._unknown.move_to_end(wanted)
        while len(self._unknown) > self._unknown_size:
            self._unknown.popitem(last=False)

    # ---- refreshing ----------------------------------------------------------------------------------------

    def load(self) -> None:
        """Read every key (blocking): once at startup, before the gateway takes a request."""
        self.apply(*self._changes())

    def _changes(self) -> tuple[list[VirtualKey], int, bool]:
        """(keys changed since the watermark, the new watermark, whether the store's file was replaced): after a
        replacement every key of the new file, from change 0, its numbers being unrelated to the old file's."""
        changed, watermark = self.store.changed_since(self._watermark)
        replacements = self.store.replacements()
        if replacements == self._replacements:
            return changed, watermark, False
        self._replacements = replacements
        return (*self.store.changed_since(0), True)

    def apply(self, keys: Iterable[VirtualKey], watermark: int, replaced: bool = False) -> None:
        """Take in changed keys (called on the event loop's thread, or before it runs); `replaced`: `keys` are
        every key of a new store file, and those of the old one are forgotten (a deleted key works no more)."""
        if replaced:
            self._replaced_keys = self.has_keys  # "any key ever made": deleting the file never opens the gateway
            self._by_digest, self._by_id = {}, {}
            self._unknown.clear()
        for key in keys:
            entry = _Entry(key)
            if entry.digest not in self._by_digest and key.role != USER:
                self.staff += 1
            self._by_digest[entry.digest] = entry
            self._by_id[key.id] = entry
            self._unknown.pop(entry.digest, None)
        self._watermark = watermark

    async def refreshed(self) -> None:
        """Wait until a refresh that starts after this call has finished, at most `_MAX_WAIT` seconds (a hung
        database must not hang the callers: they are then answered from what the cache knows)."""
        wake, waiting = self._bind()
        wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(waiting), _MAX_WAIT)
        except TimeoutError:
            pass

    def refresh_soon(self) -> None:
        """Ask for a refresh now, from any thread (the admin API writes keys from an executor)."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            loop.call_soon_threadsafe(wake.set)

    def _bind(self) -> tuple[asyncio.Event, asyncio.Future]:
        """The wake-up event and the next refresh's future, made on the running loop at first use."""
        if self._wake is None or self._next is None:
            self._loop = asyncio.get_running_loop()
            self._wake, self._next = asyncio.Event(), self._loop.create_future()
        return self._wake, self._next

    async def run(self) -> None:
        """Refresh every `refresh_interval`, or sooner when asked, until cancelled."""
        wake, _ = self._bind()
        loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dragoman-keys")
        try:
            while True:
                try:
                    await asyncio.wait_for(wake.wait(), self.refresh_interval)
                except TimeoutError:
                    pass
                wake.clear()
                done, self._next = self._next, loop.create_future()
                try:
                    await self._refresh_once()
                finally:
                    done.set_result(None)
                await asyncio.sleep(_MIN_GAP)
        finally:
            if self._next is not None and not self._next.done():
                self._next.set_result(None)
            self._executor.shutdown(wait=False)

    async def _refresh_once(self) -> None:
        assert self._loop is not None
        try:
            changed, watermark, replaced = await self._loop.run_in_executor(self._executor, self._changes)
        except Exception as exc:  # noqa: BLE001 - the database is away: keep serving the keys we know
            if not self._failing:
                log.warning("cannot read virtual keys from the store (%s); serving the keys known so far, "
                            "revocations are seen when it is back", type(exc).__name__)
            self._failing = True
            return
        if self._failing:
            log.warning("virtual keys read from the store again")
            self._failing = False
        self.apply(changed, watermark, replaced)


def open_key_cache(settings: KeySettings, audit_store: SqlStore | None, store_url: str | None) -> KeyCache | None:
    """The process's key cache, loaded (blocking: call it at startup, in an executor); None with keys off.
    The keys live in the audit store's database: the audit store itself when auditing is on."""
    if not settings.enabled:
        return None
    store = audit_store if audit_store is not None else open_store(store_url)
    cache = KeyCache(KeyStore(store), refresh_interval=settings.refresh_interval,
                     unknown_size=settings.unknown_cache_size)
    cache.load()
    return cache
