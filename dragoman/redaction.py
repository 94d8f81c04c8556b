"""Secret redaction: the one function every free text passes before it reaches a client, a log, a record or a
span — upstream error messages (HTTP bodies, stream chunks, relayed `error` events) and audit fields alike — and
the bound on such text (`redact_cut`, `clip`), which redacts before it cuts."""

from __future__ import annotations

import re
from typing import TypeVar

from dragoman.errors import GatewayError

E = TypeVar("E", bound=GatewayError)
REDACTED = "[REDACTED]"

# What a secret looks like in free text: OpenAI/Anthropic style keys (sk-, sk-proj-, sk-ant-), also as OpenAI
# echoes them half masked ("Incorrect API key provided: sk-proj-****…abcd"), bearer tokens, header or parameter
# assignments of keys, AWS and Google API keys. False positives cost a word, misses a key.
_SECRET = re.compile(
    r"""(?ix)
    \bsk-[a-z0-9*][a-z0-9_\-*]{6,}
    | \bbearer\s+[a-z0-9._~+/=\-]{6,}
    | \b(?:x-api-key|api[_-]?key|authorization|access[_-]?token|secret|password)\b["']?\s*[:=]\s*["']?(?:bearer\s+)?[^\s"',;}]{4,}
    | \bAKIA[0-9A-Z]{16}\b
    | \bAIza[0-9A-Za-z_\-]{20,}
    """
)
# Every alternative of _SECRET contains one of these (lower-case), so text without any of them holds no secret.
_MARKERS = ("sk-", "bearer", "key", "authorization", "token", "secret", "password", "akia", "aiza")


def redact(text: str, secret: str | None = None) -> str:
    """`text` with `secret` (the credential the gateway sent, whatever its shape) and anything that looks like a
    key or token replaced by [REDACTED]."""
    if not text:
        return text
    if secret and secret in text:
        text = text.replace(secret, REDACTED)
    return _SECRET.sub(REDACTED, text)


# What `redact_cut` reads past the characters it keeps: room for a key that starts among them to be read whole (more
# than the longest text any _SECRET alternative needs to match, plus the route's secret), and for what redaction
# takes out (each key it replaces pulls later characters forward).
_KEY_ROOM = 256
_SHRINK_ROOM = 4096


def redact_cut(text: str, limit: int, secret: str | None = None) -> str:
    """The first `limit` characters of `text` once redacted. Redaction comes before the cut (a key cut in two is no
    longer one `redact` finds: half of it would be shown) but reads a bounded window, never a whole 16 MiB upstream
    body, so its cost stays bounded."""
    room = _KEY_ROOM + (len(secret) if secret else 0)
    window = text[: limit + room + _SHRINK_ROOM]
    shown = redact(window, secret)
    if len(window) < len(text):
        # A key may straddle the window's end, where redaction saw only its start: what is shown must come from
        # before the window's last `room` characters. Shown character i was at most i + (what redaction took out
        # before it) in the window: the net shrinking, plus what replacing a secret shorter than REDACTED added.
        grown = window.count(secret) * max(0, len(REDACTED) - len(secret)) if secret else 0
        limit = min(limit, len(window) - room - (len(window) - len(shown)) - grown)
    return shown[: max(limit, 0)]


CLIPPED = "…"  # ends a clipped text: the reader sees it was cut


def clip(text: str, limit: int) -> str:
    """`text` bounded to `limit` characters for a record, a label or a note: itself (no copy) when short enough,
    the common case and then only a length check; else its first characters once redacted (`redact_cut`: a key
    the cut splits is not left half shown for a later `redact` to miss) ending in CLIPPED."""
    if len(text) <= limit:
        return text
    return redact_cut(text, limit - len(CLIPPED)) + CLIPPED


def holds_secret(text: str) -> bool:
    """Whether `redact` would change `text` (no route secret): a substring check first, ~0.5 µs, then the regex."""
    lowered = text.lower()
    return any(marker in lowered for marker in _MARKERS) and _SECRET.search(text) is not None


def redacted(err: E, secret: str | None) -> E:
    """`err` with its message redacted (in place: the exception's args too, which a traceback would print)."""
    err.message = redact(err.message, secret)
    err.args = (err.message,)
    return err
