"""The `dragoman` command: a thin layer over the library (`serve`, `check`, `claude`, …)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping

from dragoman.errors import ConfigError


DEFAULT_PORT = 8080
# Each worker is a whole gateway (event loop, audit writer, store and upstream connections, tens of MB), and one
# event loop already serves thousands of connections: more than a few per CPU only costs memory. A fixed cap,
# not one from os.cpu_count(), so a unit file valid on one machine starts on another; it catches a typo
# (--workers 1000) before it starts a thousand processes.
MAX_WORKERS = 64


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["claude"]:  # before argparse: Claude Code's own arguments must reach it untouched
        from dragoman.claude_launch import run

        return run(argv[1:])
    parser = argparse.ArgumentParser(prog="dragoman", description="Anthropic Messages API gateway to OpenAI and compatible upstreams")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", default=os.environ.get("DRAGOMAN_CONFIG") or None,
                       help="YAML config file (default: $DRAGOMAN_CONFIG, else zero-config, every model to OpenAI Chat)")
    serve.add_argument("--host", default=os.environ.get("DRAGOMAN_HOST", "127.0.0.1"))
    serve.add_argument("--port", type=_port, default=None,
                       help="0 to 65535; 0 picks a free port (default: $DRAGOMAN_PORT, else 8080)")
    serve.add_argument("--workers", type=_workers, default=1, help=f"worker processes sharing the port (1 to {MAX_WORKERS})")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    check = sub.add_parser("check", help="validate a config file and explain it (its secrets need not be set)")
    check.add_argument("config")
    check.add_argument("--strict", action="store_true", help="fail (exit 1) on warnings too, missing secrets included")
    route = sub.add_parser("route", help="dry run: which policy, branch and candidates a request would get")
    route.add_argument("config")
    route.add_argument("request", help="a JSON Messages request body (e.g. one Claude Code sent)")
    route.add_argument("--header", action="append", default=[], metavar="NAME:VALUE", help="a request header")
    sub.add_parser("claude", add_help=False, help="run Claude Code through the gateway, for that process only "
                   "(dragoman claude [--config FILE] [--gateway URL] -- [claude ARGS], or just [claude ARGS])")
    from dragoman import key_commands, loop_reports, reports, version_commands

    reports.add_commands(sub)
    key_commands.add_commands(sub)
    loop_reports.add_commands(sub)
    version_commands.add_commands(sub)
    args = parser.parse_args(argv)
    if args.command in ("logs", "costs"):
        return reports.run(args)
    if args.command == "keys":
        return key_commands.run(args)
    if args.command in loop_reports.COMMANDS:
        return loop_reports.run(args)
    if args.command in ("versions", "rollback"):
        return version_commands.run(args)
    if args.command == "check":
        return _check(args.config, args.strict)
    if args.command == "route":
        return _route(args.config, args.request, args.header)
    return _serve(args)


def _load(path: str | None):  # noqa: ANN202
    from dragoman.config.load import load_config, zero_config

    return load_config(path) if path else zero_config(os.environ)


def _check(path: str, strict: bool = False) -> int:
    from dragoman.routing.reachability import config_warnings

    missing: list[str] = []
    config = _load_noting_secrets(path, missing)
    if config is None:
        return 2
    print(f"{path}: ok, {len(config.routes)} route(s)")
    for route in config.routes:
        model = route.model or "(the requested name)"
        print(f"  {route.name}: {route.provider} {model} at {route.endpoint}")
    for weighted in config.weighted:
        shares = ", ".join(f"{c.route} {c.weight:g}" for c in weighted.candidates)
        print(f"  {weighted.name}: weighted candidates {shares} (the loop may shift traffic between them)")
    for rule in config.model_routes:
        print(f"  model {rule.match!r} -> {rule.route}")
    if config.default_route:
        print(f"  anything else -> {config.default_route}")
    for compiled in config.policies:
        names = compiled.scope()
        print(f"  policy {compiled.policy.name} for {names}: "
              f"routes {', '.join(compiled.policy.routes())}; reads {', '.join(sorted(compiled.policy.variables))}")
    for route in config.routes:
        if route.fallbacks:
            print(f"  {route.name} falls back to {', '.join(route.fallbacks)} "
                  f"({route.retry.attempts} tries each, breaker after {route.breaker.failures} failures)")
    print(f"  inbound auth: {'on, ' + str(len(config.auth_keys)) + ' key(s)' if config.auth_keys else 'off'}")
    warnings = [f"{text}; serve refuses to start without it" for text in missing] + config_warnings(config)
    for text in warnings:
        print(f"warning: {text}", file=sys.stderr)
    if strict and warnings:
        print(f"error: {len(warnings)} warning(s), and --strict makes them errors", file=sys.stderr)
        return 1
    return 0


def _load_noting_secrets(path: str, missing: list[str]):  # noqa: ANN202
    """The config at path, with secrets that cannot be read noted in `missing`; None (error printed) if invalid."""
    from dragoman.config.load import load_config

    try:
        return load_config(path, missing_secrets=missing)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return None


def _route(path: str, request_path: str, header_args: list[str]) -> int:
    import msgspec

    from dragoman.config.model import WeightedRoute
    from dragoman.identity import identity_from
    from dragoman.protocols.anthropic import MessagesRequest
    from dragoman.policy.features import extract_features
    from dragoman.routing.router import Router, applies

    config = _load_noting_secrets(path, [])  # secrets play no part in routing
    if config is None:
        return 2
    try:
        with open(request_path, "rb") as f:
            body = f.read()
        req = msgspec.json.decode(body, type=MessagesRequest)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as err:
        print(f"error: {request_path}: {err}", file=sys.stderr)
        return 2
    headers = dict(_split_header(h) for h in header_args)
    # As the server does (server.py, _messages): identity from headers and metadata.user_id, then features.
    identity = identity_from(headers, req.metadata.user_id if req.metadata is not None else None)
    features = extract_features(req, len(body), headers, identity)
    router = Router(config)
    print(f"requested model: {req.model}")
    print(f"features: input_tokens~{features.input_tokens} tool_call_count={features.tool_call_count} "
          f"tools_count={features.tools_count} message_count={features.message_count} "
          f"has_images={features.has_images} thinking={features.thinking} stream={features.stream}")
    for compiled in config.policies:
        if not applies(compiled, req.model):
            print(f"  {compiled.policy.name}: does not apply to {req.model} (applies_to {', '.join(compiled.applies_to or ())})")
            continue
        for line in compiled.policy.explain(features):
            print(f"  {compiled.policy.name}: {line}")
    try:
        decision = router.decide(req.model, lambda: features)
    except Exception as err:  # noqa: BLE001 - a NotFound is the answer here, not a crash
        print(f"no route: {err}")
        return 1
    why = f"policy {decision.policy}, branch {decision.branch!r}" if decision.policy else "name routing"
    print(f"route: {decision.route.name} ({why})")
    route = decision.route
    if isinstance(route, WeightedRoute):
        print("weighted candidates (one picked per request, its fallbacks after it): "
              + ", ".join(f"{c.route} ({c.weight:g})" for c in route.candidates))
        return 0
    candidates = [route.name, *route.fallbacks]
    print(f"candidates, in order: {' -> '.join(candidates)}")
    return 0


def _split_header(text: str) -> tuple[str, str]:
    name, _, value = text.partition(":")
    return name.strip().lower(), value.strip()


def _port(text: str) -> int:
    from dragoman.reports import bounded_number

    return bounded_number(text, 0, 65535)


def _workers(text: str) -> int:
    from dragoman.reports import bounded_number

    return bounded_number(text, 1, MAX_WORKERS)


def _serve_port(args: argparse.Namespace) -> int | None:
    """--port, else $DRAGOMAN_PORT (read here, not while the parser is built: a bad value concerns serve alone),
    else 8080; None (error printed) when the variable is not a port."""
    if args.port is not None:
        return args.port
    text = os.environ.get("DRAGOMAN_PORT", "").strip()
    if not text:
        return DEFAULT_PORT
    try:
        return _port(text)
    except argparse.ArgumentTypeError as err:
        print(f"dragoman serve: error: DRAGOMAN_PORT: {err}", file=sys.stderr)
        return None


def _start_refused(host: str, port: int) -> str | None:
    """What ends the start before its block is logged: a DRAGOMAN_SIGNING_KEY anyone could know, or a port
    another server holds."""
    from dragoman.serving import port_in_use
    from dragoman.signing_key import SigningKeyError, check_configured

    try:
        check_configured(os.environ)
    except SigningKeyError as err:
        return str(err)
    return port_in_use(host, port)


def _warn_zero_config_keys(env: Mapping[str, str]) -> None:
    """Zero-config sends every model to OpenAI with OPENAI_API_KEY: say so at start when it is missing (an
    ANTHROPIC_API_KEY is no substitute: zero-config has no Anthropic route)."""
    if env.get("OPENAI_API_KEY", "").strip():
        return
    warning = ("zero-config start without OPENAI_API_KEY: OpenAI will refuse the calls; set OPENAI_API_KEY and "
               "restart (or OPENAI_BASE_URL for a server that needs no key)")
    if env.get("ANTHROPIC_API_KEY", "").strip():
        warning += ("; ANTHROPIC_API_KEY is not used without a config: give --config a file with a "
                    "provider: anthropic route (README: Configuration) to send Claude models to Anthropic")
    logging.getLogger("dragoman").warning("%s", warning)


def _serve(args: argparse.Namespace) -> int:
    from dragoman.config.reload import ignore_sighup

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ignore_sighup("starting")  # a reload sent before the server can apply one must not end the process
    port = _serve_port(args)
    if port is None:
        return 2
    try:
        config = _load(args.config)  # validate once here, so a bad file stops the start with its message
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    refused = _start_refused(args.host, port)
    if refused:
        print(f"error: {refused}", file=sys.stderr)
        return 2
    if args.config is None:
        _warn_zero_config_keys(os.environ)
    if args.config:
        os.environ["DRAGOMAN_CONFIG"] = os.path.abspath(args.config)
    else:
        os.environ.pop("DRAGOMAN_CONFIG", None)  # workers read it: a stale one must not replace zero-config
    os.environ["DRAGOMAN_LOG_LEVEL"] = args.log_level  # for worker processes
    from dragoman.serving import run
    from dragoman.startup_report import log_startup

    log_startup(config, args.workers)  # here, in the process the user started: once, whatever --workers says
    path = os.path.abspath(args.config) if args.config else None
    return run(config, args.host, port, args.workers, args.log_level, path)


if __name__ == "__main__":
    sys.exit(main())
