"""Dashboard sessions: a signed, expiring token in a cookie, naming the key id and role, never the key.

HMAC-SHA256 under a key derived from the deployment's signing key (dragoman/signing_key.py), so every worker and
the same gateway after a restart accept the sessions the others opened, with no shared session table. The CSRF
token is an HMAC of the session token under another derived key: bound to the session, nothing to store.
Sessions are stateless, so logout clears the cookie; a session also dies when its key leaves the config
(auth.py checks the key id against the live keys on every request)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

import msgspec

SESSION_SECONDS = 8 * 3600  # a working day; then sign in again
COOKIE = "dragoman_session"


class Session(msgspec.Struct, frozen=True):
    key_id: str
    role: str  # admin | viewer
    expires: float  # epoch seconds
    nonce: str  # makes every session's token (and so its CSRF token) distinct


_encode = msgspec.json.encode
_decode = msgspec.json.Decoder(Session).decode


class SessionSigner:
    """Issues and checks session tokens and their CSRF tokens; `clock` is injectable for expiry tests."""

    def __init__(self, signing_key: bytes | Callable[[], bytes], clock: Callable[[], float] = time.time) -> None:
        # A callable is read on first use: a gateway whose admin API is only used with key headers never needs it.
        self._source = signing_key
        self._derived: tuple[bytes, bytes] | None = None
        self._clock = clock

    @property
    def _mac_key(self) -> bytes:
        return self._keys()[0]

    @property
    def _csrf_key(self) -> bytes:
        return self._keys()[1]

    def _keys(self) -> tuple[bytes, bytes]:
        if self._derived is None:
            key = self._source if isinstance(self._source, bytes) else self._source()
            self._derived = (hmac.new(key, b"dragoman ui session v1", hashlib.sha256).digest(),
                             hmac.new(key, b"dragoman ui csrf v1", hashlib.sha256).digest())
        return self._derived

    def issue(self, key_id: str, role: str, seconds: float = SESSION_SECONDS) -> tuple[str, Session]:
        """A new session's token (the cookie value) and the session it names."""
        nonce = secrets.token_urlsafe(12)
        session = Session(key_id=key_id, role=role, expires=self._clock() + seconds, nonce=nonce)
        payload = _b64(_encode(session))
        return f"{payload}.{self._sign(payload)}", session

    def verify(self, token: str | None) -> Session | None:
        """The session a token names, or None when it is missing, forged, malformed or expired."""
        # A token we issued is ASCII; a cookie can carry any byte, and compare_digest raises TypeError on a str
        # with non-ASCII characters: such a cookie is simply no session.
        if not token or not token.isascii() or token.count(".") != 1 or len(token) > 1024:
            return None
        payload, mac = token.split(".")
        if not hmac.compare_digest(mac, self._sign(payload)):
            return None
        try:
            session = _decode(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (ValueError, msgspec.DecodeError):
            return None
        return session if session.expires > self._clock() else None

    def csrf(self, token: str) -> str:
        """The CSRF token bound to a session token: a page of that session sends it as x-csrf-token."""
        return hmac.new(self._csrf_key, token.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, token: str, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented.encode(), self.csrf(token).encode())

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._mac_key, payload.encode(), hashlib.sha256).digest())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
