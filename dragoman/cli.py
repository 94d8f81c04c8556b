"""The `dragoman` command: a thin layer over the library (`serve`, `check`)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from dragoman.errors import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dragoman", description="Anthropic Messages API gateway to OpenAI and compatible upstreams")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", help="YAML config file (default: zero-config, every model to OpenAI Chat)")
    serve.add_argument("--host", default=os.environ.get("DRAGOMAN_HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("DRAGOMAN_PORT", "8080")))
    serve.add_argument("--workers", type=int, default=1, help="worker processes sharing the port")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    check = sub.add_parser("check", help="validate a config file and explain it")
    check.add_argument("config")
    args = parser.parse_args(argv)
    if args.command == "check":
        return _check(args.config)
    return _serve(args)


def _load(path: str | None):  # noqa: ANN202
    from dragoman.routing.config import load_config, zero_config

    return load_config(path) if path else zero_config(os.environ)


def _check(path: str) -> int:
    try:
        config = _load(path)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{path}: ok, {len(config.routes)} route(s)")
    for route in config.routes:
        model = route.model or "(the requested name)"
        print(f"  {route.name}: {route.provider} {model} at {route.endpoint}")
    for rule in config.model_routes:
        print(f"  model {rule.match!r} -> {rule.route}")
    if config.default_route:
        print(f"  anything else -> {config.default_route}")
    print(f"  inbound auth: {'on, ' + str(len(config.auth_keys)) + ' key(s)' if config.auth_keys else 'off'}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = _load(args.config)  # validate once here, so a bad file stops the start with its message
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.config is None and not os.environ.get("OPENAI_API_KEY"):
        logging.getLogger("dragoman").warning("zero-config start without OPENAI_API_KEY: upstream calls will be refused")
    if args.config:
        os.environ["DRAGOMAN_CONFIG"] = os.path.abspath(args.config)
    from dragoman.serving import run

    path = os.path.abspath(args.config) if args.config else None
    return run(config, args.host, args.port, args.workers, args.log_level, path)


if __name__ == "__main__":
    sys.exit(main())
