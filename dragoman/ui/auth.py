"""Who is calling the admin API or the dashboard: an admin key in a header, or a session cookie (+ CSRF).

`caller_for_key` is the one place that maps a presented key to (key id, role); today the keys are `admin.keys`
(DRAGOMAN_ADMIN_KEYS), all admins. When virtual keys with roles land (govern/), swap its body and
`key_id_live`; nothing else here knows where keys come from."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import msgspec

from dragoman import errors as E
from dragoman.client_keys import client_key
from dragoman.key_table import KeyTable
from dragoman.ui.session import COOKIE, Session, SessionSigner

ADMIN, VIEWER = "admin", "viewer"
_CHANGES = frozenset(("POST", "PUT", "PATCH", "DELETE"))


class Caller(msgspec.Struct, frozen=True):
    key_id: str
    role: str
    session: Session | None = None  # None: authenticated by a key header


def admin_key_id(key: str) -> str:
    """A stable, non-secret id for an admin key (the same in every worker and after a restart)."""
    return "admin-" + hashlib.sha256(key.encode()).hexdigest()[:12]


class Keys:
    """The keys that may use the admin API and the dashboard, for one config."""

    def __init__(self, admin_keys: Sequence[str]) -> None:
        self._table = KeyTable({key: admin_key_id(key) for key in admin_keys})
        self._ids = frozenset(admin_key_id(key) for key in admin_keys)

    def __bool__(self) -> bool:
        return bool(self._ids)

    def caller_for_key(self, presented: str) -> Caller | None:
        """(key id, role) of a presented key, or None when it opens nothing here."""
        key_id = self._table.lookup(presented)
        return None if key_id is None else Caller(key_id=key_id, role=ADMIN)

    def key_id_live(self, key_id: str, role: str) -> bool:
        """Does the key a session was opened with still hold that role? (A key removed from the config ends its
        sessions at once.)"""
        return key_id in self._ids and role == ADMIN


def session_token(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The session cookie's value from the request's Cookie header(s)."""
    for name, value in headers:
        if name != b"cookie":
            continue
        for part in value.decode("latin-1").split(";"):
            cname, _, cvalue = part.strip().partition("=")
            if cname == COOKIE:
                return cvalue
    return None


def header(headers: Iterable[tuple[bytes, bytes]], wanted: bytes) -> str | None:
    for name, value in headers:
        if name == wanted:
            return value.decode("latin-1")
    return None


def session_caller(keys: Keys, signer: SessionSigner, headers: list[tuple[bytes, bytes]]) -> Caller | None:
    """The caller a valid session cookie names, or None."""
    token = session_token(headers)
    session = signer.verify(token)
    if session is None or not keys.key_id_live(session.key_id, session.role):
        return None
    return Caller(key_id=session.key_id, role=session.role, session=session)


def api_caller(keys: Keys, signer: SessionSigner, method: str, headers: list[tuple[bytes, bytes]]) -> Caller:
    """Authenticate an /api/ request: a key header, else a session cookie whose state-changing requests carry
    the session's CSRF token. 401 without either; 403 for a missing or wrong CSRF token."""
    if not keys:
        raise E.PermissionDenied("the admin API is off: set admin.keys (or DRAGOMAN_ADMIN_KEYS)")
    presented = client_key(headers)
    if presented is not None:
        caller = keys.caller_for_key(presented)
        if caller is None:
            raise E.AuthenticationFailed("invalid admin key")  # the words of client_keys.key_holder: one rule
        return caller
    caller = session_caller(keys, signer, headers)
    if caller is None:
        raise E.AuthenticationFailed("missing admin key: send it as x-api-key or Authorization: Bearer")
    if method in _CHANGES:
        token = session_token(headers)
        assert token is not None
        if not signer.csrf_ok(token, header(headers, b"x-csrf-token")):
            raise E.PermissionDenied("missing or wrong x-csrf-token for this session: reload the page")
    return caller


def may_change(caller: Caller, method: str) -> None:
    """A viewer reads; only an admin changes anything (403)."""
    if method in _CHANGES and caller.role != ADMIN:
        raise E.PermissionDenied("this needs an admin key; a viewer may only read")
