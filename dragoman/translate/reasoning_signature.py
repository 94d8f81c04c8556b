"""Sealed thinking signatures: an upstream reasoning item carried through the client and back, untouched.

An Anthropic `thinking` block has an opaque `signature` that clients send back verbatim. We put the OpenAI
reasoning item (id + encrypted_content) there so the next turn can replay it and GPT-5 keeps its chain of
thought across tool calls. The client must not be able to forge or alter what we replay upstream, so the
payload is MACed with a per-deployment key: `dgm1.<base64url payload>.<base64url HMAC-SHA256>`, the MAC
covering the version prefix and the payload. Not encrypted: the payload is OpenAI's already-encrypted blob.
Pure: the key is passed in; no I/O.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import msgspec

from dragoman.protocols import openai_responses as R

PREFIX = "dgm1."
# payload and a 32-byte MAC, both unpadded base64url: anything else is not a signature of ours.
_FORMAT = re.compile(r"dgm1\.([A-Za-z0-9_-]*)\.([A-Za-z0-9_-]{43})")


def seal(item_bytes: bytes, key: bytes) -> str:
    """A signature carrying `item_bytes`, verifiable only with `key`."""
    payload = _b64encode(item_bytes)
    signed = PREFIX + payload
    return f"{signed}.{_b64encode(_mac(signed, key))}"


def open_(signature: str, key: bytes) -> bytes | None:
    """The bytes sealed in `signature`, or None when it is not ours (another format, another key, altered)."""
    match = _FORMAT.fullmatch(signature) if isinstance(signature, str) else None
    if match is None:
        return None
    signed, mac_text = signature[: match.start(2) - 1], match.group(2)
    # Compared as text: base64 has spare bits in its last character, so two MAC texts can decode alike.
    if not hmac.compare_digest(mac_text, _b64encode(_mac(signed, key))):
        return None
    return _b64decode(match.group(1))


def seal_reasoning(item: R.OutputItem, key: bytes) -> str:
    """The signature for an upstream reasoning item: what the next turn needs to replay it as input."""
    summary = [R.SummaryText(text=part.text) for part in item.summary or ()]
    replay = R.ReasoningItem(summary=summary, id=item.id, encrypted_content=item.encrypted_content)
    return seal(_encode(replay), key)


def open_reasoning(signature: str | None, key: bytes) -> R.ReasoningItem | None:
    """The reasoning item sealed in a thinking block's signature, or None when the signature is not ours."""
    payload = open_(signature or "", key)
    if payload is None:
        return None
    try:
        return _decode_reasoning(payload)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None  # sealed by us but not a reasoning item (another use of the key): not replayable


_encode = msgspec.json.encode
_decode_reasoning = msgspec.json.Decoder(R.ReasoningItem).decode


def _mac(signed: str, key: bytes) -> bytes:
    return hmac.new(key, signed.encode("ascii"), hashlib.sha256).digest()


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
