"""The audit record: one per request, built by the server, written off the hot path by `AuditWriter`.

Free-text fields pass `dragoman.redaction.redact` (who the caller is: dragoman.identity), in `redacted()`, which the
writer thread calls, off the event loop; they are at most TEXT_LIMIT characters (bounded when the record is built:
dragoman/exchange/audit.py).
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from dragoman.redaction import REDACTED, holds_secret, redact

__all__ = ["CANCELLED_STATUS", "CLIENT_DISCONNECTED", "REDACTED", "TEXT_LIMIT", "AuditRecord", "Candidate", "cancelled",
           "failed", "redact"]

# Characters a free-text field keeps (`redaction.clip`): model names, error types and notes are far shorter; the
# loop's verdict details (200-300) and translation notes (200) fit whole.
TEXT_LIMIT = 300

# A request the client abandoned (Esc in Claude Code): 499 (nginx's "client closed request") when it left before
# the first byte, 200 when it stopped reading a stream before its end; client_disconnected either way.
CANCELLED_STATUS = 499
CLIENT_DISCONNECTED = "client_disconnected"


def cancelled(status: int, error_type: str | None) -> bool:
    """Whether the client cancelled the request: neither an error nor a success. CANCELLED_SQL in stores.py and
    cancelled() in ui/static/lib/dom.js say the same."""
    return status == CANCELLED_STATUS or error_type == CLIENT_DISCONNECTED


def failed(status: int, error_type: str | None) -> bool:
    """Whether the request failed: a status of 400 or more, or an error after the first byte (a stream that broke
    mid-way is recorded 200 with stream_error), but not a cancellation, which says nothing of the gateway or its
    upstreams. FAILED_SQL in stores.py and failed() in ui/static/lib/dom.js say the same."""
    return (status >= 400 or error_type is not None) and not cancelled(status, error_type)


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
    # The correctness loop (dragoman.loop): what the answer was judged to be, and what the loop did with the request.
    tool_calls: int = 0  # tool_use blocks in the answer
    verdict: str | None = None  # "pass" | "fail"; None: not assessed (an error answer, or the loop is off)
    verdict_kinds: list[str] = []  # the failure kinds found (loop/verdict.py's vocabulary), in check order
    verdict_detail: str | None = None  # one short line on the first failure, redacted like every free text
    next_turn: str | None = None  # what the client's next request said of this answer's tool calls (set later)
    judge: str | None = None  # the judge route's verdict, when sampled (set later)
    shape: str | None = None  # the turn shape scores are kept per (loop/shape.py)
    prompt_variant: str | None = None  # the route's system-prompt prefix variant used, if it has variants
    config_version: str | None = None  # the config version the request ran under
    loop_events: list[str] = []  # what the loop did to this request: "demoted a for shape …", "probe", …
    # Whose budgets the request was charged against: its key's developer and team (the Grant's), never a header's,
    # so a budget seeded from the audit sums what its live counter counted; `developer`/`team` above attribute.
    # Not redacted: an admin set them (stored as such with the key), and seeding must match the budget's name.
    budget_developer: str | None = None
    budget_team: str | None = None

    @property
    def time_iso(self) -> str:
        return datetime.fromtimestamp(self.time, UTC).isoformat(timespec="milliseconds")

    def redacted(self) -> AuditRecord:
        """This record with secrets stripped from every free-text field (in place; returns self)."""
        texts = [getattr(self, name) or "" for name in _FREE_TEXT]
        texts += self.notes
        texts += self.loop_events
        for cand in self.candidates:
            texts += (getattr(cand, name) or "" for name in _CANDIDATE_TEXT)
        if not holds_secret("\n".join(texts)):
            return self
        for name in _FREE_TEXT:
            value = getattr(self, name)
            if value:
                setattr(self, name, redact(value))
        if self.notes:
            self.notes = [redact(note) for note in self.notes]
        if self.loop_events:
            self.loop_events = [redact(event) for event in self.loop_events]
        for cand in self.candidates:
            for name in _CANDIDATE_TEXT:
                value = getattr(cand, name)
                if value:
                    setattr(cand, name, redact(value))
        return self


# The upstream's answered `model` is upstream-controlled text: a proxy may echo its configuration or an error there.
_FREE_TEXT = ("developer", "team", "repo", "session", "requested_model", "upstream_model", "error_type", "policy",
              "branch", "verdict_detail")
_CANDIDATE_TEXT = ("upstream", "model", "error_type")
