"""The audit record: one per request, built by the server, written off the hot path by `AuditWriter`.

Also who the caller is (`identity_from`) and `redact`, which keeps secrets out of every free-text field.

Identity with zero client wiring, first value found wins per field:
1. the gateway key's configured identity (`auth.keys: [{id, key, developer, team, repo}]`): set by an admin,
   so a header cannot override it;
2. headers `x-dragoman-developer`, `x-dragoman-team`, `x-dragoman-repo`;
3. Claude Code's own `x-claude-code-session-id` and `metadata.user_id` for the session, and, when no developer is
   known, the Claude account (`account:<uuid>`) or the machine (`device:<first 16 of device_id>`).

Claude Code sends extra headers from `ANTHROPIC_CUSTOM_HEADERS` (newline-separated `Name: value` lines), read
when it starts, so a team sets the repo once in its shell template (~/.bashrc, ~/.zshrc):

    export ANTHROPIC_CUSTOM_HEADERS="x-dragoman-repo: $(basename "$(git rev-parse --show-toplevel 2>/dev/null || pwd)")
    x-dragoman-developer: $USER
    x-dragoman-team: platform"

or, to follow `cd`, as a function that wraps the command:
`claude() { ANTHROPIC_CUSTOM_HEADERS="x-dragoman-repo: $(basename "$(git rev-parse --show-toplevel 2>/dev/null || pwd)")" command claude "$@"; }`
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

import msgspec

REDACTED = "[REDACTED]"

# What a secret looks like in free text: OpenAI/Anthropic style keys (sk-, sk-proj-, sk-ant-), bearer tokens,
# header or parameter assignments of keys, AWS and Google API keys. False positives cost a word, misses a key.
_SECRET = re.compile(
    r"""(?ix)
    \bsk-[a-z0-9][a-z0-9_\-]{6,}
    | \bbearer\s+[a-z0-9._~+/=\-]{6,}
    | \b(?:x-api-key|api[_-]?key|authorization|access[_-]?token|secret|password)\b["']?\s*[:=]\s*["']?(?:bearer\s+)?[^\s"',;}]{4,}
    | \bAKIA[0-9A-Z]{16}\b
    | \bAIza[0-9A-Za-z_\-]{20,}
    """
)


def redact(text: str) -> str:
    """`text` with anything that looks like a key or token replaced by [REDACTED]."""
    if not text:
        return text
    return _SECRET.sub(REDACTED, text)


def key_fingerprint(key: str) -> str:
    """A stable id for a gateway key that has no configured id: never the key, not reversible."""
    return "key_" + hashlib.sha256(key.encode()).hexdigest()[:12]


class Candidate(msgspec.Struct, kw_only=True):
    """One upstream tried for a request, in the order tried."""

    route: str
    upstream: str | None = None  # the upstream's name or host, never its URL's credentials
    model: str | None = None
    outcome: str = "ok"  # ok | error | timeout | skipped (breaker open) | rate_limited
    status: int | None = None  # the upstream's HTTP status, when it answered
    error_type: str | None = None
    latency_ms: float | None = None


class AuditRecord(msgspec.Struct, kw_only=True):
    """Everything worth knowing about one request after it finished. Mutable: the server fills it as it goes."""

    time: float  # epoch seconds when the request arrived
    request_id: str
    key_id: str | None = None  # a gateway key's id or fingerprint, never the key
    developer: str | None = None
    team: str | None = None
    repo: str | None = None
    session: str | None = None
    requested_model: str | None = None
    policy: str | None = None  # the routing policy and branch that fired
    branch: str | None = None
    input_estimate: int | None = None
    candidates: list[Candidate] = []
    route: str | None = None  # the route that answered (or the last tried)
    upstream_model: str | None = None
    provider: str | None = None
    status: int = 200  # HTTP status sent to the client
    error_type: str | None = None
    stream: bool = False
    latency_total_ms: float | None = None
    ttfb_ms: float | None = None
    upstream_ms: float | None = None
    overhead_ms: float | None = None  # total minus time spent waiting on upstreams: the gateway's own cost
    input_tokens: int = 0  # uncached input
    output_tokens: int = 0  # includes reasoning tokens, as OpenAI bills them
    cache_read_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float | None = None  # None: no price known for the model; the writer fills it when left None
    notes: list[str] = []  # translation notes: "cache_control dropped", "tool name shortened", …
    stream_events: int = 0

    @property
    def time_iso(self) -> str:
        return datetime.fromtimestamp(self.time, UTC).isoformat(timespec="milliseconds")

    def redacted(self) -> AuditRecord:
        """This record with secrets stripped from every free-text field (in place; returns self)."""
        for name in _FREE_TEXT:
            value = getattr(self, name)
            if value:
                setattr(self, name, redact(value))
        if self.notes:
            self.notes = [redact(note) for note in self.notes]
        for cand in self.candidates:
            if cand.error_type:
                cand.error_type = redact(cand.error_type)
        return self


_FREE_TEXT = ("developer", "team", "repo", "session", "requested_model", "error_type", "policy", "branch")


# ---- identity ----------------------------------------------------------------------------------------------


class Identity(msgspec.Struct, frozen=True):
    developer: str | None = None
    team: str | None = None
    repo: str | None = None
    session: str | None = None


class ClaudeUser(msgspec.Struct, frozen=True):
    """What Claude Code puts in metadata.user_id."""

    device_id: str | None = None
    account_uuid: str | None = None
    session_id: str | None = None


Headers = Mapping[str, str] | Iterable[tuple[bytes, bytes]]
_WANTED = {b"x-dragoman-developer", b"x-dragoman-team", b"x-dragoman-repo", b"x-claude-code-session-id"}
_LEGACY_USER = re.compile(r"^user_([0-9a-zA-Z]+)_account_([0-9a-fA-F-]*)_session_([0-9a-fA-F-]+)$")
_decode_user = msgspec.json.Decoder(dict).decode
_MAX_FIELD = 200  # header values are client-controlled: cap what we store and label


def parse_claude_user(user_id: str | None) -> ClaudeUser:
    """metadata.user_id → ids. Newer Claude Code: a JSON string `{"device_id", "account_uuid", "session_id"}`;
    older releases: `user_<device hash>_account_<uuid>_session_<uuid>`. Anything else: empty."""
    if not user_id:
        return ClaudeUser()
    if user_id.startswith("{"):
        try:
            data = _decode_user(user_id)
        except msgspec.DecodeError:
            return ClaudeUser()
        return ClaudeUser(_str(data.get("device_id")), _str(data.get("account_uuid")), _str(data.get("session_id")))
    match = _LEGACY_USER.match(user_id)
    if match is None:
        return ClaudeUser()
    device, account, session = match.groups()
    return ClaudeUser(device or None, account or None, session or None)


def identity_from(
    headers: Headers,
    metadata_user_id: str | None = None,
    key_id: str | None = None,
    key_identity: Mapping[str, str | None] | None = None,
) -> Identity:
    """Who is calling: the key's configured identity, then x-dragoman-* headers, then Claude Code's ids.

    `headers` is the ASGI list of (name, value) byte pairs (names lower-case) or a str mapping.
    `key_id` is accepted for symmetry with the record; identity never derives from the key itself.
    """
    found = _header_values(headers)
    key_identity = key_identity or {}
    user = parse_claude_user(metadata_user_id)
    developer = key_identity.get("developer") or found.get("x-dragoman-developer")
    if not developer:
        if user.account_uuid:
            developer = "account:" + user.account_uuid
        elif user.device_id:
            developer = "device:" + user.device_id[:16]
    return Identity(
        developer=_clip(developer),
        team=_clip(key_identity.get("team") or found.get("x-dragoman-team")),
        repo=_clip(key_identity.get("repo") or found.get("x-dragoman-repo")),
        session=_clip(found.get("x-claude-code-session-id") or user.session_id),
    )


def _header_values(headers: Headers) -> dict[str, str]:
    found: dict[str, str] = {}
    if isinstance(headers, Mapping):
        for name, value in headers.items():
            lower = name.lower()
            if lower.encode() in _WANTED and value:
                found[lower] = value.strip()
        return found
    for name, value in headers:
        if name in _WANTED and value:
            found[name.decode()] = value.decode("utf-8", "replace").strip()
    return found


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _clip(value: str | None) -> str | None:
    if not value:
        return None
    return value[:_MAX_FIELD]
