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
    env = os.environ if env is None else env
    configured = env.get("DRAGOMAN_SIGNING_KEY", "").strip()
    if configured:
        return hashlib.sha256(configured.encode()).digest()
    path = os.path.expanduser(env.get("DRAGOMAN_SIGNING_KEY_FILE") or _DEFAULT_FILE)
    return bytes.fromhex(_read_or_create(path))


def _read_or_create(path: str) -> str:
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path), exist_ok=True)
    key = secrets.token_hex(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another worker won the race: use its key
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key + "\n")
    return key
