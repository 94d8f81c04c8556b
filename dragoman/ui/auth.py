"""Who is calling the admin API or the dashboard: a key in a header, or a session cookie (+ CSRF).

Keys are the admin API's (admin_api.AdminApi.authenticate): `admin.keys`, and virtual keys with role admin or
viewer (govern/). A session names the key id and role it was opened with, and lives only while that key still
holds that role (`AdminApi.live_role`): revoking a key ends its sessions on every instance within a second."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import msgspec

from dragoman import errors as E
from dragoman.client_keys import client_key
from dragoman.config.secrets import key_fingerprint
from dragoman.govern.grant import ADMIN, USER, VIEWER, Grant
from dragoman.key_table import KeyTable
from dragoman.ui.session import COOKIE, Session, SessionSigner

if TYPE_CHECKING:
    from dragoman.admin_api import AdminApi

__all__ = ["ADMIN", "VIEWER", "Caller", "Staff", "admin_key_id", "api_caller", "may_change", "session_caller"]

_CHANGES = frozenset(("POST", "PUT", "PATCH", "DELETE"))


class Caller(msgspec.Struct, frozen=True):
    key_id: str
    role: str
    session: Session | None = None  # None: authenticated by a key header

    def grant(self) -> Grant:
        return Grant(key_id=self.key_id, role=self.role)


def admin_key_id(key: str) -> str:
    """The id an `admin.keys` key goes by (its fingerprint: the same in every worker and after a restart)."""
    return key_fingerprint(key)


class Staff:
    """The keys that may use the admin API and the dashboard: the admin API's."""

    def __init__(self, admin: AdminApi) -> None:
        self.admin = admin

    def __bool__(self) -> bool:
        return self.admin.on()

    async def caller_for_key(self, presented: str, api_keys: KeyTable[Grant] | None = None) -> Caller | None:
        """(key id, role) of a presented admin or viewer key, or None when it opens nothing here."""
        try:
            # strict: "replace" would fold "€" into "?" and match a key that has a "?" there
            grant = await self.admin.authenticate([(b"x-api-key", presented.encode("latin-1"))], api_keys)
        except (E.AuthenticationFailed, E.PermissionDenied, UnicodeEncodeError):
            return None
        return None if grant.role == USER else Caller(key_id=grant.key_id, role=grant.role)

    def key_id_live(self, key_id: str, role: str) -> bool:
        """Does the key a session was opened with still hold that role?"""
        return self.admin.live_role(key_id) == role


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


def session_caller(keys: Staff, signer: SessionSigner, headers: list[tuple[bytes, bytes]]) -> Caller | None:
    """The caller a valid session cookie names, or None."""
    token = session_token(headers)
    session = signer.verify(token)
    if session is None or not keys.key_id_live(session.key_id, session.role):
        return None
    return Caller(key_id=session.key_id, role=session.role, session=session)


async def api_caller(keys: Staff, signer: SessionSigner, method: str, headers: list[tuple[bytes, bytes]],
                     api_keys: KeyTable[Grant] | None = None) -> Caller:
    """Authenticate an /api/ request: a key header (the admin API's rule: 401 unknown, 403 a user key), else a
    session cookie whose state-changing requests carry the session's CSRF token (403 without it)."""
    if client_key(headers) is not None:
        grant = await keys.admin.authenticate(headers, api_keys)
        if grant.role == USER:
            raise E.PermissionDenied("this key's role is user: the admin API takes viewer and admin keys")
        return Caller(key_id=grant.key_id, role=grant.role)
    if not keys:
        raise E.PermissionDenied("the admin API is off: set admin.keys (or DRAGOMAN_ADMIN_KEYS), "
                                 "or create a key with `dragoman keys create --role admin`")
    caller = session_caller(keys, signer, headers)
    if caller is None:
        raise E.AuthenticationFailed("missing admin key: send it as x-api-key or Authorization: Bearer")
    if method in _CHANGES:
        token = session_token(headers)
        assert token is not None
        if not signer.csrf_ok(token, header(headers, b"x-csrf-token")):
            raise E.PermissionDenied("missing or wrong x-csrf-token for this session: reload the page")
    return caller


def may_change(caller: Caller, method: str, path: str = "") -> None:
    """A viewer reads; only an admin changes anything (403, in the admin API's words)."""
    if method in _CHANGES and caller.role != ADMIN:
        raise E.PermissionDenied(f"this key's role is {caller.role}: {method} {path[:200]} needs an admin key")
