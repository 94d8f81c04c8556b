"""The deployment's key for sealing reasoning items into thinking-block signatures.

Every worker, and the same gateway after a restart, must use the same key, or a client's next turn could
not be opened and the model would lose its reasoning. Order: DRAGOMAN_SIGNING_KEY; else a key file
(DRAGOMAN_SIGNING_KEY_FILE, default ~/.config/dragoman/signing.key), created once with mode 0600."""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Mapping

_DEFAULT_FILE = os.path.join("~", ".config", "dragoman", "signing.key")


def signing_key(env: Mapping[str, str] | None = None) -> bytes:
    """The deployment's key; SigningKeyError when its file cannot be read, created or holds no key."""
    env = os.environ if env is None else env
    configured = env.get("DRAGOMAN_SIGNING_KEY", "").strip()
    if configured:
        return hashlib.sha256(_checked(configured).encode()).digest()
    path = os.path.expanduser(env.get("DRAGOMAN_SIGNING_KEY_FILE") or _DEFAULT_FILE)
    try:
        return bytes.fromhex(_read_or_create(path))
    except (OSError, UnicodeDecodeError) as err:  # unreadable, not text, or a directory we cannot write
        reason = err.strerror if isinstance(err, OSError) and err.strerror else type(err).__name__
        raise SigningKeyError(f"cannot read or create the signing key file {path}: {reason}") from None


# As long as the key file's shortest key written in hex (16 bytes): a shorter text can be guessed.
_MIN_CONFIGURED = 32
# The start of the placeholders in deploy/.env.example and deploy/k8s/secret.example.yaml: a published value.
_PLACEHOLDER = "replace"


def _checked(configured: str) -> str:
    """DRAGOMAN_SIGNING_KEY's text, unless anyone could know it: too short, or the example's placeholder."""
    make_one = "make one with `python -c 'import secrets; print(secrets.token_hex(32))'`"
    if configured.lower().replace("_", "-").startswith(_PLACEHOLDER):
        raise SigningKeyError(f"DRAGOMAN_SIGNING_KEY is still the example's placeholder: {make_one}")
    if len(configured) < _MIN_CONFIGURED:
        raise SigningKeyError(f"DRAGOMAN_SIGNING_KEY is {len(configured)} characters; it needs at least "
                              f"{_MIN_CONFIGURED} (a short key can be guessed): {make_one}")
    return configured


def check_configured(env: Mapping[str, str]) -> None:
    """Refuse a DRAGOMAN_SIGNING_KEY anyone could know, at start (SigningKeyError), rather than at the first
    signature or dashboard sign-in that needs it."""
    configured = env.get("DRAGOMAN_SIGNING_KEY", "").strip()
    if configured:
        _checked(configured)


class SigningKeyError(RuntimeError):
    """No usable key (a file that holds none, or cannot be read): refuse it rather than sign with a guessable key."""


def _read_or_create(path: str) -> str:
    if not os.path.exists(path):
        _create(path)
    with open(path, encoding="ascii") as f:
        key = f.read().strip()
    try:
        if len(bytes.fromhex(key)) >= 16:
            return key
    except ValueError:
        pass
    raise SigningKeyError(f"{path} does not hold a signing key (64 hex digits); delete it to make a new one")


def _create(path: str) -> None:
    """Write a new key where no worker can read it half-written: a private temp file, then a hard link into
    place, which fails if another worker's key got there first (theirs is then the key)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(secrets.token_hex(32) + "\n")
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
