"""The presented key → the caller's Grant, one rule for the Messages API and the admin API: the config file's
`auth.keys` and DRAGOMAN_API_KEYS (role user, identity as configured), `admin.keys` and DRAGOMAN_ADMIN_KEYS
(role admin), and virtual keys (govern/key_cache.py, role and limits as created)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dragoman.config.secrets import GatewayKey, key_fingerprint
from dragoman.errors import AuthenticationFailed
from dragoman.govern.grant import ADMIN, USER, VIEWER, Grant
from dragoman.govern.key_cache import KeyCache
from dragoman.govern.keys import PREFIX, looks_like_key
from dragoman.key_table import KeyTable


def config_grants(keys: Mapping[str, GatewayKey]) -> KeyTable[Grant]:
    """The config file's inbound keys as user grants with no limits."""
    return KeyTable({key: Grant(key_id=holder.id, developer=holder.developer, team=holder.team, repo=holder.repo,
                                role=USER) for key, holder in keys.items()})


def admin_grants(keys: Sequence[str]) -> KeyTable[Grant]:
    """`admin.keys` as admin grants, each named by its fingerprint."""
    return KeyTable({key: Grant(key_id=key_fingerprint(key), role=ADMIN) for key in keys})


def scrape_grants(auth: str, key: str | None) -> KeyTable[Grant] | None:
    """Who may scrape /metrics besides admin and viewer keys: None with `metrics.auth: none` (anyone may), else
    the scrape key of `metrics.scrape_key_ref` (none written: an empty table). Only /metrics looks this table up,
    so the scrape key opens nothing else."""
    if auth == "none":
        return None
    return KeyTable({} if key is None else {key: Grant(key_id=key_fingerprint(key), role=VIEWER)})


def auth_required(tables: Sequence[KeyTable[Grant]], cache: KeyCache | None) -> bool:
    """Whether a caller must present a key: once any key is configured or any virtual key was ever created."""
    for table in tables:
        if len(table):
            return True
    return cache is not None and cache.has_keys


async def caller_grant(presented: str | None, tables: Sequence[KeyTable[Grant]], cache: KeyCache | None,
                       what: str) -> Grant | None:
    """The caller's grant (as `grant_for`), or None when inbound auth is off. The first virtual key ever made
    turns auth on: a key of its shape presented meanwhile is looked for once, so its first call is its own."""
    if not auth_required(tables, cache):
        if presented is None or cache is None or not looks_like_key(presented):
            return None
        await cache.lookup_fresh(presented)
        if not auth_required(tables, cache):
            return None
    return await grant_for(presented, tables, cache, what)


async def grant_for(presented: str | None, tables: Sequence[KeyTable[Grant]], cache: KeyCache | None,
                    what: str) -> Grant:
    """The grant of the presented key; AuthenticationFailed (401) when it is missing, unknown, revoked or
    expired. `what` names the key in the message (API key, admin key)."""
    if presented is None:
        raise AuthenticationFailed(f"missing {what}: send it as x-api-key or Authorization: Bearer")
    virtual = cache is not None and presented.startswith(PREFIX)
    if virtual:  # the usual case with virtual keys: one SHA-256 and one dict hit, no keyed hash of the tables
        assert cache is not None
        grant = cache.lookup(presented)
        if grant is not None:
            return grant
    for table in tables:
        grant = table.lookup(presented)
        if grant is not None:
            return grant
    if virtual:
        assert cache is not None
        grant = await cache.lookup_fresh(presented)
        if grant is not None:
            return grant
    raise AuthenticationFailed(f"invalid {what}")
