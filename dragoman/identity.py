"""Who is calling: a gateway key's id and identity, headers, and Claude Code's own ids.

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

from collections.abc import Iterable, Mapping

import msgspec

from dragoman.protocols.claude_code import parse_claude_user
from dragoman.redaction import clip


class Identity(msgspec.Struct, frozen=True):
    """Who is calling, as far as the gateway can tell."""

    key_id: str | None = None  # the gateway key's id or fingerprint, never the key
    developer: str | None = None
    team: str | None = None
    repo: str | None = None
    session: str | None = None


Headers = Mapping[str, str] | Iterable[tuple[bytes, bytes]]
_WANTED = {b"x-dragoman-developer", b"x-dragoman-team", b"x-dragoman-repo", b"x-claude-code-session-id"}
_MAX_FIELD = 200  # header values are client-controlled: cap what we store and label


def identity_from(
    headers: Headers,
    metadata_user_id: str | None = None,
    key_id: str | None = None,
    key_identity: Mapping[str, str | None] | None = None,
) -> Identity:
    """Who is calling: the key's configured identity, then x-dragoman-* headers, then Claude Code's ids.

    `headers` is the ASGI list of (name, value) byte pairs (names lower-case) or a str mapping.
    `key_id` is carried as given; the other fields never derive from the key itself.
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
        key_id=key_id,
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


def _clip(value: str | None) -> str | None:
    if not value:
        return None
    return clip(value, _MAX_FIELD)
