"""Virtual keys: generation, the digest they are stored and looked up by, the record, and the value syntaxes the
CLI and the admin API share (`50/month`, `400k`, `30d`, `gpt-5*,claude-*`).

A key is `dgk_` + 32 random bytes (urlsafe base64, `secrets.token_urlsafe`). Only its SHA-256 digest is stored.
A fast unsalted hash is right here, unlike for passwords: a 256-bit random key cannot be guessed or found in a
dictionary, so slowing each guess (bcrypt, scrypt, argon2) buys nothing, and the lookup runs on every request
(OWASP's Password Storage Cheat Sheet applies key stretching to low-entropy secrets; NIST SP 800-63B §5.1.1.2
likewise). The digest is what a lookup keys a dict by and what is compared in constant time: timing can tell
an attacker about a digest, never about a key they do not have."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from fnmatch import fnmatchcase
from typing import Any

import msgspec

from dragoman import errors as E
from dragoman.govern.grant import ROLES, USER, Budget, Grant, Limits

PREFIX = "dgk_"
KEY_LENGTH = len(PREFIX) + 43  # token_urlsafe(32): 43 base64url characters, no padding
DISPLAY_LENGTH = len(PREFIX) + 8  # what `keys list` shows: enough to tell keys apart, useless to an attacker
PERIODS = ("day", "week", "month")
_KEY_SHAPE = re.compile(r"dgk_[A-Za-z0-9_-]{43}")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_COUNT = re.compile(r"(\d+(?:\.\d+)?)\s*([kKmM]?)")
_SCALE = {"": 1, "k": 1_000, "m": 1_000_000}
_MAX_NAME = 200  # identity fields are labels in records and reports, as identity.py clips header values
_MAX_PATTERNS = 64


class KeyInputError(ValueError):
    """A key setting the user wrote that cannot be used: the message says what to write instead."""


class VirtualKey(msgspec.Struct, frozen=True, kw_only=True):
    """One virtual key as stored: never the key itself, only its digest and a display prefix."""

    id: str
    digest: str  # hex SHA-256 of the key
    prefix: str
    developer: str | None = None
    team: str | None = None
    repo: str | None = None
    role: str = USER
    models: tuple[str, ...] = ()
    budget: Budget | None = None
    limits: Limits = Limits()
    created: float = 0.0
    expires_at: float | None = None
    revoked_at: float | None = None
    rotated_to: str | None = None  # the id of the key that replaced it (`keys rotate`)

    def grant(self) -> Grant:
        """What this key is allowed, as the hot path reads it."""
        return Grant(key_id=self.id, developer=self.developer, team=self.team, repo=self.repo, role=self.role,
                     models=self.models, budget=self.budget, limits=self.limits, expires_at=self.expires_at)

    def refusal(self, now: float) -> str | None:
        """Why the key cannot be used at `now` (revoked, expired, rotated past its grace), or None."""
        if self.revoked_at is not None and self.revoked_at <= now:
            return f"API key {self.prefix}… was revoked"
        if self.expires_at is not None and self.expires_at <= now:
            if self.rotated_to is not None:
                return f"API key {self.prefix}… was rotated and its grace period is over: use its replacement"
            return f"API key {self.prefix}… has expired"
        return None

    def public(self) -> dict[str, Any]:
        """The key as `GET /api/keys` and `keys show --format json` present it (CONTRACTS.md): no digest."""
        return {
            "id": self.id, "prefix": self.prefix, "developer": self.developer, "team": self.team, "repo": self.repo,
            "role": self.role, "models": list(self.models),
            "budget": msgspec.to_builtins(self.budget) if self.budget is not None else None,
            "limits": msgspec.to_builtins(self.limits), "created": self.created, "expires_at": self.expires_at,
            "revoked_at": self.revoked_at, "rotated_to": self.rotated_to,
        }


class KeySpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A key to create, as written on the CLI or POSTed to /api/keys: strings in the CLI's syntax, or numbers."""

    developer: str | None = None
    team: str | None = None
    repo: str | None = None
    role: str = USER
    models: str | list[str] | None = None  # "gpt-5*,claude-*" or a list of patterns
    budget: str | None = None  # "50/month"
    rpm: int | str | None = None
    tpm: int | str | None = None  # input tokens per minute: 400000 or "400k"
    output_tpm: int | str | None = None
    concurrent: int | str | None = None  # concurrent streams
    expires: str | None = None  # "30d"


# ---- keys and digests ---------------------------------------------------------------------------------------


def generate_key() -> str:
    """A new key: `dgk_` + 32 random bytes, urlsafe base64."""
    return PREFIX + secrets.token_urlsafe(32)


def digest(key: str) -> str:
    """The hex SHA-256 a key is stored and looked up by (fast on purpose: see the module docstring)."""
    return hashlib.sha256(key.encode()).hexdigest()


def digest_bytes(key: str) -> bytes:
    """The same digest as raw bytes: what the in-process cache keys its dict by."""
    return hashlib.sha256(key.encode()).digest()


def same_digest(a: bytes, b: bytes) -> bool:
    """Constant-time comparison of two digests (hmac.compare_digest)."""
    return hmac.compare_digest(a, b)


def looks_like_key(presented: str) -> bool:
    """Whether `presented` has a virtual key's shape: only such keys are worth asking the store about."""
    return len(presented) == KEY_LENGTH and _KEY_SHAPE.fullmatch(presented) is not None


def new_key_id() -> str:
    return "vk_" + secrets.token_hex(8)


def build_key(spec: KeySpec, now: float) -> tuple[str, VirtualKey]:
    """A new key from its spec, checked: (the key, shown once; its record)."""
    key = generate_key()
    record = VirtualKey(
        id=new_key_id(), digest=digest(key), prefix=key[:DISPLAY_LENGTH],
        developer=_name(spec.developer, "developer"), team=_name(spec.team, "team"), repo=_name(spec.repo, "repo"),
        role=parse_role(spec.role), models=parse_models(spec.models),
        budget=parse_budget(spec.budget) if spec.budget else None,
        limits=Limits(rpm=_count(spec.rpm, "rpm"), input_tpm=_count(spec.tpm, "tpm"),
                      output_tpm=_count(spec.output_tpm, "output_tpm"),
                      concurrent_streams=_count(spec.concurrent, "concurrent")),
        created=now, expires_at=now + parse_duration(spec.expires, "expires") if spec.expires else None,
    )
    return key, record


def successor(old: VirtualKey, now: float) -> tuple[str, VirtualKey]:
    """A replacement for `old` (`keys rotate`): a new key and id with the same holder, role and limits."""
    key = generate_key()
    return key, msgspec.structs.replace(old, id=new_key_id(), digest=digest(key), prefix=key[:DISPLAY_LENGTH],
                                        created=now, revoked_at=None, rotated_to=None)


# ---- the model allow-list -----------------------------------------------------------------------------------


def check_model(grant: Grant | None, model: str) -> None:
    """PermissionDenied (403) when `grant` has an allow-list and `model` matches none of its patterns."""
    if grant is None or not grant.models:
        return
    for pattern in grant.models:
        if fnmatchcase(model, pattern):
            return
    shown = model if len(model) <= 100 else model[:100] + "…"
    raise E.PermissionDenied(f"this API key may not use model {shown!r}; it may use: {', '.join(grant.models)}")


# ---- value syntaxes -------------------------------------------------------------------------------------------


def parse_role(text: str) -> str:
    role = (text or "").strip().lower()
    if role not in ROLES:
        raise KeyInputError(f"role {E.quoted(text)}: choose one of {', '.join(ROLES)}")
    return role


def parse_models(value: str | list[str] | None) -> tuple[str, ...]:
    """`gpt-5*,claude-*` (or a list) → the fnmatch patterns of model names a key may use; empty: any."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    patterns = tuple(p.strip() for p in items if p.strip())
    if len(patterns) > _MAX_PATTERNS:
        raise KeyInputError(f"models: at most {_MAX_PATTERNS} patterns")
    for pattern in patterns:
        if len(pattern) > _MAX_NAME or not pattern.isprintable():
            raise KeyInputError(f"models: {pattern[:60]!r} is not a model name pattern like gpt-5* or claude-*")
    return patterns


def parse_budget(text: str) -> Budget:
    """`50/month`, `20/day`, `100/week` (USD, a leading $ allowed) → Budget."""
    amount, _, period = text.strip().partition("/")
    period = period.strip().lower()
    try:
        limit = float(amount.strip().lstrip("$"))
    except ValueError:
        limit = -1.0
    if period not in PERIODS or not 0 < limit < 1e12:
        raise KeyInputError(f"budget {E.quoted(text)}: write USD per period, like 50/month, 20/day or 100/week")
    return Budget(limit_usd=limit, period=period)


def parse_duration(text: str, what: str, *, zero: bool = False) -> float:
    """`30d`, `24h`, `90m`, `2w`, `45s` → seconds: more than zero, or zero too with `zero` (a rotation's grace)."""
    match = _DURATION.fullmatch(text.strip().lower()) if isinstance(text, str) else None
    seconds = float(match.group(1)) * _UNIT[match.group(2)] if match else -1.0
    if not (0 <= seconds if zero else 0 < seconds) or seconds > 100 * 365 * 86400:
        raise KeyInputError(f"{what} {E.quoted(text)}: write a duration like 30d, 24h, 90m, 2w or 45s")
    return seconds


def _count(value: int | str | None, what: str) -> int | None:
    """`60`, `400k`, `1.5M` → a positive integer; None stays None (no limit)."""
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        match = _COUNT.fullmatch(value.strip()) if isinstance(value, str) else None
        amount = float(match.group(1)) * _SCALE[match.group(2).lower()] if match else 0.0
        number = int(amount) if amount < 2**63 else 0  # 400 digits read as inf, and int(inf) raises OverflowError
    if not 0 < number < 2**63:
        raise KeyInputError(f"{what} {E.quoted(value)}: write a positive number like 60, 400k or 1.5M")
    return number


def _name(value: str | None, what: str) -> str | None:
    if value is None or not value.strip():
        return None
    value = value.strip()
    if len(value) > _MAX_NAME or not value.isprintable():
        raise KeyInputError(f"{what}: at most {_MAX_NAME} printable characters on one line")
    return value

