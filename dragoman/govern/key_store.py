"""Virtual keys at rest: the `virtual_keys` table (migration 8) on the audit store's database, SQLite or PostgreSQL.

Rows are never deleted: a revoked key stays, so `keys list` shows its history and a gateway never forgets that
keys exist (which would open it to unauthenticated calls). Every write numbers the row it touches with
`change` = the table's largest number + 1, under a lock that serializes key writes (SQLite's write lock, a
PostgreSQL advisory lock), so numbers become visible in order and a reader that remembers the largest number it
saw (`changed_since`) misses nothing. Key writes are rare (an admin's command); reads of changes run every
half second per gateway and touch only the index on `change`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import msgspec

from dragoman.govern.keys import KeyInputError, KeySpec, VirtualKey, build_key, successor
from dragoman.govern.grant import Budget, Limits
from dragoman.observe import migrations

_PG_KEYS_LOCK = 0x647261676B79  # "dragky": held while writing keys
_COLUMNS = ("id", "digest", "prefix", "developer", "team", "repo", "role", "models", "budget", "limits", "created",
            "expires_at", "revoked_at", "rotated_to")
_SELECT = f"SELECT {', '.join(_COLUMNS)}, change FROM virtual_keys"
_encode = msgspec.json.encode
_decode_models = msgspec.json.Decoder(tuple[str, ...]).decode
_decode_budget = msgspec.json.Decoder(Budget | None).decode
_decode_limits = msgspec.json.Decoder(Limits).decode


class KeyNotFound(KeyInputError):
    """No key has that id."""


class SqlStore(Protocol):
    """What the key store needs of an audit store (observe/store_sqlite.py, store_postgres.py)."""

    dialect: str

    def run(self, fn: Callable[[Any], Any]) -> Any: ...


class KeyStore:
    """Create, list, revoke and rotate virtual keys in an audit store's database (migrated to 8 or later)."""

    def __init__(self, store: SqlStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self._pg = store.dialect == migrations.POSTGRES
        self._ph = "%s" if self._pg else "?"

    # ---- reads ---------------------------------------------------------------------------------------------

    def every(self) -> list[VirtualKey]:
        """Every key, oldest first."""
        return [_key(row) for row in self._select(" ORDER BY created, id", ())]

    def get(self, key_id: str) -> VirtualKey:
        rows = self._select(f" WHERE id = {self._ph}", (key_id,))
        if not rows:
            raise KeyNotFound(f"no key with id {key_id[:80]!r} (see `dragoman keys list`)")
        return _key(rows[0])

    def changed_since(self, watermark: int) -> tuple[list[VirtualKey], int]:
        """Keys written after change number `watermark`, and the new watermark."""
        rows = self._select(f" WHERE change > {self._ph} ORDER BY change", (watermark,))
        return [_key(row) for row in rows], max((row[-1] for row in rows), default=watermark)

    def replacements(self) -> int:
        """How often the store found its file replaced (SQLite: deleted or restored while in use; 0 elsewhere):
        change numbers start again in a new file, so a watermark from the old one says nothing there."""
        return int(getattr(self.store, "replacements", 0))

    # ---- writes --------------------------------------------------------------------------------------------

    def create(self, spec: KeySpec) -> tuple[str, VirtualKey]:
        """A new key from its spec: (the key, to show once; its record)."""
        key, record = build_key(spec, self.clock())
        self._write(lambda conn, change: self._insert(conn, record, change))
        return key, record

    def revoke(self, key_id: str) -> VirtualKey:
        """Revoke a key now; revoking a revoked key changes nothing."""
        def revoke(conn: Any, change: int) -> VirtualKey:
            old = self._get_in(conn, key_id)
            if old.revoked_at is not None:
                return old
            new = msgspec.structs.replace(old, revoked_at=self.clock())
            self._update(conn, new, change)
            return new

        return self._write(revoke)

    def rotate(self, key_id: str, grace: float) -> tuple[str, VirtualKey, VirtualKey]:
        """Replace a key: (the new key, its record, the old record, now valid for `grace` more seconds)."""
        def rotate(conn: Any, change: int) -> tuple[str, VirtualKey, VirtualKey]:
            old = self._get_in(conn, key_id)
            now = self.clock()
            refusal = old.refusal(now)
            if refusal is not None or old.rotated_to is not None:
                raise KeyInputError(f"key {key_id} cannot be rotated: "
                                    f"{refusal or 'it was already rotated to ' + str(old.rotated_to)}")
            key, new = successor(old, now)
            until = now + grace if old.expires_at is None else min(old.expires_at, now + grace)
            old = msgspec.structs.replace(old, expires_at=until, rotated_to=new.id)
            self._insert(conn, new, change)
            self._update(conn, old, change + 1)
            return key, new, old

        return self._write(rotate)

    # ---- SQL ------------------------------------------------------------------------------------------------

    def _select(self, where: str, params: tuple) -> list[tuple]:
        return self.store.run(lambda conn: conn.execute(_SELECT + where, params).fetchall())

    def _get_in(self, conn: Any, key_id: str) -> VirtualKey:
        row = conn.execute(_SELECT + f" WHERE id = {self._ph}", (key_id,)).fetchone()
        if row is None:
            raise KeyNotFound(f"no key with id {key_id[:80]!r} (see `dragoman keys list`)")
        return _key(row)

    def _write(self, fn: Callable[[Any, int], Any]) -> Any:
        """fn(conn, next change number) in one write transaction, serialized with every other key write."""
        def transact(conn: Any) -> Any:
            if self._pg:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_KEYS_LOCK,))
                    return fn(conn, self._next_change(conn))
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn, self._next_change(conn))
                conn.execute("COMMIT")
                return result
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

        return self.store.run(transact)

    @staticmethod
    def _next_change(conn: Any) -> int:
        return int(conn.execute("SELECT COALESCE(MAX(change), 0) FROM virtual_keys").fetchone()[0]) + 1

    def _insert(self, conn: Any, record: VirtualKey, change: int) -> None:
        marks = ", ".join([self._ph] * (len(_COLUMNS) + 1))
        conn.execute(f"INSERT INTO virtual_keys ({', '.join(_COLUMNS)}, change) VALUES ({marks})",
                     (*_values(record), change))

    def _update(self, conn: Any, record: VirtualKey, change: int) -> None:
        ph = self._ph
        conn.execute(f"UPDATE virtual_keys SET expires_at = {ph}, revoked_at = {ph}, rotated_to = {ph}, change = {ph}"
                     f" WHERE id = {ph}", (record.expires_at, record.revoked_at, record.rotated_to, change, record.id))


def _values(k: VirtualKey) -> tuple:
    budget = _encode(k.budget).decode() if k.budget is not None else None
    return (k.id, k.digest, k.prefix, k.developer, k.team, k.repo, k.role, _encode(k.models).decode(), budget,
            _encode(k.limits).decode(), k.created, k.expires_at, k.revoked_at, k.rotated_to)


def _key(row: tuple) -> VirtualKey:
    (key_id, digest, prefix, developer, team, repo, role, models, budget, limits, created, expires_at, revoked_at,
     rotated_to) = row[:len(_COLUMNS)]
    return VirtualKey(
        id=key_id, digest=digest, prefix=prefix, developer=developer, team=team, repo=repo, role=role,
        models=_decode_models(models), budget=_decode_budget(budget) if budget else None,
        limits=_decode_limits(limits), created=float(created), expires_at=_float(expires_at),
        revoked_at=_float(revoked_at), rotated_to=rotated_to,
    )


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
