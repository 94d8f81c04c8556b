"""Secrets in the config: where an upstream's api_key_ref and an inbound key_ref are read from, and the inbound
gateway keys with who holds them. Errors name the variable or file, never the value."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from typing import Any

import msgspec

from dragoman.config.yaml_source import Path, Source, format_path
from dragoman.errors import ConfigError


class Secret(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where an api_key_ref's value lives: exactly one of an env var or a file."""

    env: str | None = None
    file: str | None = None


class KeyEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A gateway key with who holds it: the identity is set by an admin, so no header can override it."""

    id: str
    key: str | None = None  # the key itself, or
    key_ref: str | None = None  # where it lives (like api_key_ref)
    developer: str | None = None
    team: str | None = None
    repo: str | None = None


class Auth(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    keys: tuple[str | KeyEntry, ...] = ()


class GatewayKey(msgspec.Struct, frozen=True):
    """What a valid inbound key says about its holder."""

    id: str
    developer: str | None = None
    team: str | None = None
    repo: str | None = None

    def identity(self) -> dict[str, str | None]:
        return {"developer": self.developer, "team": self.team, "repo": self.repo}


def secret_spec(name: str, spec: Any, src: Source) -> Secret:
    """A `secrets:` entry, checked: exactly one of env or file."""
    secret: Secret = src.convert(spec, Secret, ("secrets", name))
    if (secret.env is None) == (secret.file is None):
        raise src.error(("secrets", name), "give exactly one of {env: VAR} or {file: PATH}")
    return secret


def resolve_secret(ref: str, path: Path, secrets: dict[str, Secret], src: Source) -> str | None:
    """The value of api_key_ref `ref`: env var REF, or what secrets: maps it to. Errors never include the value.
    None only when `src` notes missing secrets instead of raising (`dragoman check` without the secrets)."""
    secret = secrets.get(ref)
    if secret is None:
        return _env_secret(ref.upper(), f'api_key_ref "{ref}"; map it under secrets: to read another source', path, src)
    if secret.env is not None:
        return _env_secret(secret.env, f"secrets.{ref}", path, src)
    assert secret.file is not None
    return _file_secret(secret.file, ref, path, src)


def _env_secret(var: str, origin: str, path: Path, src: Source) -> str | None:
    value = src.env.get(var, "").strip()
    if not value:
        return src.missing_secret(path, f"env var {var} is not set or empty ({origin})")
    return value


def _file_secret(file: str, ref: str, path: Path, src: Source) -> str | None:
    full = os.path.join(src.base_dir, os.path.expanduser(file))
    try:
        with open(full, encoding="utf-8") as f:
            value = f.read().strip()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        return src.missing_secret(path, f"cannot read secret file {full} (secrets.{ref}): {reason}")
    except UnicodeDecodeError:
        return src.missing_secret(path, f"secret file {full} (secrets.{ref}) is not UTF-8 text")
    if not value:
        return src.missing_secret(path, f"secret file {full} (secrets.{ref}) is empty")
    return value


def gateway_keys(auth: Auth, secrets: dict[str, Secret], src: Source) -> dict[str, GatewayKey]:
    """Inbound key → its holder, from `auth.keys` and DRAGOMAN_API_KEYS; a key_ref is resolved like api_key_ref."""
    keys: dict[str, GatewayKey] = {}
    first: dict[str, Path] = {}
    for i, entry in enumerate(auth.keys):
        path: Path = ("auth", "keys", i)
        found = _key_entry(entry, path, secrets, src)
        if found is None:
            continue  # missing, and noted: only `dragoman check` loads this way
        value, holder, where = found
        # A key names one holder: a second entry with the same value would take over the first one's identity and
        # have its spend, budgets and limits counted as the other's.
        if value in first:
            raise src.error(where, f"the same key as {format_path(first[value])} (line {src.line(first[value])}); "
                                   "give each holder a key of its own")
        first[value] = path
        keys[value] = holder
    return {**env_keys(src.env), **keys}


def _key_entry(
    entry: str | KeyEntry, path: Path, secrets: dict[str, Secret], src: Source
) -> tuple[str, GatewayKey, Path] | None:
    """An `auth.keys` entry's key, its holder, and where the key is written; None: its key_ref is missing."""
    if isinstance(entry, str):
        value = entry.strip()
        if not value:
            raise src.error(path, "an inbound key must not be empty")
        return value, GatewayKey(id=key_fingerprint(value)), path
    if (entry.key is None) == (entry.key_ref is None):
        raise src.error(path, "give exactly one of key or key_ref")
    if entry.key is not None:
        value, where = entry.key.strip(), path + ("key",)
    else:
        value, where = resolve_secret(entry.key_ref or "", path + ("key_ref",), secrets, src), path + ("key_ref",)
        if value is None:
            return None
    if not value:
        raise src.error(path + ("key",), "an inbound key must not be empty")
    return value, GatewayKey(id=entry.id, developer=entry.developer, team=entry.team, repo=entry.repo), where


# deploy/.env.example and deploy/k8s/secret.example.yaml write every key as `replace-me-…` / `REPLACE_ME_…`: a
# published value, which anyone who read the example could send.
_EXAMPLE_KEY = "replace-me"


def refuse_example_keys(env: Mapping[str, str]) -> None:
    """A ConfigError when DRAGOMAN_API_KEYS or DRAGOMAN_ADMIN_KEYS still hold the deploy examples' placeholders (the
    message does not quote the value: it names the variable)."""
    for var in ("DRAGOMAN_API_KEYS", "DRAGOMAN_ADMIN_KEYS"):
        for value in env.get(var, "").split(","):
            if value.strip().lower().replace("_", "-").startswith(_EXAMPLE_KEY):
                raise ConfigError(f"{var} still holds a placeholder from the deploy examples (replace-me…): anyone "
                                  "who read the example could use it; set keys of your own, e.g. "
                                  "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`")


def env_keys(env: Mapping[str, str]) -> dict[str, GatewayKey]:
    """The inbound keys listed in DRAGOMAN_API_KEYS (comma-separated), each with its fingerprint as id."""
    values = (key.strip() for key in env.get("DRAGOMAN_API_KEYS", "").split(","))
    return {value: GatewayKey(id=key_fingerprint(value)) for value in values if value}


def key_fingerprint(key: str) -> str:
    """A stable id for a gateway key that has no configured id: never the key, not reversible."""
    return "key_" + hashlib.sha256(key.encode()).hexdigest()[:12]
