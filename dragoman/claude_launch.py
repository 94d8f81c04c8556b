"""`dragoman claude [ARGS…]`: run Claude Code pointed at the gateway, for that one process.

Nothing is exported into the user's shell, so rolling back is running `claude` instead. The environment the CLI
gets is built by `claude_env`, a pure function of the config, the caller's environment, the repository name and
the user; `run` finds the executable and replaces this process with it (os.execvpe: the terminal, signals and
exit status are Claude Code's own).
"""

from __future__ import annotations

import argparse
import fnmatch
import getpass
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from dragoman.config.model import Config
from dragoman.errors import ConfigError

# Sent when the config has no inbound keys: Claude Code wants some key, and a missing one would make it fall back
# to the user's Anthropic login (and send that credential to the gateway).
NO_AUTH_KEY = "dragoman-no-auth"
ZERO_CONFIG_MAIN, ZERO_CONFIG_SMALL = "gpt-5-via-gateway", "gpt-5-mini-via-gateway"
# A name of Claude Code's small model, to find the route the config's model_routes give it.
_HAIKU_NAME = "claude-haiku-4-5"
# Removed from Claude Code's environment: an Anthropic credential that would otherwise be sent to the gateway
# (Claude Code sends ANTHROPIC_AUTH_TOKEN as Authorization: Bearer, which the gateway reads as the client key).
_DROPPED = ("ANTHROPIC_AUTH_TOKEN",)
INSTALL_HINT = ("install Claude Code (`npm install -g @anthropic-ai/claude-code`, see "
                "https://code.claude.com/docs/en/setup) or set DRAGOMAN_CLAUDE_BIN to its executable")


class LaunchError(Exception):
    """Why Claude Code cannot be started; printed as `error: …`, exit 2."""


def gateway_url(option: str | None, env: Mapping[str, str]) -> str:
    """--gateway, else $DRAGOMAN_URL, else the local default port; without a trailing `/v1` (Claude Code adds
    it, and a doubled /v1/v1 is only tolerated with a warning, README "Endpoints")."""
    url = (option or env.get("DRAGOMAN_URL") or f"http://127.0.0.1:{env.get('DRAGOMAN_PORT') or 8080}").strip()
    if not url.startswith(("http://", "https://")):
        raise LaunchError(f"gateway URL {url!r} must start with http:// or https://")
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def model_names(config: Config) -> tuple[str | None, str | None]:
    """(main, small): the names Claude Code should ask for so the config routes them as meant.

    Main: the config's default_route (zero-config: gpt-5-via-gateway); small: the route model_routes give
    Claude Code's haiku names (zero-config: gpt-5-mini-via-gateway), else the main one."""
    if config.source == "<zero-config>":
        return ZERO_CONFIG_MAIN, ZERO_CONFIG_SMALL
    main = config.default_route
    small = next((rule.route for rule in config.model_routes if fnmatch.fnmatchcase(_HAIKU_NAME, rule.match)), main)
    return main, small


def repo_name(cwd: Path) -> str:
    """The name of the git work tree holding cwd (its top level has a .git directory, or a .git file in a linked
    worktree or submodule), else cwd's own name: what README's `git rev-parse --show-toplevel || pwd` gives."""
    for directory in (cwd, *cwd.parents):
        if (directory / ".git").exists():
            return directory.name
    return cwd.name


def custom_headers(ours: Mapping[str, str], existing: str | None) -> str:
    """ANTHROPIC_CUSTOM_HEADERS: our lines first, then the user's own lines, except those naming a header we set
    (ours win: the gateway keeps one value per name)."""
    names = {name.lower() for name in ours}
    kept = [line for line in (existing or "").splitlines()
            if line.strip() and line.partition(":")[0].strip().lower() not in names]
    return "\n".join([f"{name}: {_one_line(value)}" for name, value in ours.items()] + kept)


def inbound_auth(config: Config, missing_secrets: Sequence[str]) -> bool:
    """Whether the gateway wants a client key: the config has inbound keys, counting those whose secrets this
    machine cannot read (load_config notes them as `file:line: auth.keys[i]…: problem` and leaves them out)."""
    return bool(config.keys) or any(": auth.keys[" in text for text in missing_secrets)


def claude_env(config: Config, env: Mapping[str, str], *, url: str, key: str | None, repo: str,
               user: str, auth: bool | None = None) -> dict[str, str]:
    """The environment Claude Code runs with: the caller's, pointed at the gateway at `url`. `auth`: whether the
    gateway wants a key (default: the config has inbound keys)."""
    if key is None:
        if bool(config.keys) if auth is None else auth:
            raise LaunchError(f"{config.source} has inbound keys (auth.keys): set DRAGOMAN_GATEWAY_KEY to yours")
        key = NO_AUTH_KEY
    out = {name: value for name, value in env.items() if name not in _DROPPED}
    out["ANTHROPIC_BASE_URL"] = url
    out["ANTHROPIC_API_KEY"] = key
    main, small = model_names(config)
    # Names from Claude Code's env-vars reference (https://code.claude.com/docs/en/env-vars): ANTHROPIC_MODEL, and
    # ANTHROPIC_DEFAULT_HAIKU_MODEL for the small fast model; model-config
    # (https://code.claude.com/docs/en/model-config) lists ANTHROPIC_SMALL_FAST_MODEL as its deprecated older
    # name, which releases before 2.x read, so both are set.
    for name, value in (("ANTHROPIC_MODEL", main), ("ANTHROPIC_DEFAULT_HAIKU_MODEL", small),
                        ("ANTHROPIC_SMALL_FAST_MODEL", small)):
        if value:
            out[name] = value
    ours = {"x-dragoman-repo": repo, "x-dragoman-developer": user}
    if config.client.team:
        ours["x-dragoman-team"] = config.client.team
    out["ANTHROPIC_CUSTOM_HEADERS"] = custom_headers(ours, env.get("ANTHROPIC_CUSTOM_HEADERS"))
    return out


def claude_executable(env: Mapping[str, str]) -> str:
    """$DRAGOMAN_CLAUDE_BIN, else `claude` on PATH."""
    override = env.get("DRAGOMAN_CLAUDE_BIN")
    if override:
        if not (os.path.isfile(override) and os.access(override, os.X_OK)):
            raise LaunchError(f"DRAGOMAN_CLAUDE_BIN={override} is not an executable file; {INSTALL_HINT}")
        return override
    found = shutil.which("claude", path=env.get("PATH"))
    if found is None:
        raise LaunchError(f"the Claude Code CLI (`claude`) is not on PATH; {INSTALL_HINT}")
    return found


def split_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(gateway options, Claude Code's arguments). Gateway options come only as a prefix ended by `--`
    (`dragoman claude --config FILE -- -p hi`); anything else is Claude Code's, untouched."""
    first = argv[0] if argv else ""
    if first == "--" or first.split("=", 1)[0] in ("--config", "--gateway", "--key"):
        if "--" not in argv:
            raise LaunchError("end the gateway options with `--`: dragoman claude --config FILE -- [claude ARGS]")
        cut = list(argv).index("--")
        return list(argv[:cut]), list(argv[cut + 1:])
    return [], list(argv)


def _options(args: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="dragoman claude", description="run Claude Code through the gateway")
    parser.add_argument("--config", help="the gateway's config (default: $DRAGOMAN_CONFIG, else zero-config)")
    parser.add_argument("--gateway", help="the gateway URL (default: $DRAGOMAN_URL, else http://127.0.0.1:$DRAGOMAN_PORT)")
    parser.add_argument("--key", help="the gateway key (default: $DRAGOMAN_GATEWAY_KEY; the variable keeps it out of ps)")
    return parser.parse_args(args)


def run(argv: Sequence[str]) -> int:
    """Replace this process with Claude Code; returns (an exit status) only if it cannot start."""
    from dragoman.config.load import load_config, zero_config

    env = os.environ
    try:
        own, passed = split_args(argv)
        options = _options(own)
        path = options.config or env.get("DRAGOMAN_CONFIG")
        missing: list[str] = []  # the config's secrets are the gateway's, not needed here
        config = load_config(path, missing_secrets=missing) if path else zero_config(env)
        key = options.key or env.get("DRAGOMAN_GATEWAY_KEY") or None
        cwd = Path.cwd()
        child = claude_env(config, env, url=gateway_url(options.gateway, env), key=key, repo=repo_name(cwd),
                           user=getpass.getuser(), auth=inbound_auth(config, missing))
        exe = claude_executable(env)
    except (LaunchError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(exe, [exe, *passed], child)
    except OSError as err:
        print(f"error: cannot run {exe}: {err.strerror or err}; {INSTALL_HINT}", file=sys.stderr)
        return 2
    return 2  # not reached: execvpe does not return


def _one_line(value: str) -> str:
    # A newline would start a header line of its own in ANTHROPIC_CUSTOM_HEADERS.
    return " ".join(value.split())
