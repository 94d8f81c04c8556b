"""The audit record: one per request, built by the server, written off the hot path by `AuditWriter`.

Also `redact`, which keeps secrets out of every free-text field (who the caller is: dragoman.identity).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import msgspec

REDACTED = "[REDACTED]"

# What a secret looks like in free text: OpenAI/Anthropic style keys (sk-, sk-proj-, sk-ant-), bearer tokens,
# header or parameter assignments of keys, AWS and Google API keys. False positives cost a word, misses a key.
_SECRET = re.compile(
    r"""(?ix)
    \bsk-[a-z0-9][a-z0-9_\-]{6,}
    | \bbearer\s+[a-z0-9._~+/=\-]{6,}
    | \b(?:x-api-key|api[_-]?key|authorization|access[_-]?token|secret|password)\b["']?\s*[:=]\s*["']?(?:bearer\s+)?[^\s"',;}]{4,}
    | \bAKIA[0-9A-Z]{16}\b
    | \bAIza[0-9A-Za-z_\-]{20,}
    """
)


def redact(text: str) -> str:
    """`text` with anything that looks like a key or token replaced by [REDACTED]."""
    if not text:
        return text
    return _SECRET.sub(REDACTED, text)




class Candidate(msgspec.Struct, kw_only=True):
    """One upstream tried for a request, in the order tried."""

    route: str
    upstream: str | None = None  # the upstream's name or host, never its URL's credentials
    model: str | None = None
    outcome: str = "ok"  # ok | error | timeout | skipped (breaker open) | rate_limited
    status: int | None = None  # the upstream's HTTP status, when it answered
    error_type: str | None = None
    latency_ms: float | None = None


class AuditRecord(msgspec.Struct, kw_only=True):
    """Everything worth knowing about one request after it finished. Mutable: the server fills it as it goes."""

    time: float  # epoch seconds when the request arrived
    request_id: str
    key_id: str | None = None  # a gateway key's id or fingerprint, never the key
    developer: str | None = None
    team: str | None = None
    repo: str | None = None
    session: str | None = None
    requested_model: str | None = None
    policy: str | None = None  # the routing policy and branch that fired
    branch: str | None = None
    input_estimate: int | None = None
    candidates: list[Candidate] = []
    route: str | None = None  # the route that answered (or the last tried)
    upstream_model: str | None = None
    provider: str | None = None
    status: int = 200  # HTTP status sent to the client
    error_type: str | None = None
    stream: bool = False
    latency_total_ms: float | None = None
    ttfb_ms: float | None = None
    upstream_ms: float | None = None
    overhead_ms: float | None = None  # total minus time spent waiting on upstreams: the gateway's own cost
    input_tokens: int = 0  # uncached input
    output_tokens: int = 0  # includes reasoning tokens, as OpenAI bills them
    cache_read_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float | None = None  # None: no price known for the model; the writer fills it when left None
    notes: list[str] = []  # translation notes: "cache_control dropped", "tool name shortened", …
    stream_events: int = 0

    @property
    def time_iso(self) -> str:
        return datetime.fromtimestamp(self.time, UTC).isoformat(timespec="milliseconds")

    def redacted(self) -> AuditRecord:
        """This record with secrets stripped from every free-text field (in place; returns self)."""
        texts = [getattr(self, name) or "" for name in _FREE_TEXT]
        texts += self.notes
        texts += [cand.error_type or "" for cand in self.candidates]
        joined = "\n".join(texts).lower()
        # Substring checks first (~0.5 µs): the regex over the same text costs ~4 µs per record.
        if not any(marker in joined for marker in _SECRET_MARKERS) or not _SECRET.search(joined):
            return self
        for name in _FREE_TEXT:
            value = getattr(self, name)
            if value:
                setattr(self, name, redact(value))
        if self.notes:
            self.notes = [redact(note) for note in self.notes]
        for cand in self.candidates:
            if cand.error_type:
                cand.error_type = redact(cand.error_type)
        return self


# Every alternative of _SECRET contains one of these (lower-case), so text without any of them holds no secret.
_SECRET_MARKERS = ("sk-", "bearer", "key", "authorization", "token", "secret", "password", "akia", "aiza")
_FREE_TEXT = ("developer", "team", "repo", "session", "requested_model", "error_type", "policy", "branch")
