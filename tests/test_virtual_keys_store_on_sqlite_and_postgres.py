"""The key store on both audit stores (migration 8): create, list, show, revoke and rotate; every write gets the
next change number so a cache reading `changed_since(watermark)` sees each write once; the key itself is
nowhere in the database, only its SHA-256."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from dragoman.govern.key_store import KeyNotFound, KeyStore
from dragoman.govern.keys import KeyInputError, KeySpec, digest
from dragoman.observe.stores import open_store
from tests.observe_pg import cluster


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return str(tmp_path / "keys.db") if request.param == "sqlite" else cluster().new_database()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def keys(store_url: str, clock: Clock) -> Iterator[KeyStore]:
    store = open_store(store_url)
    yield KeyStore(store, clock)
    store.close()


def test_create_list_show_revoke(keys: KeyStore, clock: Clock) -> None:
    key, ana = keys.create(KeySpec(developer="ana", team="platform", budget="50/month", tpm="400k"))
    clock.now += 1
    _, bob = keys.create(KeySpec(developer="bob", role="viewer"))
    assert [k.id for k in keys.every()] == [ana.id, bob.id]
    assert keys.get(ana.id) == ana and ana.digest == digest(key)
    clock.now += 1
    revoked = keys.revoke(ana.id)
    assert revoked.revoked_at == clock.now and keys.get(ana.id) == revoked
    clock.now += 1
    assert keys.revoke(ana.id) == revoked  # again: nothing changes
    with pytest.raises(KeyNotFound):
        keys.revoke("vk_nope")
    with pytest.raises(KeyNotFound):
        keys.get("vk_nope")


def test_changed_since_sees_every_write_once_in_order(keys: KeyStore, clock: Clock) -> None:
    _, a = keys.create(KeySpec(developer="a"))
    _, b = keys.create(KeySpec(developer="b"))
    changed, mark = keys.changed_since(0)
    assert [k.id for k in changed] == [a.id, b.id] and mark == 2
    assert keys.changed_since(mark) == ([], mark)
    keys.revoke(a.id)
    changed, mark2 = keys.changed_since(mark)
    assert [(k.id, k.revoked_at is not None) for k in changed] == [(a.id, True)] and mark2 == 3
    _, new, old = keys.rotate(b.id, 3600)
    changed, mark3 = keys.changed_since(mark2)
    assert [k.id for k in changed] == [new.id, b.id] and mark3 == 5


def test_rotate_copies_the_holder_and_limits_and_bounds_the_old_key(keys: KeyStore, clock: Clock) -> None:
    old_key, old = keys.create(KeySpec(developer="ana", team="platform", models="gpt-5*", rpm=60, expires="30d"))
    clock.now += 10
    new_key, new, previous = keys.rotate(old.id, 3600)
    assert new_key != old_key and new.id != old.id and new.digest == digest(new_key)
    assert (new.developer, new.team, new.models, new.limits, new.expires_at) == \
        (old.developer, old.team, old.models, old.limits, old.expires_at)
    assert previous.rotated_to == new.id and previous.expires_at == clock.now + 3600
    assert keys.get(old.id) == previous
    with pytest.raises(KeyInputError, match="already rotated"):
        keys.rotate(old.id, 60)
    keys.revoke(new.id)
    with pytest.raises(KeyInputError, match="revoked"):
        keys.rotate(new.id, 60)
    # a grace longer than the key has left keeps its own expiry
    _, short = keys.create(KeySpec(developer="c", expires="1h"))
    _, _, short_prev = keys.rotate(short.id, 86400)
    assert short_prev.expires_at == short.expires_at


def test_no_key_in_clear_in_the_database(store_url: str, keys: KeyStore) -> None:
    created = [keys.create(KeySpec(developer=f"dev{i}"))[0] for i in range(3)]
    rotated = keys.rotate(keys.every()[0].id, 60)[0]
    every = [*created, rotated]
    if store_url.endswith(".db"):
        keys.store.close()
        blob = b"".join(p.read_bytes() for p in Path(store_url).parent.glob("keys.db*"))
        for key in every:
            assert key.encode() not in blob and key[4:].encode() not in blob
            assert digest(key).encode() in blob
    else:
        rows = keys.store.run(lambda conn: conn.execute("SELECT * FROM virtual_keys").fetchall())
        text = repr(rows)
        for key in every:
            assert key not in text and key[4:] not in text and digest(key) in text


def test_writes_from_two_connections_get_distinct_increasing_change_numbers(store_url: str, clock: Clock) -> None:
    first, second = open_store(store_url), open_store(store_url)
    try:
        a, b = KeyStore(first, clock), KeyStore(second, clock)
        for store in itertools.islice(itertools.cycle((a, b)), 6):
            store.create(KeySpec(developer="x"))
        changed, mark = a.changed_since(0)
        assert len(changed) == 6 and mark == 6
    finally:
        first.close()
        second.close()
