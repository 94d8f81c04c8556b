"""Micro-benchmark (not a test): what authenticating a caller costs per request with virtual keys.

    python bench/bench_key_lookup.py [--samples N] [--keys K]

Rows (µs per call, p50 and p95; ~50-100 ns of timer overhead included):
- `KeyCache.lookup` of a virtual key among K: SHA-256 of the presented key, a dict hit, a constant-time digest
  comparison, the clock read for expiry;
- `caller_grant` for a virtual key, the whole path the server awaits (auth on, a config key table beside it),
  driven as a coroutine without an event loop turn (it never suspends on a hit);
- the same for a config-file key (keyed BLAKE2s table lookup after the cache's miss on shape) and with auth off;
- `check_model` against a two-pattern allow-list (fnmatch, patterns compiled once and cached by the stdlib).
The issue's budget is ≤ 30 µs p50 for key + budget + limits together with the in-memory backend.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Coroutine
from typing import Any

from bench_policy import percentiles  # bench/ is on the path: these scripts run as `python bench/…`
from dragoman.config.secrets import GatewayKey
from dragoman.govern.authenticate import caller_grant, config_grants
from dragoman.govern.grant import Grant
from dragoman.govern.key_cache import KeyCache
from dragoman.govern.key_store import KeyStore
from dragoman.govern.keys import KeySpec, check_model
from dragoman.key_table import KeyTable
from dragoman.observe.stores import open_store


def _drive(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that completes without suspending (a cache hit), as the event loop would."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise RuntimeError("the lookup suspended: not a cache hit")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--keys", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(os.path.join(tmp, "keys.db"))
        keys = KeyStore(store)
        made = [keys.create(KeySpec(developer=f"dev{i}", models="gpt-5*,claude-*", rpm=60, budget="50/month"))[0]
                for i in range(args.keys)]
        cache = KeyCache(keys)
        cache.load()
        store.close()
    key = made[len(made) // 2]
    config: KeyTable[Grant] = config_grants({"sk-config-key-1": GatewayKey(id="ci", developer="ci")})
    grant = cache.lookup(key)
    assert grant is not None
    rows = {
        f"KeyCache.lookup (virtual key among {args.keys})": lambda: cache.lookup(key),
        "caller_grant, virtual key": lambda: _drive(caller_grant(key, (config,), cache, "API key")),
        "caller_grant, config key": lambda: _drive(caller_grant("sk-config-key-1", (config,), cache, "API key")),
        "caller_grant, auth off": lambda: _drive(caller_grant(None, (KeyTable({}),), None, "API key")),
        "check_model, 2 patterns, match": lambda: check_model(grant, "claude-sonnet-4-5"),
    }
    print(f"{'row':48} {'p50 µs':>8} {'p95 µs':>8}")
    for name, fn in rows.items():
        p50, p95 = percentiles(fn, args.samples)
        print(f"{name:48} {p50:8.2f} {p95:8.2f}")


if __name__ == "__main__":
    main()
