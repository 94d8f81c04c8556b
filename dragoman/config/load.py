"""From YAML file to Config: the loader, the zero-config setup, and the checks that refuse a file at its line."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import msgspec

from dragoman.config.endpoints import (
    ANTHROPIC_BASE_URL,
    OPENAI_BASE_URL,
    api_url,
    azure_target,
    chat_completions_url,
)
from dragoman.config.model import (
    ClientSettings,
    CompiledPolicy,
    Config,
    ConfigFile,
    ModelRoute,
    PolicyEntry,
    Route,
    RouteEntry,
    ServerSettings,
    Timeouts,
    Upstream,
)
from dragoman.config.governance import check_governance
from dragoman.config.loop import JudgeSettings, LoopSettings
from dragoman.config.observe import METRICS_AUTH, MetricsSettings, ObserveSettings
from dragoman.config.secrets import Secret, env_keys, gateway_keys, refuse_example_keys, resolve_secret, secret_spec
from dragoman.config.translation_keys import route_translation
from dragoman.config.shift import loop_settings, prompt_prefixes, weighted_route
from dragoman.config.yaml_source import Path, Source, parse_yaml
from dragoman.errors import ConfigError, quoted
from dragoman.policy.language import compile_policy
from dragoman.protocols.anthropic import MAX_MODEL_CHARS
from dragoman.translate.options import TranslationOptions

# Values the gateway implements; anything else would be silently ignored downstream, so it is an error here.
# The translation: block's keys are checked by config.translation_keys, against the route's upstream.
_CHOICES: tuple[tuple[Path, tuple[str, ...]], ...] = (
    (("inbound_protocol",), ("anthropic",)),  # the one protocol the server speaks to clients
    (("upstream", "provider"), ("openai", "openai_compatible", "azure_openai", "anthropic")),
)


def load_config(path: str, env: Mapping[str, str] | None = None, *, missing_secrets: list[str] | None = None) -> Config:
    """Read and validate a YAML config file; secrets and DRAGOMAN_API_KEYS come from env (default os.environ).
    With a `missing_secrets` list, a secret that cannot be read is noted there (file:line: problem) and left
    unset instead of failing the load: `dragoman check` validates a file on a machine without its secrets."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: config file is not UTF-8 text") from None
    return parse_config(text, path, os.environ if env is None else env, missing_secrets=missing_secrets)


def parse_config(
    text: str, source: str, env: Mapping[str, str], *, missing_secrets: list[str] | None = None
) -> Config:
    """Validate config text. source names the file in errors and anchors relative secret file paths."""
    refuse_example_keys(env)
    root, data = parse_yaml(text, source)
    src = Source(source, root, env, missing_secrets)
    if data is None:
        raise src.error((), "the config is empty; it needs at least a routes: list")
    if not isinstance(data, dict):
        raise src.error((), "the config must be a mapping (routes:, default_route:, ...)")
    file: ConfigFile = src.convert(data, ConfigFile)
    return msgspec.structs.replace(_build(file, src), text=text)  # the text is what config versions hash


# Zero-config serves Claude Code as README says: `--model gpt-5-via-gateway` and Claude Code's own background
# names (claude-haiku-4-5-…, claude-sonnet-4-5-…, claude-opus-…) would 404 at OpenAI if sent verbatim.
ZERO_CONFIG_MODELS = {"DRAGOMAN_DEFAULT_MODEL": "gpt-5", "DRAGOMAN_SMALL_MODEL": "gpt-5-mini"}
_ZERO_CONFIG_RULES = (
    ModelRoute(match="*haiku*", route="gpt-5-mini-via-gateway"),  # Claude Code's small, fast model
    ModelRoute(match="claude-*", route="gpt-5-via-gateway"),
)


def zero_config(env: Mapping[str, str]) -> Config:
    """The config without a file, on OpenAI Chat at OPENAI_BASE_URL: `gpt-5-via-gateway` and Claude Code's
    claude-* names go to $DRAGOMAN_DEFAULT_MODEL (gpt-5), `gpt-5-mini-via-gateway` and *haiku* names to
    $DRAGOMAN_SMALL_MODEL (gpt-5-mini); any other name (gpt-4.1, o3, …) is sent verbatim."""
    refuse_example_keys(env)
    try:
        endpoint = chat_completions_url(env.get("OPENAI_BASE_URL") or OPENAI_BASE_URL)
    except ValueError as exc:
        raise ConfigError(f"OPENAI_BASE_URL: {exc}") from None
    api_key = env.get("OPENAI_API_KEY", "").strip() or None
    default, small = ((env.get(name) or "").strip() or model for name, model in ZERO_CONFIG_MODELS.items())

    def openai(name: str, model: str | None) -> Route:
        return Route(name=name, provider="openai", model=model, endpoint=endpoint, api_key=api_key,
                     timeouts=Timeouts(), translation=TranslationOptions(), key_source="OPENAI_API_KEY")

    routes = (openai("gpt-5-via-gateway", default), openai("gpt-5-mini-via-gateway", small), openai("openai", None))
    return Config(
        routes=routes,
        default_route="openai",
        model_routes=_ZERO_CONFIG_RULES,
        auth_keys=frozenset(env_keys(env)),
        keys=env_keys(env),
        server=ServerSettings(),
        source="<zero-config>",
    )


def _build(file: ConfigFile, src: Source) -> Config:
    if not file.routes:
        raise src.error(("routes",), "at least one route is required")
    names = _route_names(file.routes, src)
    weighted_names = {entry.name for entry in file.routes if entry.candidates is not None}
    if file.default_route is not None:
        _check_route_ref(file.default_route, ("default_route",), names, src)
    for i, rule in enumerate(file.model_routes):
        _check_route_ref(rule.route, ("model_routes", i, "route"), names, src)
    for i, entry in enumerate(file.routes):
        for j, name in enumerate(entry.fallbacks):
            _check_route_ref(name, ("routes", i, "fallbacks", j), names, src)
            if name == entry.name:
                raise src.error(("routes", i, "fallbacks", j), "a route cannot fall back to itself")
            if name in weighted_names:
                raise src.error(("routes", i, "fallbacks", j), f'"{name}" picks among weighted candidates: a fallback '
                                "must be a route with an upstream (list the candidate you mean)")
    secrets = {name: secret_spec(name, spec, src) for name, spec in file.secrets.items()}
    routes = tuple(
        _route(entry, ("routes", i), secrets, src) for i, entry in enumerate(file.routes) if entry.candidates is None
    )
    weighted = tuple(
        weighted_route(entry, ("routes", i), names, weighted_names, src)
        for i, entry in enumerate(file.routes) if entry.candidates is not None
    )
    policies = _policies(file.policies, names, src)
    keys = gateway_keys(file.auth, secrets, src)
    check_governance(file.governance, src)
    return Config(
        policies=policies,
        routes=routes,
        default_route=file.default_route,
        model_routes=file.model_routes,
        auth_keys=frozenset(keys),
        keys=keys,
        observe=ObserveSettings(audit=file.audit, metrics=file.metrics, tracing=file.tracing, admin=file.admin),
        server=_server(file.server, src),
        metrics_key=_metrics_key(file.metrics, secrets, src),
        client=_client(file.client, src),
        loop=_loop(loop_settings(file.loop, src), names, src),
        governance=file.governance,
        source=src.name,
        weighted=weighted,
    )


def _loop(settings: LoopSettings, names: list[str], src: Source) -> LoopSettings:
    """The loop's keys that refer to the rest of the file, or to each other."""
    judge = settings.judge
    if judge.route is not None:
        _check_route_ref(judge.route, ("loop", "judge", "route"), names, src)
    elif judge != JudgeSettings():
        raise src.error(("loop", "judge"), "these settings need a judge route (loop.judge.route: <a route>); "
                        "without one the judge is off")
    rollback = settings.rollback
    if rollback.min_calls > rollback.watch_calls:
        raise src.error(("loop", "rollback", "min_calls"), f"min_calls ({rollback.min_calls}) exceeds watch_calls "
                        f"({rollback.watch_calls}): a new version would never be judged")
    return settings


def _metrics_key(settings: MetricsSettings, secrets: dict[str, Secret], src: Source) -> str | None:
    """The scrape key `metrics.scrape_key_ref` names (resolved like api_key_ref), after checking `metrics.auth`:
    a setting that could not act (auth on metrics that are off, a scrape key /metrics would never ask for) is
    refused rather than left to look like protection."""
    src.choice(("metrics", "auth"), settings.auth, METRICS_AUTH)
    if settings.auth != "none" and not settings.enabled:
        raise src.error(("metrics", "auth"), "metrics are off (enabled: false): there is no /metrics to guard")
    ref = settings.scrape_key_ref
    if ref is None:
        return None
    if settings.auth != "key":
        raise src.error(("metrics", "scrape_key_ref"), "a scrape key is only asked for with auth: key "
                        "(with auth: none anyone may scrape)")
    if not ref.strip():
        raise src.error(("metrics", "scrape_key_ref"), "scrape_key_ref must name a secret (an env var, or an "
                        "entry under secrets:)")
    return resolve_secret(ref, ("metrics", "scrape_key_ref"), secrets, src)


def _client(settings: ClientSettings, src: Source) -> ClientSettings:
    """The team goes out as a header value (x-dragoman-team): one printable line, as identity.py stores it."""
    team = settings.team
    if team is not None and (not team.strip() or len(team) > 200 or not team.isprintable()):
        raise src.error(("client", "team"), "team must be a non-empty name of at most 200 printable characters "
                        "on one line (it is sent as the x-dragoman-team header)")
    return ClientSettings(team=None if team is None else team.strip())


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
        if entry.applies_to is not None and not entry.applies_to:
            problem = "applies_to needs at least one model name or pattern (leave it out to apply to every request)"
            raise src.error(path + ("applies_to",), problem)
        out.append(CompiledPolicy(policy=policy, applies_to=entry.applies_to, line=src.line(path + ("name",))))
    return tuple(out)


def _route_names(entries: tuple[RouteEntry, ...], src: Source) -> list[str]:
    first: dict[str, int] = {}
    for i, entry in enumerate(entries):
        if not entry.name.strip():
            raise src.error(("routes", i, "name"), "route name must not be empty")
        if len(entry.name) > MAX_MODEL_CHARS:  # a request could not name it: its model would be refused
            problem = f"route name is {len(entry.name)} characters; a request may name at most {MAX_MODEL_CHARS}"
            raise src.error(("routes", i, "name"), problem)
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
    if entry.upstream is None:
        raise src.error(path, f'route "{entry.name}" needs an upstream: block, or weighted candidates: (a list of '
                        "{route, weight})")
    for rel, allowed in _CHOICES:
        value: Any = entry
        for name in rel:
            value = getattr(value, name)
        src.choice(path + rel, value, allowed)
    upstream = entry.upstream
    assert upstream is not None
    ref = upstream.api_key_ref
    api = _api(upstream, path + ("upstream",), src)
    translation = route_translation(entry.translation, upstream.max_output_tokens, api, path, src)
    endpoint, body_model = _endpoint(upstream, api, path + ("upstream",), src)
    return Route(
        name=entry.name,
        provider=upstream.provider,
        model=upstream.model,
        endpoint=endpoint,
        body_model=body_model,
        api_key=None if ref is None else resolve_secret(ref, path + ("upstream", "api_key_ref"), secrets, src),
        timeouts=upstream.timeout,
        translation=translation,
        api=api,
        fallbacks=entry.fallbacks,
        retry=entry.retry,
        breaker=entry.breaker,
        pricing=entry.pricing,
        prompt_prefixes=prompt_prefixes(entry.prompt_prefixes, api, path, src),
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


def _endpoint(upstream: Upstream, api: str, path: Path, src: Source) -> tuple[str, str | None]:
    """The URL to POST to, and the name the body's `model` carries instead of the model (None: the model)."""
    provider = upstream.provider
    endpoint = upstream.endpoint
    if endpoint is None:
        if provider == "openai":
            endpoint = OPENAI_BASE_URL
        elif provider == "anthropic":
            endpoint = ANTHROPIC_BASE_URL
        else:
            raise src.error(path, f"endpoint is required for provider {provider} (e.g. http://localhost:8000/v1)")
    if provider == "azure_openai":
        return _azure_endpoint(upstream, endpoint, api, path, src)
    for key in ("deployment", "api_version"):  # read by nothing but Azure's URLs: never silently ignored
        if getattr(upstream, key) is not None:
            raise src.error(path + (key,), f"{key} is an azure_openai setting; provider {provider} does not use it: "
                                           "remove it")
    try:
        return api_url(endpoint, api), None
    except ValueError as exc:
        raise src.error(path + ("endpoint",), str(exc)) from None


# Azure's dated api-versions (2024-10-21, 2025-04-01-preview); its v1 API takes none.
_AZURE_API_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(-preview)?")


def _azure_endpoint(upstream: Upstream, endpoint: str, api: str, path: Path, src: Source) -> tuple[str, str | None]:
    """An azure_openai route's URL and body model; `deployment` or `api_version` its URL would not use is refused
    (Azure would answer 404 or 400 at the first request, or the setting would be ignored)."""
    version = upstream.api_version
    if version is not None and not _AZURE_API_VERSION.fullmatch(version):
        raise src.error(path + ("api_version",), f"{quoted(version)} is not a dated Azure api-version (YYYY-MM-DD "
                                                 "or YYYY-MM-DD-preview); for Azure's v1 API, omit api_version")
    try:
        target = azure_target(endpoint, upstream.deployment or upstream.model, version, api)
    except ValueError as exc:
        raise src.error(path + ("endpoint",), str(exc)) from None
    if version is not None and not target.uses_api_version:
        raise src.error(path + ("api_version",), "api_version is not used with this endpoint: Azure's v1 API "
                                                 "(…/openai/v1) takes none, and a URL written out whole carries its "
                                                 "own; remove it")
    if upstream.deployment is not None and target.deployment is None:
        raise src.error(path + ("deployment",), "deployment is not used with this endpoint: its URL names its own "
                                                "deployment; remove one of the two")
    return target.url, upstream.deployment if target.deployment == "body" else None
