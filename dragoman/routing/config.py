"""Config model and YAML loader: a file becomes a Config of flat Routes, or a ConfigError naming file and line."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Annotated, Any

import msgspec

from dragoman.errors import ConfigError
from dragoman.observe.pricing import Pricing
from dragoman.observe.settings import (
    AdminSettings,
    AuditSettings,
    MetricsSettings,
    ObserveSettings,
    TracingSettings,
)
from dragoman.routing.endpoints import (
    ANTHROPIC_BASE_URL,
    OPENAI_BASE_URL,
    api_url,
    azure_url,
    chat_completions_url,
)
from dragoman.routing.policy import Policy, compile_policy
from dragoman.routing.secrets import (
    Auth,
    GatewayKey,
    KeyEntry,
    Secret,
    env_keys,
    gateway_keys,
    key_fingerprint,
    resolve_secret,
    secret_spec,
)
from dragoman.routing.yaml_source import Path, Source, parse_yaml
from dragoman.translate.options import TranslationOptions

__all__ = [  # what other modules and tests import from here, wherever it is defined
    "ANTHROPIC_BASE_URL", "MAX_BODY_BYTES", "OPENAI_BASE_URL", "Auth", "Breaker", "CompiledPolicy", "Config",
    "GatewayKey", "KeyEntry", "Retry", "Route", "Secret", "ServerSettings", "Timeouts", "Upstream", "api_url",
    "azure_url", "chat_completions_url", "key_fingerprint", "load_config", "parse_config", "zero_config",
]

MAX_BODY_BYTES = 32 * 1024 * 1024

_PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
_PositiveInt = Annotated[int, msgspec.Meta(gt=0)]


# --- the file's schema -------------------------------------------------------------------------------------


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
    deployment: str | None = None  # azure_openai: the deployment name in the URL
    api_version: str = "2024-10-21"  # azure_openai: the api-version query parameter


class Retry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How a failed attempt is retried before the next candidate: bounded, with jittered exponential backoff."""

    attempts: Annotated[int, msgspec.Meta(ge=1, le=10)] = 2  # tries of this route before moving on
    backoff: Annotated[float, msgspec.Meta(ge=0)] = 0.25  # seconds before the 2nd try, doubled after
    max_backoff: Annotated[float, msgspec.Meta(ge=0)] = 5.0  # and the longest retry-after honoured


class Breaker(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Per-upstream circuit breaker: open after `failures` in a row, probe again after `cooldown` seconds."""

    failures: _PositiveInt = 5
    cooldown: _PositiveFloat = 30.0


class RouteEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One item of `routes:` as written in the file."""

    name: str
    upstream: Upstream
    inbound_protocol: str = "anthropic"
    translation: TranslationOptions = TranslationOptions()
    fallbacks: tuple[str, ...] = ()
    retry: Retry = Retry()
    breaker: Breaker = Breaker()
    pricing: Pricing | None = None  # USD per million tokens, overriding the built-in table


class PolicyEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A routing policy: a rule, and the requested model names it applies to (fnmatch patterns).

    The default "*" covers every name that is not a route's own: a request for a route by name goes straight
    to it unless a policy lists that name in applies_to."""

    name: str
    rule: str
    applies_to: tuple[str, ...] = ("*",)


class CompiledPolicy(msgspec.Struct, frozen=True):
    """A policy ready for the hot path: the rule's closures and its applies_to patterns."""

    policy: Policy
    applies_to: tuple[str, ...]


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

    def upstream_model(self, requested: str) -> str:
        """The model name to send upstream for a client's requested model."""
        return requested if self.model is None else self.model

    def __repr__(self) -> str:
        # The default repr would print api_key into logs and tracebacks.
        return (
            f"Route(name={self.name!r}, provider={self.provider!r}, model={self.model!r}, endpoint={self.endpoint!r})"
        )


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
    observe: ObserveSettings = ObserveSettings()

    def __repr__(self) -> str:
        # auth_keys are secrets; keep them out of logs.
        return f"Config(source={self.source!r}, routes={[r.name for r in self.routes]!r})"


# --- from file to Config -----------------------------------------------------------------------------------


# Values the translators implement; anything else would be silently ignored downstream, so it is an error here.
_CHOICES: tuple[tuple[Path, tuple[str, ...]], ...] = (
    (("inbound_protocol",), ("anthropic",)),
    (("upstream", "provider"), ("openai", "openai_compatible", "azure_openai", "anthropic")),
    (("translation", "system_placement"), ("first_message",)),
    (("translation", "system_role"), ("system", "developer")),
    (("translation", "tool_use"), ("openai_tool_calls",)),
    (("translation", "streaming"), ("anthropic_events",)),
    (("translation", "reasoning_effort"), ("auto", "off", "minimal", "low", "medium", "high")),
    (("translation", "server_tools"), ("reject", "drop")),
    (("translation", "max_tokens_field"), (None, "max_tokens", "max_completion_tokens")),
)


def load_config(path: str, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a YAML config file; secrets and DRAGOMAN_API_KEYS come from env (default os.environ)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: config file is not UTF-8 text") from None
    return parse_config(text, path, os.environ if env is None else env)


def parse_config(text: str, source: str, env: Mapping[str, str]) -> Config:
    """Validate config text. source names the file in errors and anchors relative secret file paths."""
    root, data = parse_yaml(text, source)
    src = Source(source, root, env)
    if data is None:
        raise src.error((), "the config is empty; it needs at least a routes: list")
    if not isinstance(data, dict):
        raise src.error((), "the config must be a mapping (routes:, default_route:, ...)")
    file: ConfigFile = src.convert(data, ConfigFile)
    return _build(file, src)


def zero_config(env: Mapping[str, str]) -> Config:
    """The config without a file: every model name goes verbatim to OpenAI Chat at OPENAI_BASE_URL."""
    try:
        endpoint = chat_completions_url(env.get("OPENAI_BASE_URL") or OPENAI_BASE_URL)
    except ValueError as exc:
        raise ConfigError(f"OPENAI_BASE_URL: {exc}") from None
    route = Route(
        name="openai",
        provider="openai",
        model=None,
        endpoint=endpoint,
        api_key=env.get("OPENAI_API_KEY", "").strip() or None,
        timeouts=Timeouts(),
        translation=TranslationOptions(),
    )
    return Config(
        routes=(route,),
        default_route="openai",
        model_routes=(),
        auth_keys=frozenset(env_keys(env)),
        keys=env_keys(env),
        server=ServerSettings(),
        source="<zero-config>",
    )


def _build(file: ConfigFile, src: Source) -> Config:
    if not file.routes:
        raise src.error(("routes",), "at least one route is required")
    names = _route_names(file.routes, src)
    if file.default_route is not None:
        _check_route_ref(file.default_route, ("default_route",), names, src)
    for i, rule in enumerate(file.model_routes):
        _check_route_ref(rule.route, ("model_routes", i, "route"), names, src)
    for i, entry in enumerate(file.routes):
        for j, name in enumerate(entry.fallbacks):
            _check_route_ref(name, ("routes", i, "fallbacks", j), names, src)
            if name == entry.name:
                raise src.error(("routes", i, "fallbacks", j), "a route cannot fall back to itself")
    secrets = {name: secret_spec(name, spec, src) for name, spec in file.secrets.items()}
    routes = tuple(_route(entry, ("routes", i), secrets, src) for i, entry in enumerate(file.routes))
    policies = _policies(file.policies, names, src)
    keys = gateway_keys(file.auth, secrets, src)
    return Config(
        policies=policies,
        routes=routes,
        default_route=file.default_route,
        model_routes=file.model_routes,
        auth_keys=frozenset(keys),
        keys=keys,
        observe=ObserveSettings(audit=file.audit, metrics=file.metrics, tracing=file.tracing, admin=file.admin),
        server=_server(file.server, src),
        source=src.name,
    )


def _server(settings: ServerSettings, src: Source) -> ServerSettings:
    """Origins and Host names are compared as the browser sends them: refuse what could never match."""
    for i, origin in enumerate(settings.cors_origins):
        if origin != "*" and not _ORIGIN.fullmatch(origin):
            raise src.error(("server", "cors_origins", i), f'"{origin}" is not an origin like https://app.example.com '
                            '(scheme://host[:port], no path) or "*"')
    for i, host in enumerate(settings.allowed_hosts):
        if host != "*" and not _HOST.fullmatch(host):
            raise src.error(("server", "allowed_hosts", i), f'"{host}" is not a host name like gateway.internal or '
                            'gateway.internal:8080 (no scheme, no path) or "*"')
    return msgspec.structs.replace(
        settings,
        cors_origins=tuple(o.lower() for o in settings.cors_origins),
        allowed_hosts=tuple(h.lower() for h in settings.allowed_hosts),
    )


_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:[0-9]{1,5})?", re.IGNORECASE)
_HOST = re.compile(r"(\[[0-9a-f:.]+\]|[a-z0-9_.-]+)(:[0-9]{1,5})?", re.IGNORECASE)


def _policies(entries: tuple[PolicyEntry, ...], names: list[str], src: Source) -> tuple[CompiledPolicy, ...]:
    seen: set[str] = set()
    out = []
    for i, entry in enumerate(entries):
        path = ("policies", i)
        if entry.name in seen:
            raise src.error(path + ("name",), f'duplicate policy name "{entry.name}"')
        seen.add(entry.name)
        node = src.node(path + ("rule",))
        if getattr(node, "style", None) == ">":
            raise src.error(path + ("rule",), "write the rule as a | block: > folds lines and loses the indentation")
        first_line = src.text_start_line(path + ("rule",))
        policy = compile_policy(entry.name, entry.rule, source=src.name, first_line=first_line, routes=names)
        if not entry.applies_to:
            raise src.error(path + ("applies_to",), "applies_to needs at least one model name or pattern")
        out.append(CompiledPolicy(policy=policy, applies_to=entry.applies_to))
    return tuple(out)


def _route_names(entries: tuple[RouteEntry, ...], src: Source) -> list[str]:
    first: dict[str, int] = {}
    for i, entry in enumerate(entries):
        if not entry.name.strip():
            raise src.error(("routes", i, "name"), "route name must not be empty")
        if entry.name in first:
            line = src.line(("routes", first[entry.name], "name"))
            problem = f'duplicate route name "{entry.name}" (first defined on line {line})'
            raise src.error(("routes", i, "name"), problem)
        first[entry.name] = i
    return list(first)


def _check_route_ref(name: str, path: Path, names: list[str], src: Source) -> None:
    if name not in names:
        raise src.error(path, f'no route named "{name}"; routes: {", ".join(names)}')


def _route(entry: RouteEntry, path: Path, secrets: dict[str, Secret], src: Source) -> Route:
    for rel, allowed in _CHOICES:
        value: Any = entry
        for name in rel:
            value = getattr(value, name)
        if value not in allowed:
            raise src.error(path + rel, f'"{value}" is not one of: {", ".join(a for a in allowed if a)}')
    upstream = entry.upstream
    ref = upstream.api_key_ref
    api = _api(upstream, path + ("upstream",), src)
    translation = _translation(entry, path, src)
    if translation.passthrough and api != "messages":
        raise src.error(path + ("translation", "passthrough"), "passthrough needs provider anthropic")
    return Route(
        name=entry.name,
        provider=upstream.provider,
        model=upstream.model,
        endpoint=_endpoint(upstream, api, path + ("upstream",), src),
        api_key=None if ref is None else resolve_secret(ref, path + ("upstream", "api_key_ref"), secrets, src),
        timeouts=upstream.timeout,
        translation=translation,
        api=api,
        fallbacks=entry.fallbacks,
        retry=entry.retry,
        breaker=entry.breaker,
        pricing=entry.pricing,
    )


def _api(upstream: Upstream, path: Path, src: Source) -> str:
    """The upstream's wire protocol: as written, else from the provider and the endpoint's path."""
    api = upstream.api
    if api is None:
        if upstream.provider == "anthropic":
            return "messages"
        endpoint = (upstream.endpoint or "").split("?", 1)[0].rstrip("/")
        return "responses" if endpoint.endswith("/responses") else "chat"
    if api not in ("chat", "responses", "messages"):
        raise src.error(path + ("api",), f'"{api}" is not one of: chat, responses, messages')
    if (api == "messages") != (upstream.provider == "anthropic"):
        raise src.error(path + ("api",), "api messages goes with provider anthropic, and only with it")
    return api


def _endpoint(upstream: Upstream, api: str, path: Path, src: Source) -> str:
    provider = upstream.provider
    endpoint = upstream.endpoint
    if endpoint is None:
        if provider == "openai":
            endpoint = OPENAI_BASE_URL
        elif provider == "anthropic":
            endpoint = ANTHROPIC_BASE_URL
        else:
            raise src.error(path, f"endpoint is required for provider {provider} (e.g. http://localhost:8000/v1)")
    try:
        if provider == "azure_openai":
            return azure_url(endpoint, upstream.deployment or upstream.model, upstream.api_version, api)
        return api_url(endpoint, api)
    except ValueError as exc:
        raise src.error(path + ("endpoint",), str(exc)) from None


def _translation(entry: RouteEntry, path: Path, src: Source) -> TranslationOptions:
    # upstream.max_output_tokens is where users write the clamp; the translators read it from TranslationOptions.
    clamp, options = entry.upstream.max_output_tokens, entry.translation
    if clamp is None:
        return options
    if options.max_output_tokens is not None and options.max_output_tokens != clamp:
        problem = "conflicts with upstream.max_output_tokens; keep one"
        raise src.error(path + ("translation", "max_output_tokens"), problem)
    return msgspec.structs.replace(options, max_output_tokens=clamp)
