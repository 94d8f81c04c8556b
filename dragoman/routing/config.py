"""Config model and YAML loader: a file becomes a Config of flat Routes, or a ConfigError naming file and line."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import msgspec
import yaml
from msgspec import inspect as msgspec_inspect

from dragoman.errors import ConfigError
from dragoman.translate.options import TranslationOptions

MAX_BODY_BYTES = 32 * 1024 * 1024
OPENAI_BASE_URL = "https://api.openai.com/v1"
_CHAT_PATH = "/chat/completions"

_PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
_PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
_Path = tuple[str | int, ...]


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


# --- YAML with line numbers --------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 scalars: only true/false are booleans, and dates stay strings."""


# YAML 1.1 reads `off`, `no`, `on`, `yes` as booleans, which would turn `reasoning_effort: off` into False.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _parse_yaml(text: str, source: str) -> tuple[yaml.Node | None, Any]:
    """The node tree (for line numbers) and the plain data it constructs to."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, None
        _reject_duplicate_keys(root, source)
        return root, loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = ": ".join(p for p in (exc.context, exc.problem) if p)
        raise ConfigError(f"{source}{line}: invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}") from None
    finally:
        loader.dispose()


def _reject_duplicate_keys(node: yaml.Node, source: str, visited: set[int] | None = None) -> None:
    # PyYAML silently keeps the last of two equal keys; a repeated key in a config is always a mistake.
    visited = set() if visited is None else visited
    if id(node) in visited:  # aliases can share (or, recursively, contain) nodes
        return
    visited.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value != "<<":
                line = key.start_mark.line + 1
                if key.value in seen:
                    raise ConfigError(f'{source}:{line}: duplicate key "{key.value}" (first on line {seen[key.value]})')
                seen[key.value] = line
            _reject_duplicate_keys(value, source, visited)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _reject_duplicate_keys(item, source, visited)


def _child(node: yaml.Node, part: str | int, *, key: bool = False) -> yaml.Node | None:
    if isinstance(part, int) and isinstance(node, yaml.SequenceNode) and 0 <= part < len(node.value):
        return node.value[part]
    if isinstance(part, str) and isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node.value == part:
                return key_node if key else value_node
    return None


def _format_path(path: _Path) -> str:
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
    return text.lstrip(".")


# --- turning msgspec's errors into located messages ---------------------------------------------------------

_AT = re.compile(r"^(?P<msg>.*?)(?: - at (?P<key>`key` in )?`\$(?P<path>[^`]*)`)?$", re.DOTALL)
_PART = re.compile(r"\.(\w+)|\[(\d+)\]")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<field>.*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<field>.*)`$")


class _Source:
    """The file being loaded: its name, node tree and environment, and how to raise located errors."""

    def __init__(self, name: str, root: yaml.Node | None, env: Mapping[str, str]) -> None:
        self.name = name
        self.root = root
        self.env = env
        self.base_dir = os.path.dirname(name)

    def line(self, path: _Path, *, key: bool = False) -> int:
        """The 1-based line of the deepest node along path (the key's own line when key is set)."""
        node = self.root
        if node is None:
            return 1
        for i, part in enumerate(path):
            child = _child(node, part, key=key and i == len(path) - 1)
            if child is None:
                break
            node = child
        return node.start_mark.line + 1

    def error(self, path: _Path, problem: str, *, key: bool = False) -> ConfigError:
        where = f"{_format_path(path)}: " if path else ""
        return ConfigError(f"{self.name}:{self.line(path, key=key)}: {where}{problem}")

    def convert(self, data: Any, cls: type, path: _Path = ()) -> Any:
        """msgspec.convert, with a failure reported at the YAML line it came from."""
        try:
            return msgspec.convert(data, cls)
        except msgspec.ValidationError as exc:
            raise self._located(exc, cls, path) from None

    def _located(self, exc: msgspec.ValidationError, cls: type, prefix: _Path) -> ConfigError:
        found = _AT.match(str(exc))
        assert found is not None  # the pattern matches any string
        message = found["msg"].replace("`", "") + (" (in a key)" if found["key"] else "")
        rel = tuple(int(i) if i else name for name, i in _PART.findall(found["path"] or ""))
        path = prefix + rel
        if unknown := _UNKNOWN.match(found["msg"]):
            field = unknown["field"]
            where = f"in {_format_path(path)}" if path else "at the top level"
            hint = _did_you_mean(field, _field_names(cls, rel))
            line = self.line(path + (field,), key=True)
            return ConfigError(f'{self.name}:{line}: unknown field "{field}" {where}{hint}')
        if missing := _MISSING.match(found["msg"]):
            return self.error(path, f'missing required field "{missing["field"]}"')
        return self.error(path, message)


def _field_names(cls: type, path: _Path) -> list[str]:
    """The field names of the Struct found by following path from cls (for "did you mean")."""
    info: Any = msgspec_inspect.type_info(cls)
    for part in path:
        if isinstance(part, int):
            info = getattr(info, "item_type", None)
        else:
            struct = _struct_of(info)
            info = next((f.type for f in struct.fields if f.name == part), None) if struct is not None else None
        if info is None:
            return []
    struct = _struct_of(info)
    return [f.name for f in struct.fields] if struct is not None else []


def _struct_of(info: Any) -> Any:
    if isinstance(info, msgspec_inspect.UnionType):
        return next((s for t in info.types if (s := _struct_of(t)) is not None), None)
    return info if isinstance(info, msgspec_inspect.StructType) else None


def _did_you_mean(field: str, names: list[str]) -> str:
    close = difflib.get_close_matches(field, names, n=1)
    if close:
        return f' (did you mean "{close[0]}"?)'
    return f" (expected one of: {', '.join(names)})" if names else ""


# --- from file to Config -----------------------------------------------------------------------------------

_POLICIES = (
    "policies are not supported yet (routing policies arrive with the routing release); remove the policies block"
)

# Values the translators implement; anything else would be silently ignored downstream, so it is an error here.
_CHOICES: tuple[tuple[_Path, tuple[str, ...]], ...] = (
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
    root, data = _parse_yaml(text, source)
    src = _Source(source, root, env)
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


def _build(file: ConfigFile, src: _Source) -> Config:
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


def _route_names(entries: tuple[RouteEntry, ...], src: _Source) -> list[str]:
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


def _check_route_ref(name: str, path: _Path, names: list[str], src: _Source) -> None:
    if name not in names:
        raise src.error(path, f'no route named "{name}"; routes: {", ".join(names)}')


def _route(entry: RouteEntry, path: _Path, secrets: dict[str, Secret], src: _Source) -> Route:
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


def _endpoint(upstream: Upstream, path: _Path, src: _Source) -> str:
    if upstream.endpoint is None:
        if upstream.provider == "openai":
            return OPENAI_BASE_URL + _CHAT_PATH
        raise src.error(path, "endpoint is required for provider openai_compatible (e.g. http://localhost:8000/v1)")
    try:
        return chat_completions_url(upstream.endpoint)
    except ValueError as exc:
        raise src.error(path + ("endpoint",), str(exc)) from None


def _translation(entry: RouteEntry, path: _Path, src: _Source) -> TranslationOptions:
    # upstream.max_output_tokens is where users write the clamp; the translators read it from TranslationOptions.
    clamp, options = entry.upstream.max_output_tokens, entry.translation
    if clamp is None:
        return options
    if options.max_output_tokens is not None and options.max_output_tokens != clamp:
        problem = "conflicts with upstream.max_output_tokens; keep one"
        raise src.error(path + ("translation", "max_output_tokens"), problem)
    return msgspec.structs.replace(options, max_output_tokens=clamp)


def _secret_spec(name: str, spec: Any, src: _Source) -> Secret:
    secret: Secret = src.convert(spec, Secret, ("secrets", name))
    if (secret.env is None) == (secret.file is None):
        raise src.error(("secrets", name), "give exactly one of {env: VAR} or {file: PATH}")
    return secret


def _secret(ref: str, path: _Path, secrets: dict[str, Secret], src: _Source) -> str:
    """The value of api_key_ref `ref`: env var REF, or what secrets: maps it to. Errors never include the value."""
    secret = secrets.get(ref)
    if secret is None:
        return _env_secret(ref.upper(), f'api_key_ref "{ref}"; map it under secrets: to read another source', path, src)
    if secret.env is not None:
        return _env_secret(secret.env, f"secrets.{ref}", path, src)
    assert secret.file is not None
    return _file_secret(secret.file, ref, path, src)


def _env_secret(var: str, origin: str, path: _Path, src: _Source) -> str:
    value = src.env.get(var, "").strip()
    if not value:
        raise src.error(path, f"env var {var} is not set or empty ({origin})")
    return value


def _file_secret(file: str, ref: str, path: _Path, src: _Source) -> str:
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


def _auth_keys(auth: Auth, src: _Source) -> frozenset[str]:
    for i, key in enumerate(auth.keys):
        if not key.strip():
            raise src.error(("auth", "keys", i), "an inbound key must not be empty")
    return frozenset(key.strip() for key in auth.keys) | _env_auth_keys(src.env)


def _env_auth_keys(env: Mapping[str, str]) -> frozenset[str]:
    return frozenset(key.strip() for key in env.get("DRAGOMAN_API_KEYS", "").split(",") if key.strip())
