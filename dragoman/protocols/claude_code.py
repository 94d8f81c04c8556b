"""What the Claude Code CLI puts in its requests beyond the Messages API: the ids in `metadata.user_id`."""

from __future__ import annotations

import re

import msgspec

_LEGACY_USER = re.compile(r"^user_([0-9a-zA-Z]+)_account_([0-9a-fA-F-]*)_session_([0-9a-fA-F-]+)$")
_decode_user = msgspec.json.Decoder(dict).decode


class ClaudeUser(msgspec.Struct, frozen=True):
    """What Claude Code puts in metadata.user_id."""

    device_id: str | None = None
    account_uuid: str | None = None
    session_id: str | None = None


def parse_claude_user(user_id: str | None) -> ClaudeUser:
    """metadata.user_id → ids. Newer Claude Code: a JSON string `{"device_id", "account_uuid", "session_id"}`;
    older releases: `user_<device hash>_account_<uuid>_session_<uuid>`. Anything else: empty."""
    if not user_id:
        return ClaudeUser()
    if user_id.startswith("{"):
        try:
            data = _decode_user(user_id)
        except (msgspec.DecodeError, RecursionError):  # not JSON, or nested deeper than the decoder follows
            return ClaudeUser()
        return ClaudeUser(_str(data.get("device_id")), _str(data.get("account_uuid")), _str(data.get("session_id")))
    match = _LEGACY_USER.match(user_id)
    if match is None:
        return ClaudeUser()
    device, account, session = match.groups()
    return ClaudeUser(device or None, account or None, session or None)


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
