"""Inline secrets in a config file's text: masked before the text is stored as a config version, restored from the
live config when a version is rolled back to.

What counts as an inline secret: an `auth.keys` entry written as a string, an entry's `key:`, an `admin.keys`
entry, any value under `secrets:` that is not a reference (`env:` / `file:` name where a secret lives, not the
secret), and any URL carrying a password (`audit.store: postgresql://user:pw@host/db`, or `?password=…`,
`?api-key=…` in its query). Each is replaced, in place, by `"<masked key_…>"`: the same fingerprint
`key_fingerprint` gives a key without an id (12 hex digits of its sha256, as audit records show already). Restoring looks the fingerprint up among the live config's secrets: a
secret that is not in the live config any more (a revoked key) is never brought back; the rollback is refused and
says which one, at which line."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlsplit

import yaml

from dragoman.config.secrets import key_fingerprint
from dragoman.config.yaml_source import parse_yaml

_PLACEHOLDER = re.compile(r'"<masked (key_[0-9a-f]{12})>"')
_MASKED = re.compile(r"<masked key_[0-9a-f]{12}>")  # a placeholder's value: masking a masked text changes nothing
_REFERENCE_KEYS = frozenset(("env", "file"))


class UnrestorableSecret(ValueError):
    """A masked secret of a stored version is not in the live config: the message names it and its line."""


def mask_secrets(text: str) -> str:
    """The config text with every inline secret replaced by its placeholder; text that is not YAML stays as is
    (it never loaded, so it is never stored as a version)."""
    spans = sorted(_secret_spans(text), reverse=True)
    for start, end, value in spans:
        text = text[:start] + f'"<masked {key_fingerprint(value)}>"' + text[end:]
    return text


def restore_secrets(masked: str, live_text: str | None) -> str:
    """The masked text with each placeholder replaced by the live config's secret of that fingerprint."""
    live_text = live_text or ""
    # The live file's own spelling of each secret (quoted or plain): a restored file is then byte for byte the
    # version it was, and hashes to it again.
    live = {key_fingerprint(value): live_text[start:end] for start, end, value in _secret_spans(live_text)}
    missing = [(masked.count("\n", 0, m.start()) + 1, m.group(1)) for m in _PLACEHOLDER.finditer(masked)
               if m.group(1) not in live]
    if missing:
        where = ", ".join(f"line {line} ({fingerprint})" for line, fingerprint in missing)
        raise UnrestorableSecret(f"the version's inline secret(s) at {where} are not in the live config, so they "
                                 "cannot be restored (a key that was removed is never brought back); edit the "
                                 "file by hand instead")
    return _PLACEHOLDER.sub(lambda m: live[m.group(1)], masked)


def _secret_spans(text: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, value) of each inline secret's scalar in the text."""
    try:
        root, _ = parse_yaml(text, "<config>")
    except Exception:  # noqa: BLE001 - not YAML: nothing to mask (and nothing that loads)
        return
    if not isinstance(root, yaml.MappingNode):
        return
    seen: set[int] = set()
    for node in _secret_nodes(root):
        if id(node) not in seen and node.value and not _MASKED.fullmatch(node.value):  # masked already: as is
            seen.add(id(node))
            yield _span(text, node)
    for node in _scalars(root):
        if id(node) not in seen and _has_password(node.value):
            seen.add(id(node))
            yield _span(text, node)


def _span(text: str, node: yaml.ScalarNode) -> tuple[int, int, str]:
    start, end = node.start_mark.index, node.end_mark.index
    while end > start and text[end - 1] == "\n":  # a block scalar's span takes its line break(s) along
        end -= 1
    return start, end, node.value


def _secret_nodes(root: yaml.MappingNode) -> Iterator[yaml.ScalarNode]:
    for item in _items(_get(root, "auth", "keys")):
        if isinstance(item, yaml.ScalarNode):
            yield item
        elif isinstance(key := _get(item, "key"), yaml.ScalarNode):
            yield key
    for item in _items(_get(root, "admin", "keys")):
        if isinstance(item, yaml.ScalarNode):
            yield item
    secrets = _get(root, "secrets")
    if isinstance(secrets, yaml.MappingNode):
        for _, spec in secrets.value:
            if isinstance(spec, yaml.MappingNode):
                yield from (v for k, v in spec.value if isinstance(v, yaml.ScalarNode) and k.value not in _REFERENCE_KEYS)
            elif isinstance(spec, yaml.ScalarNode):
                yield spec


def _get(node: yaml.Node | None, *keys: str) -> yaml.Node | None:
    for key in keys:
        if not isinstance(node, yaml.MappingNode):
            return None
        node = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == key), None)
    return node


def _items(node: yaml.Node | None) -> list[yaml.Node]:
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def _scalars(node: yaml.Node, depth: int = 0) -> Iterator[yaml.ScalarNode]:
    if isinstance(node, yaml.ScalarNode):
        yield node
    elif depth < 64 and isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
        for child in node.value:
            for part in child if isinstance(child, tuple) else (child,):
                yield from _scalars(part, depth + 1)


# A URL's query parameters that carry a credential, as people write them into configs: libpq's `password` and
# `sslpassword` (postgresql://dragoman@db/audit?password=…), Redis' `password`, providers' `api-key` / `key` /
# `access_token`, signed URLs' `sig`. Masking a URL that needed none costs nothing: a rollback restores it.
_CREDENTIAL_PARAM = re.compile(r"(pass(word|wd)?|pwd|secret|token|key|sig(nature)?|auth|credential)s?$", re.I)


def _has_password(value: str) -> bool:
    """Whether a scalar is a URL that carries a credential: a password before its host, or in its query."""
    if "://" not in value or ("@" not in value and "=" not in value):
        return False
    try:
        parts = urlsplit(value.strip())
        if parts.password is not None:
            return True
    except ValueError:
        return False
    return any(_CREDENTIAL_PARAM.search(name) for name, _ in parse_qsl(parts.query, keep_blank_values=True))
