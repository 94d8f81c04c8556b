"""A grant: what a presented key is allowed, as the hot path reads it. Built from a virtual key in the key store
(govern/keys) or from a config file's `auth.keys` entry (no limits); enforced by govern/limits and budgets."""

from __future__ import annotations

import msgspec

ADMIN = "admin"  # everything, key management included
VIEWER = "viewer"  # read the audit, costs and scores; no key management
USER = "user"  # the Messages API only
ROLES = (ADMIN, VIEWER, USER)


class Budget(msgspec.Struct, frozen=True, kw_only=True):
    """A USD cap over a calendar period (UTC): `day`, `week` (from Monday) or `month`."""

    limit_usd: float
    period: str = "month"
    soft_fraction: float = 0.8  # past this share of the cap: a warning header and a log line


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """Rate limits; None: unlimited."""

    rpm: int | None = None  # requests per minute
    input_tpm: int | None = None  # input tokens per minute
    output_tpm: int | None = None  # output tokens per minute
    concurrent_streams: int | None = None


class Grant(msgspec.Struct, frozen=True, kw_only=True):
    """Who holds a key and what it may do. `key_id` is never the key: records and logs name keys by it."""

    key_id: str
    developer: str | None = None
    team: str | None = None
    repo: str | None = None
    role: str = USER
    models: tuple[str, ...] = ()  # fnmatch patterns of requested model names it may use; empty: any
    budget: Budget | None = None  # the key's own budget (developer, team and global budgets are configured apart)
    limits: Limits = Limits()
    expires_at: float | None = None  # epoch seconds; None: never
