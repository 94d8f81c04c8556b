"""Inbound gateway keys are looked up by a keyed digest (BLAKE2s, a MAC like HMAC) under a per-process random key,
never by the key itself: the dict compares digests the caller cannot choose, so a failed lookup's timing says nothing about how
much of a key was guessed (admin keys are looked up the same way)."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from dragoman import errors as E
from dragoman import key_table
from dragoman.config.secrets import GatewayKey
from dragoman.key_table import KeyTable, key_digest
from dragoman.govern.authenticate import auth_required, grant_for

ANA = GatewayKey(id="ana-laptop", developer="ana")
KEYS = {"sk-team-ana-1": ANA, "sk-team-bob-2": GatewayKey(id="bob")}


def _grant(table: KeyTable, key: str) -> GatewayKey:
    return asyncio.run(grant_for(key, (table,), None, "API key"))


def test_the_table_holds_digests_only():
    table = KeyTable(KEYS)
    stored = list(table._by_digest)
    assert sorted(stored) == sorted(key_digest(k) for k in KEYS)
    assert all(isinstance(d, bytes) and len(d) == 32 for d in stored)
    assert not any(k.encode() in d for k in KEYS for d in stored)


def test_the_digest_is_keyed_by_a_random_process_key():
    key = "sk-team-ana-1"
    assert len(key_table._PROCESS_KEY) == 32
    assert key_digest(key) == hashlib.blake2s(key.encode(), key=key_table._PROCESS_KEY).digest()
    assert key_digest(key) != hashlib.blake2s(key.encode()).digest()  # not a plain hash anyone can precompute


def test_authentication_looks_the_presented_key_up_by_its_digest(monkeypatch):
    table = KeyTable(KEYS)
    digested: list[str] = []

    def spy(key: str) -> bytes:
        digested.append(key)
        return hashlib.blake2s(key.encode(), key=key_table._PROCESS_KEY).digest()

    monkeypatch.setattr(key_table, "key_digest", spy)
    assert _grant(table, "sk-team-ana-1") is ANA
    assert digested == ["sk-team-ana-1"]
    with pytest.raises(E.AuthenticationFailed):
        _grant(table, "sk-team-ana-X")
    assert digested == ["sk-team-ana-1", "sk-team-ana-X"]


def test_no_keys_means_no_inbound_auth():
    assert not auth_required((KeyTable({}),), None)
    assert auth_required((KeyTable(KEYS),), None)
