"""Config model and YAML loader: a file becomes a Config of flat Routes, or a ConfigError naming file and line."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import msgspec

from dragoman.errors import ConfigError
from dragoman.routing.yaml_source import Path, Source, parse_yaml
from dragoman.translate.options import TranslationOptions

MAX_BODY_BYTES = 32 * 1024 * 1024
OPENAI_BASE_URL = "https://api.openai.com/v1"
_CHAT_PATH = "/chat/completions"

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
    endpoint: str | None = None  # None: OpenAI's own endpoint (provider openai only)
    api_key_ref: str | None = None  # None: send no key (local servers)
    max_output_tokens: _PositiveInt | None = None
    timeout: Timeouts = Timeouts()


class RouteEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One item of `routes:` as written in the file."""

    name: str
    upstream: Upstream
    inbound_protocol: str = "anthropic"
    translation: TranslationOptions = TranslationOptions()


class ModelRoute(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An fnmatch pattern on the requested model name and the route it selects."""

    match: str
    route: str


class Auth(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    keys: tuple[str, ...] = ()


class ServerSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    max_body_bytes: _PositiveInt = MAX_BODY_BYTES


class Secret(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where an api_key_ref's value lives: exactly one of an env var or a file."""

    env: str | None = None
    file: str | None = None


class ConfigFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The whole file as written, before secrets are resolved and routes flattened."""

    routes: tuple[RouteEntry, ...]
    default_route: str | None = None
    model_routes: tuple[ModelRoute, ...] = ()
    auth: Auth = Auth()
    server: ServerSettings = ServerSettings()
    # Entries are validated one by one: msgspec reports a bad dict value at `$.secrets[...]`, with no key to locate.
    secrets: dict[str, Any] = {}


# --- what the gateway runs on ------------------------------------------------------------------------------


class Route(msgspec.Struct, frozen=True):
    """A resolved route, flat so the hot path reads plain attributes. model None = pass the requested name through."""

    name: str
    provider: str
    model: str | None
    endpoint: str  # full URL, ending in /chat/completions
    api_key: str | None
    timeouts: Timeouts
    translation: TranslationOptions

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

    def __repr__(self) -> str:
        # auth_keys are secrets; keep them out of logs.
        return f"Config(source={self.source!r}, routes={[r.name for r in self.routes]!r})"


# --- from file to Config -----------------------------------------------------------------------------------

_POLICIES = (
    "policies are not supported yet (routing policies arrive with the routing release); remove the policies block"
)

# Values the translators implement; anything else would be silently ignored downstream, so it is an error here.
_CHOICES: tuple[tuple[Path, tuple[str, ...]], ...] = (
    (("inbound_protocol",), ("anthropic",)),
    (("upstream", "provider"), ("openai", "openai_compatible")),
    (("translation", "system_placement"), ("first_message",)),
    (("translation", "system_role"), ("system", "developer")),
    (("translation", "tool_use"), ("openai_tool_calls",)),
    (("translation", "streaming"), ("anthropic_events",)),
    (("translation", "reasoning_effort"), ("auto", "off", "minimal", "low", "medium", "high")),
    (("translation", "server_tools"), ("reject", "drop")),
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
    if "policies" in data:
        raise src.error(("policies",), _POLICIES, key=True)
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
        auth_keys=_env_auth_keys(env),
        server=ServerSettings(),
        source="<zero-config>",
    )


def chat_completions_url(url: str) -> str:
    """The Chat Completions URL for an endpoint or a base URL (`http://host:8000/v1`); ValueError if not http(s)."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f'"{url}" is not an http(s) URL')
    path = parts.path.rstrip("/")
    if not path.endswith(_CHAT_PATH):
        path += _CHAT_PATH
    return urlunsplit(parts._replace(path=path))


def _build(file: ConfigFile, src: Source) -> Config:
    if not file.routes:
        raise src.error(("routes",), "at least one route is required")
    names = _route_names(file.routes, src)
    if file.default_route is not None:
        _check_route_ref(file.default_route, ("default_route",), names, src)
    for i, rule in enumerate(file.model_routes):
        _check_route_ref(rule.route, ("model_routes", i, "route"), names, src)
    secrets = {name: _secret_spec(name, spec, src) for name, spec in file.secrets.items()}
    routes = tuple(_route(entry, ("routes", i), secrets, src) for i, entry in enumerate(file.routes))
    return Config(
        routes=routes,
        default_route=file.default_route,
        model_routes=file.model_routes,
        auth_keys=_auth_keys(file.auth, src),
        server=file.server,
        source=src.name,
    )


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
            raise src.error(path + rel, f'"{value}" is not one of: {", ".join(allowed)}')
    upstream = entry.upstream
    ref = upstream.api_key_ref
    return Route(
        name=entry.name,
        provider=upstream.provider,
        model=upstream.model,
        endpoint=_endpoint(upstream, path + ("upstream",), src),
        api_key=None if ref is None else _secret(ref, path + ("upstream", "api_key_ref"), secrets, src),
        timeouts=upstream.timeout,
        translation=_translation(entry, path, src),
    )


def _endpoint(upstream: Upstream, path: Path, src: Source) -> str:
    if upstream.endpoint is None:
        if upstream.provider == "openai":
            return OPENAI_BASE_URL + _CHAT_PATH
        raise src.error(path, "endpoint is required for provider openai_compatible (e.g. http://localhost:8000/v1)")
    try:
        return chat_completions_url(upstream.endpoint)
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


def _secret_spec(name: str, spec: Any, src: Source) -> Secret:
    secret: Secret = src.convert(spec, Secret, ("secrets", name))
    if (secret.env is None) == (secret.file is None):
        raise src.error(("secrets", name), "give exactly one of {env: VAR} or {file: PATH}")
    return secret


def _secret(ref: str, path: Path, secrets: dict[str, Secret], src: Source) -> str:
    """The value of api_key_ref `ref`: env var REF, or what secrets: maps it to. Errors never include the value."""
    secret = secrets.get(ref)
    if secret is None:
        return _env_secret(ref.upper(), f'api_key_ref "{ref}"; map it under secrets: to read another source', path, src)
    if secret.env is not None:
        return _env_secret(secret.env, f"secrets.{ref}", path, src)
    assert secret.file is not None
    return _file_secret(secret.file, ref, path, src)


def _env_secret(var: str, origin: str, path: Path, src: Source) -> str:
    value = src.env.get(var, "").strip()
    if not value:
        raise src.error(path, f"env var {var} is not set or empty ({origin})")
    return value


def _file_secret(file: str, ref: str, path: Path, src: Source) -> str:
    full = os.path.join(src.base_dir, os.path.expanduser(file))
    try:
        with open(full, encoding="utf-8") as f:
            value = f.read().strip()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise src.error(path, f"cannot read secret file {full} (secrets.{ref}): {reason}") from None
    except UnicodeDecodeError:
        raise src.error(path, f"secret file {full} (secrets.{ref}) is not UTF-8 text") from None
    if not value:
        raise src.error(path, f"secret file {full} (secrets.{ref}) is empty")
    return value


def _auth_keys(auth: Auth, src: Source) -> frozenset[str]:
    for i, key in enumerate(auth.keys):
        if not key.strip():
            raise src.error(("auth", "keys", i), "an inbound key must not be empty")
    return frozenset(key.strip() for key in auth.keys) | _env_auth_keys(src.env)


def _env_auth_keys(env: Mapping[str, str]) -> frozenset[str]:
    return frozenset(key.strip() for key in env.get("DRAGOMAN_API_KEYS", "").split(",") if key.strip())
