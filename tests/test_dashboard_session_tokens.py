"""Dashboard session tokens: signed with the deployment's signing key, expiring, naming a key id and role (never
the key), each with its own CSRF token."""

from __future__ import annotations

import base64
import json

from dragoman.ui.session import SessionSigner

KEY = b"k" * 32


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_token_names_its_key_id_and_role_until_it_expires() -> None:
    clock = Clock(1000.0)
    signer = SessionSigner(KEY, clock)
    token, session = signer.issue("admin-abc", "admin", seconds=60)
    assert signer.verify(token) == session
    assert (session.key_id, session.role, session.expires) == ("admin-abc", "admin", 1060.0)
    clock.now = 1059.9
    assert signer.verify(token) is not None
    clock.now = 1060.0
    assert signer.verify(token) is None


def test_another_worker_with_the_same_signing_key_accepts_the_token() -> None:
    token, _ = SessionSigner(KEY).issue("admin-abc", "admin")
    assert SessionSigner(KEY).verify(token) is not None
    assert SessionSigner(b"x" * 32).verify(token) is None


def test_a_changed_payload_is_refused() -> None:
    signer = SessionSigner(KEY)
    token, _ = signer.issue("viewer-1", "viewer")
    payload, mac = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert signer.verify(f"{forged}.{mac}") is None


def test_malformed_tokens_are_refused_without_raising() -> None:
    signer = SessionSigner(KEY)
    for token in (None, "", ".", "a.b.c", "x" * 5000, "!!!.???", "e30.AAAA"):
        assert signer.verify(token) is None


def test_the_csrf_token_is_bound_to_its_session() -> None:
    signer = SessionSigner(KEY)
    first, _ = signer.issue("admin-abc", "admin")
    second, _ = signer.issue("admin-abc", "admin")
    assert first != second
    assert signer.csrf_ok(first, signer.csrf(first))
    assert not signer.csrf_ok(first, signer.csrf(second))
    assert not signer.csrf_ok(first, None)
    assert not signer.csrf_ok(first, "")


def test_the_token_holds_no_key() -> None:
    token, _ = SessionSigner(KEY).issue("admin-abc", "admin")
    payload = token.split(".")[0]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert set(claims) == {"key_id", "role", "expires", "nonce"}
