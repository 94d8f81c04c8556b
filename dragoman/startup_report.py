"""The block `dragoman serve` logs once at start: where each model name goes, where records are kept, who may call.

Printed by the process the user started (with --workers N, the supervisor, not each worker). It names hosts and
counts keys; it never shows a key, a URL path's credentials or a database password."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from dragoman.config.load import ZERO_CONFIG_MODELS
from dragoman.config.model import Config, Route
from dragoman.config.observe import ObserveSettings
from dragoman.govern.key_store import KeyStore
from dragoman.observe.stores import default_store_path, describe_store, is_postgres, open_store, sqlite_file


def startup_lines(config: Config, observe: ObserveSettings, workers: int = 1, virtual: int | None = 0) -> list[str]:
    """The block's lines: source, routes, model mapping, audit store, inbound keys, metrics and tracing.
    `virtual`: how many virtual keys the store holds (None: it could not be read)."""
    if config.source == "<zero-config>":
        overrides = ", ".join(("OPENAI_BASE_URL", "OPENAI_API_KEY", *ZERO_CONFIG_MODELS))
        lines = [f"starting with zero-config (no --config; {overrides} change it)"]
    else:
        lines = [f"starting with config {config.source}"]
    if workers > 1:
        lines[0] += f", {workers} workers"
    lines += [f"  route {route.name} -> {_upstream(route)}" for route in config.routes]
    lines += [f"  route {w.name} -> weighted: {', '.join(f'{c.route} {c.weight:g}' for c in w.candidates)}"
              for w in config.weighted]
    lines += _mapping(config)
    audit = observe.audit
    lines.append(f"  audit: {describe_store(audit.store) if audit.enabled else 'off'}")
    lines.append(f"  inbound keys: {_inbound(config, virtual)}")
    lines.append(f"  metrics: {_metrics(observe)}; tracing: {_tracing(observe)}")
    return lines


def log_startup(config: Config, workers: int = 1, env: Mapping[str, str] | None = None) -> None:
    """Log the block once, as one record, with the observe settings the environment gives the workers."""
    observe = config.observe.with_env(env)
    text = "\n".join(startup_lines(config, observe, workers, virtual_keys(config, observe)))
    logging.getLogger("dragoman").info("%s", text)


def _inbound(config: Config, virtual: int | None) -> str:
    """Whether a call needs a key: one virtual key in the store makes every call need one (the key cache's
    has_keys), so the config's keys alone do not say."""
    keys = len(config.keys)
    held = [f"{keys} key{'s' if keys != 1 else ''}"] if keys else []
    if not config.governance.keys.enabled:
        return f"required ({held[0]})" if keys else "not required (any client that reaches the port may call)"
    if virtual:
        return f"required ({' and '.join(held + [f'{virtual} virtual key' + ('s' if virtual != 1 else '')])})"
    if keys:
        return f"required ({held[0]} and virtual keys)"
    if virtual is None:
        return "required if the key store holds a virtual key (it could not be read at start)"
    return "not required (any client that reaches the port may call) until a virtual key is made (dragoman keys create)"


def virtual_keys(config: Config, observe: ObserveSettings) -> int | None:
    """How many virtual keys the store holds, revoked ones too (the gateway counts those: any key ever made
    means every call needs one); None when it cannot be read. A store that does not exist yet holds none and
    is not created here: the gateway makes it."""
    if not config.governance.keys.enabled:
        return 0
    url = observe.audit.store
    try:
        if not is_postgres(url) and not os.path.exists(sqlite_file(url) if url else default_store_path()):
            return 0
        store = open_store(url, migrate=False)
    except Exception:  # noqa: BLE001 - an unreachable server or unreadable file: the block says it does not know
        return None
    try:
        return len(KeyStore(store).every())
    except Exception:  # noqa: BLE001 - a store older than virtual keys, or one that failed mid-read
        return None
    finally:
        store.close()


def _upstream(route: Route) -> str:
    model = route.model or "(the requested name, verbatim)"
    key = "" if route.api_key else ", no key"
    return f"{route.provider} {model} at {_host(route.endpoint)} ({route.api}{key})"


def _metrics(observe: ObserveSettings) -> str:
    metrics = observe.metrics
    if not metrics.enabled:
        return "off"
    return "on at /metrics" + (" (admin, viewer or scrape key)" if metrics.auth == "key" else "")


def _tracing(observe: ObserveSettings) -> str:
    tracing = observe.tracing
    if not tracing.enabled:
        return "off"
    if not tracing.otlp_endpoint:
        return "on, but no otlp_endpoint: spans are not exported"
    return f"on, OTLP to {_host(tracing.otlp_endpoint)}"


def _mapping(config: Config) -> list[str]:
    lines = []
    for compiled in config.policies:
        lines.append(f"  policy {compiled.policy.name} for {compiled.scope()}: "
                     f"routes {', '.join(compiled.policy.routes())}")
    lines.append("  a route's own name -> that route" + (" (unless a policy above applies)" if config.policies else ""))
    lines += [f"  model {rule.match} -> {rule.route}" for rule in config.model_routes]
    lines.append(f"  any other model -> {config.default_route}" if config.default_route
                 else "  any other model -> 404 not_found_error")
    return lines


def _host(url: str) -> str:
    # Only host[:port]: an endpoint may carry credentials in its userinfo or query.
    return urlsplit(url).netloc.rpartition("@")[2] or "(no host)"
