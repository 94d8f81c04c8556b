"""The config model: the file's schema as msgspec Structs (unknown keys are errors), and the resolved Config of
flat Routes the gateway runs on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import msgspec

from dragoman.config.governance import GovernanceSettings
from dragoman.config.loop import LoopSettings
from dragoman.config.observe import (
    AdminSettings,
    AuditSettings,
    MetricsSettings,
    ObserveSettings,
    TracingSettings,
)
from dragoman.config.secrets import Auth, GatewayKey
from dragoman.policy.language import Policy
from dragoman.translate.options import TranslationOptions

MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_WEIGHT = 1_000_000  # a weighted candidate's weight (shares are relative: this bounds only their sum)

_PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
_PositiveInt = Annotated[int, msgspec.Meta(gt=0)]


# --- the file's schema -------------------------------------------------------------------------------------


# USD per million tokens. The dearest model priced anywhere costs a few hundred; the bound refuses an exponent typo
# (1.0e+308 loads as a finite float, yet makes every record's cost infinite) while leaving room for any real price.
MAX_PRICE = 1_000_000
_Price = Annotated[float, msgspec.Meta(ge=0, le=MAX_PRICE)]


class Pricing(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """USD per million tokens: `Pricing(input, cached_input, output)`. All three are required in a route's
    `pricing:` block, so a missing cache price is never silently the full one (write input's value if the
    upstream has no cache discount)."""

    input: _Price
    cached_input: _Price
    output: _Price


class Timeouts(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Upstream timeouts in seconds: TCP connect, wait for the first response byte, silence between chunks."""

    connect: _PositiveFloat = 10.0
    first_byte: _PositiveFloat = 600.0
    idle: _PositiveFloat = 600.0


class Upstream(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A route's `upstream:` block as written in the file."""

    provider: str
    model: str
    endpoint: str | None = None  # None: the provider's own endpoint (openai, anthropic)
    api: str | None = None  # chat | responses | messages; None: from the endpoint and provider
    api_key_ref: str | None = None  # None: send no key (local servers)
    max_output_tokens: _PositiveInt | None = None
    timeout: Timeouts = Timeouts()
    deployment: str | None = None  # azure_openai: the deployment (in Chat's URL, else the body's model); None: model
    api_version: str | None = None  # azure_openai: the api-version query (Chat: 2024-10-21; Responses: v1 API)


class Retry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How a failed attempt is retried before the next candidate: bounded, with jittered exponential backoff."""

    attempts: Annotated[int, msgspec.Meta(ge=1, le=10)] = 2  # tries of this route in all (the first included)
    backoff: Annotated[float, msgspec.Meta(ge=0)] = 0.25  # seconds before the 2nd try, doubled after
    max_backoff: Annotated[float, msgspec.Meta(ge=0)] = 5.0  # and the longest retry-after honoured


class Breaker(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Per-upstream circuit breaker: open after `failures` in a row, probe again after `cooldown` seconds."""

    failures: _PositiveInt = 5
    cooldown: _PositiveFloat = 30.0


class CandidateEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One weighted candidate of a route's `candidates:` list: a route with an upstream, and its share."""

    route: str
    # At most MAX_WEIGHT: the pick sums the weights, and 1e308 + 1e308 is inf (every pick then fell on the last).
    weight: Annotated[float, msgspec.Meta(gt=0, le=MAX_WEIGHT)]


class PromptPrefix(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A system-prompt prefix variant: traffic splits across a route's variants, the loop keeps the best."""

    name: str
    text: str = ""  # "" is the plain variant: the system prompt as the client sent it


class RouteEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One item of `routes:` as written in the file: an `upstream:`, or weighted `candidates:` (one of the two)."""

    name: str
    upstream: Upstream | None = None
    candidates: tuple[CandidateEntry, ...] | None = None
    prompt_prefixes: tuple[PromptPrefix, ...] = ()
    inbound_protocol: str = "anthropic"
    translation: TranslationOptions = TranslationOptions()
    fallbacks: tuple[str, ...] = ()
    retry: Retry = Retry()
    breaker: Breaker = Breaker()
    pricing: Pricing | None = None  # USD per million tokens, overriding the built-in table


class PolicyEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A routing policy: a rule, and the requested model names it applies to (fnmatch patterns).

    Without applies_to it applies to every request, route names included: the guide's `cost_aware_routing`
    is meant for requests that name `gpt-5-via-gateway` itself."""

    name: str
    rule: str
    applies_to: tuple[str, ...] | None = None


class CompiledPolicy(msgspec.Struct, frozen=True):
    """A policy ready for the hot path: the rule's closures, its applies_to patterns (None: every request), and
    the file line of its name (for `dragoman check`'s warnings)."""

    policy: Policy
    applies_to: tuple[str, ...] | None
    line: int = 0

    def scope(self) -> str:
        """The requested names it applies to, as people read them."""
        return "every request" if self.applies_to is None else ", ".join(self.applies_to)


class ModelRoute(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An fnmatch pattern on the requested model name and the route it selects."""

    match: str
    route: str


class ServerSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The HTTP face: what one client may send and for how long, how many may connect, who may call (README)."""

    max_body_bytes: _PositiveInt = MAX_BODY_BYTES
    max_header_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 64 * 1024  # request line + headers; larger: 431
    max_headers: Annotated[int, msgspec.Meta(ge=8)] = 100
    header_timeout: _PositiveFloat = 10.0  # seconds from connect (or a request's first byte) to its last header
    body_timeout: _PositiveFloat = 60.0  # seconds from the last header to the body's last byte
    max_connections: _PositiveInt | None = None  # per process; None: half the descriptor limit (serving.py)
    shutdown_timeout: Annotated[float, msgspec.Meta(ge=0)] = 30.0  # SIGTERM: how long requests in flight may finish
    cors_origins: tuple[str, ...] = ()  # browser origins allowed to call ("https://app.example.com", or "*")
    allowed_hosts: tuple[str, ...] = ()  # Host values accepted on loopback besides localhost/127.0.0.1/[::1]


class ClientSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What `dragoman claude` tells the gateway about its caller: the gateway itself does not read it."""

    team: str | None = None  # sent as x-dragoman-team (README, "Point Claude Code at it")


class ConfigFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The whole file as written, before secrets are resolved and routes flattened."""

    routes: tuple[RouteEntry, ...]
    default_route: str | None = None
    model_routes: tuple[ModelRoute, ...] = ()
    policies: tuple[PolicyEntry, ...] = ()
    auth: Auth = Auth()
    server: ServerSettings = ServerSettings()
    audit: AuditSettings = AuditSettings()
    metrics: MetricsSettings = MetricsSettings()
    tracing: TracingSettings = TracingSettings()
    admin: AdminSettings = AdminSettings()
    client: ClientSettings = ClientSettings()
    loop: LoopSettings = LoopSettings()
    governance: GovernanceSettings = GovernanceSettings()
    # Entries are validated one by one: msgspec reports a bad dict value at `$.secrets[...]`, with no key to locate.
    secrets: dict[str, Any] = {}


# --- what the gateway runs on ------------------------------------------------------------------------------


class Route(msgspec.Struct, frozen=True):
    """A resolved route, flat so the hot path reads plain attributes. model None = pass the requested name through."""

    name: str
    provider: str  # openai | openai_compatible | azure_openai | anthropic
    model: str | None
    endpoint: str  # the full URL requests are POSTed to
    api_key: str | None
    timeouts: Timeouts
    translation: TranslationOptions
    api: str = "chat"  # the upstream's wire protocol: chat | responses | messages
    fallbacks: tuple[str, ...] = ()
    retry: Retry = Retry()
    breaker: Breaker = Breaker()
    pricing: Pricing | None = None
    prompt_prefixes: tuple[PromptPrefix, ...] = ()  # variants of the system-prompt prefix (the loop picks)
    key_source: str = "the route's api_key_ref"  # where its key is set, for the error an upstream's 401 becomes
    # The name the request body's `model` carries instead of `model` (Azure's v1 and Responses URLs have no
    # deployment segment: the deployment goes there); `model` still decides how the request is translated.
    body_model: str | None = None

    def upstream_model(self, requested: str) -> str:
        """The model name to send upstream for a client's requested model."""
        return requested if self.model is None else self.model

    def __repr__(self) -> str:
        # The default repr would print api_key into logs and tracebacks.
        return (
            f"Route(name={self.name!r}, provider={self.provider!r}, model={self.model!r}, endpoint={self.endpoint!r})"
        )


class WeightedRoute(msgspec.Struct, frozen=True):
    """A route written with `candidates:`: a request routed to it goes to one candidate, picked by weight among
    those whose breaker is ready and the correctness loop has not demoted for the request's turn shape
    (dragoman/loop/shift.py). The chosen candidate's own fallbacks follow it. Candidates are routes with an
    upstream (no nesting)."""

    name: str
    candidates: tuple[CandidateEntry, ...]


class Config(msgspec.Struct, frozen=True):
    """A loaded, validated config: routes in file order, routing rules, inbound keys and server settings."""

    routes: tuple[Route, ...]
    default_route: str | None
    model_routes: tuple[ModelRoute, ...]
    auth_keys: frozenset[str]
    server: ServerSettings
    source: str  # the file it came from, or "<zero-config>"
    policies: tuple[CompiledPolicy, ...] = ()
    keys: Mapping[str, GatewayKey] = {}  # inbound key → its id and holder; empty: no inbound auth
    metrics_key: str | None = None  # the scrape key of metrics.scrape_key_ref (metrics.auth: key), resolved
    observe: ObserveSettings = ObserveSettings()
    client: ClientSettings = ClientSettings()
    loop: LoopSettings = LoopSettings()
    governance: GovernanceSettings = GovernanceSettings()
    weighted: tuple[WeightedRoute, ...] = ()  # routes written with candidates:, in file order
    text: str | None = None  # the file's text as loaded (None: zero-config): its config version is its hash

    def __repr__(self) -> str:
        # auth_keys are secrets; keep them out of logs.
        return f"Config(source={self.source!r}, routes={[r.name for r in self.routes]!r})"
