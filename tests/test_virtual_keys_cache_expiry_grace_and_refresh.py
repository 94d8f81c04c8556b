"""The per-process key cache, with injected clocks: expiry and a rotation's grace period end exactly at their
time; a revoke written by another process is seen at the next refresh; a key the cache does not know waits for
one refresh (shared by every waiter), and a flood of made-up keys costs the store one query, not one per key."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dragoman import errors as E
from dragoman.govern.key_cache import KeyCache
from dragoman.govern.key_store import KeyStore
from dragoman.govern.keys import KeySpec, generate_key
from dragoman.observe.stores import open_store

pytestmark = pytest.mark.timeout(30)


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class CountingStore(KeyStore):
    reads = 0

    def changed_since(self, watermark: int):  # noqa: ANN201
        self.reads += 1
        return super().changed_since(watermark)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def keys(tmp_path: Path, clock: Clock) -> Iterator[CountingStore]:
    store = open_store(str(tmp_path / "keys.db"))
    yield CountingStore(store, clock)
    store.close()


def _cache(keys: KeyStore, clock: Clock, **kw) -> KeyCache:  # noqa: ANN003
    cache = KeyCache(keys, clock=clock, **kw)
    cache.load()
    return cache


def test_an_expiring_key_works_until_its_time_and_not_after(keys: CountingStore, clock: Clock) -> None:
    key, record = keys.create(KeySpec(developer="ana", expires="30d"))
    cache = _cache(keys, clock)
    assert cache.lookup(key).key_id == record.id
    clock.now = record.expires_at - 0.001
    assert cache.lookup(key).developer == "ana"
    clock.now = record.expires_at
    with pytest.raises(E.AuthenticationFailed, match="has expired"):
        cache.lookup(key)


def test_a_rotated_key_works_through_its_grace_then_only_the_new_one(keys: CountingStore, clock: Clock) -> None:
    old_key, old = keys.create(KeySpec(developer="ana"))
    cache = _cache(keys, clock)
    new_key, new, _ = keys.rotate(old.id, 3600)
    cache.apply(*keys.changed_since(1))
    assert cache.lookup(old_key).key_id == old.id and cache.lookup(new_key).key_id == new.id
    clock.now += 3599.999
    assert cache.lookup(old_key).key_id == old.id
    clock.now += 0.001
    with pytest.raises(E.AuthenticationFailed, match="rotated"):
        cache.lookup(old_key)
    assert cache.lookup(new_key).key_id == new.id


def test_a_revoked_key_is_refused_once_the_cache_has_read_the_change(keys: CountingStore, clock: Clock) -> None:
    key, record = keys.create(KeySpec(developer="ana"))
    cache = _cache(keys, clock)
    other_process = KeyStore(open_store(keys.store.path), clock)  # a CLI or another gateway
    other_process.revoke(record.id)
    other_process.store.close()
    assert cache.lookup(key) is not None  # not read yet
    cache.apply(*keys.changed_since(1))
    with pytest.raises(E.AuthenticationFailed, match="revoked"):
        cache.lookup(key)
    assert cache.has_keys  # a revoked key still means: every caller needs a key


def test_a_key_created_elsewhere_is_found_by_waiting_for_one_refresh(keys: CountingStore, clock: Clock) -> None:
    cache = _cache(keys, clock, refresh_interval=1.0)
    assert not cache.has_keys

    async def scenario() -> None:
        runner = asyncio.create_task(cache.run())
        try:
            key, record = keys.create(KeySpec(developer="ana"))
            assert cache.lookup(key) is None
            grant = await cache.lookup_fresh(key)
            assert grant is not None and grant.key_id == record.id
            assert cache.lookup(key) is grant
        finally:
            runner.cancel()

    asyncio.run(scenario())


def test_a_flood_of_made_up_keys_costs_one_store_read_and_repeats_cost_none(keys: CountingStore,
                                                                           clock: Clock) -> None:
    keys.create(KeySpec(developer="ana"))
    cache = _cache(keys, clock, refresh_interval=1.0, unknown_size=1000)
    made_up = [generate_key() for _ in range(300)]

    async def scenario() -> None:
        runner = asyncio.create_task(cache.run())
        try:
            await cache.refreshed()  # the loop is running
            before = keys.reads
            results = await asyncio.gather(*(cache.lookup_fresh(k) for k in made_up))
            assert results == [None] * len(made_up)
            assert keys.reads - before <= 2  # the refresh they all shared (and at most one periodic one)
            before = keys.reads
            results = await asyncio.gather(*(cache.lookup_fresh(k) for k in made_up))
            assert results == [None] * len(made_up) and keys.reads == before  # remembered as unknown
            assert await cache.lookup_fresh("sk-not-a-virtual-key") is None and keys.reads == before
        finally:
            runner.cancel()

    asyncio.run(scenario())


def test_the_unknown_key_memory_is_bounded(keys: CountingStore, clock: Clock) -> None:
    cache = _cache(keys, clock, unknown_size=10)

    async def scenario() -> None:
        runner = asyncio.create_task(cache.run())
        try:
            await asyncio.gather(*(cache.lookup_fresh(generate_key()) for _ in range(50)))
            assert len(cache._unknown) == 10
        finally:
            runner.cancel()

    asyncio.run(scenario())


def test_a_store_that_fails_keeps_the_known_keys_serving(keys: CountingStore, clock: Clock) -> None:
    key, _ = keys.create(KeySpec(developer="ana"))
    cache = _cache(keys, clock)

    def broken(watermark: int):  # noqa: ANN202
        raise OSError("database is away")

    keys.changed_since = broken  # type: ignore[method-assign]

    async def scenario() -> None:
        runner = asyncio.create_task(cache.run())
        try:
            await cache.refreshed()
            assert cache.lookup(key) is not None
        finally:
            runner.cancel()

    asyncio.run(scenario())


def test_a_hung_store_never_hangs_a_call_with_an_unknown_key(keys: CountingStore, clock: Clock,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from dragoman.govern import key_cache

    monkeypatch.setattr(key_cache, "_MAX_WAIT", 0.2)
    cache = _cache(keys, clock)
    release = threading.Event()

    def hung(watermark: int):  # noqa: ANN202
        release.wait(20)
        return [], watermark

    keys.changed_since = hung  # type: ignore[method-assign]

    async def scenario() -> None:
        runner = asyncio.create_task(cache.run())
        try:
            assert await cache.lookup_fresh(generate_key()) is None  # answered, though the refresh is stuck
        finally:
            release.set()
            runner.cancel()

    asyncio.run(scenario())
