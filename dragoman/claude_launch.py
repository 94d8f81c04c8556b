"""`dragoman claude [ARGS…]`: run Claude Code pointed at the gateway, for that one process.

Nothing is exported into the user's shell, so rolling back is running `claude` instead. The environment the CLI
gets is built by `claude_env`, a pure function of the config, the caller's environment, the repository name and
the user. Claude Code's settings files outrank that environment (their `env` block, `apiKeyHelper`), so the same
variables also go in a `--settings` flag (`flag_settings`), which outranks every settings file but the managed
one; a settings file setting ANTHROPIC_API_KEY is refused instead (`settings_conflicts`), as overriding it would
put the gateway key on the command line. `run` checks that the gateway answers (`probe_gateway`, reaching it the
way Claude Code will: the same trusted CAs, proxy and client certificate), finds the executable and replaces this
process with it (os.execvpe: the terminal, signals and exit status are Claude Code's own).
"""

from __future__ import annotations

import argparse
import fnmatch
import getpass
import http.client
import json
import os
import shutil
import socket
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from dragoman.config.model import Config
from dragoman.errors import ConfigError
from dragoman.routing.router import applies

# Sent when the config has no inbound keys: Claude Code wants some key, and a missing one would make it fall back
# to the user's Anthropic login (and send that credential to the gateway).
NO_AUTH_KEY = "dragoman-no-auth"
ZERO_CONFIG_MAIN, ZERO_CONFIG_SMALL = "gpt-5-via-gateway", "gpt-5-mini-via-gateway"
# A name of Claude Code's small model, to find the route the config's model_routes give it.
_HAIKU_NAME = "claude-haiku-4-5"
# Names Claude Code asks for when no model is set: its main models, and its small one. A policy that applies to
# them but not to the route name the launcher would set must see Claude Code's own names (model_names).
_CLAUDE_MAIN_NAMES = ("claude-sonnet-4-5-20250929", "claude-opus-4-1-20250805")
_CLAUDE_SMALL_NAMES = ("claude-haiku-4-5-20251001",)
# Anthropic credentials Claude Code would send next to the gateway key (ANTHROPIC_AUTH_TOKEN and an apiKeyHelper's
# output go as Authorization: Bearer, which the gateway reads as the client key), and the switches that send its
# calls to Bedrock, Vertex or Foundry instead of ANTHROPIC_BASE_URL. Blanked in the flag settings too, as a
# settings file's `env` can set them.
_CREDENTIALS = ("ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN")
_PROVIDER_SWITCHES = ("CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX", "CLAUDE_CODE_USE_FOUNDRY")
_PROVIDER_URLS = ("ANTHROPIC_BEDROCK_BASE_URL", "ANTHROPIC_VERTEX_BASE_URL", "ANTHROPIC_FOUNDRY_BASE_URL")
# The gateway's own secrets and the upstream keys its zero-config reads: Claude Code needs none of them, and every
# command its Bash tool runs (the model's, or a prompt injection's) would inherit them. The env variables the
# config's secrets are read from are removed as well (run passes them as `secret_vars`).
GATEWAY_SECRETS = ("DRAGOMAN_GATEWAY_KEY", "DRAGOMAN_API_KEYS", "DRAGOMAN_ADMIN_KEYS", "DRAGOMAN_SIGNING_KEY",
                   "DRAGOMAN_AUDIT_STORE", "OPENAI_API_KEY", "AZURE_OPENAI_API_KEY")
_DROPPED = frozenset((*_CREDENTIALS, *_PROVIDER_SWITCHES, *_PROVIDER_URLS, *GATEWAY_SECRETS))
# Never removed, even when a config reads its secret from one of them: Claude Code cannot run without them.
_NEEDED = frozenset(("PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "TMPDIR"))
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
    """(main, small): the names Claude Code should ask for so the config routes them as meant; None: leave it
    to ask for its own `claude-*` names.

    Main: the config's default_route (zero-config: gpt-5-via-gateway); small: the route model_routes give
    Claude Code's haiku names (zero-config: gpt-5-mini-via-gateway), else the main one. None instead when a
    policy applies to Claude Code's own names but not to that one: renamed, its requests would skip the policy
    (README's `applies_to: ["claude-*"]`), and left alone they route as plain `claude` through the gateway does."""
    if config.source == "<zero-config>":
        return ZERO_CONFIG_MAIN, ZERO_CONFIG_SMALL
    main = config.default_route
    small = next((rule.route for rule in config.model_routes if fnmatch.fnmatchcase(_HAIKU_NAME, rule.match)), main)
    return _unless_policy_skipped(config, main, _CLAUDE_MAIN_NAMES), _unless_policy_skipped(config, small, _CLAUDE_SMALL_NAMES)


def _unless_policy_skipped(config: Config, name: str | None, own: Sequence[str]) -> str | None:
    if name is None:
        return None
    skipped = any(any(applies(policy, claude) for claude in own) and not applies(policy, name)
                  for policy in config.policies)
    return None if skipped else name


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
               user: str, auth: bool | None = None, secret_vars: Sequence[str] = ()) -> dict[str, str]:
    """The environment Claude Code runs with: the caller's, pointed at the gateway at `url`, without the
    variables in _DROPPED or `secret_vars` (where the config's secrets come from). `auth`: whether the gateway
    wants a key (default: the config has inbound keys)."""
    if key is None:
        if bool(config.keys) if auth is None else auth:
            raise LaunchError(f"{config.source} has inbound keys (auth.keys): set DRAGOMAN_GATEWAY_KEY to yours")
        key = NO_AUTH_KEY
    dropped = _DROPPED.union(name for name in secret_vars if name not in _NEEDED)
    out = {name: value for name, value in env.items() if name not in dropped}
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


def flag_settings(child: Mapping[str, str], *, own_headers: bool = False) -> dict[str, Any]:
    """The `--settings` JSON Claude Code is started with: it outranks the user's and the project's settings files,
    whose `env` would otherwise override the launcher's variables (ANTHROPIC_BASE_URL to elsewhere) and whose
    apiKeyHelper would add the user's Anthropic key as Authorization: Bearer. An empty string turns each off (the
    pinned CLI reads `null` as an invalid settings file and ignores the whole flag). ANTHROPIC_API_KEY stays out:
    the command line is visible to every user of the machine (settings_conflicts refuses a file that sets it), and
    so do the headers when the caller's ANTHROPIC_CUSTOM_HEADERS added lines of its own (`own_headers`)."""
    ours = {name: child[name] for name in _LAUNCH_VARS if name in child}
    if own_headers:  # the user's own header lines may hold a credential: they stay out of the command line
        del ours["ANTHROPIC_CUSTOM_HEADERS"]
    blanked = dict.fromkeys((*_CREDENTIALS, *_PROVIDER_SWITCHES), "")
    return {"apiKeyHelper": "", "env": {**blanked, **ours}}


_LAUNCH_VARS = ("ANTHROPIC_BASE_URL", "ANTHROPIC_MODEL", "ANTHROPIC_DEFAULT_HAIKU_MODEL", "ANTHROPIC_SMALL_FAST_MODEL",
                "ANTHROPIC_CUSTOM_HEADERS")


def settings_files(env: Mapping[str, str], cwd: Path) -> Iterator[Path]:
    """The settings files Claude Code reads besides the managed one: the user's ($CLAUDE_CONFIG_DIR, else
    ~/.claude) and the project's, in the directory it starts in (not its git top level: checked on 2.1.332)."""
    home = env.get("HOME") or str(Path.home())
    yield Path(env.get("CLAUDE_CONFIG_DIR") or os.path.join(home, ".claude")) / "settings.json"
    yield cwd / ".claude" / "settings.json"
    yield cwd / ".claude" / "settings.local.json"


def settings_conflicts(files: Sequence[Path]) -> None:
    """LaunchError naming the first settings file whose `env` sets ANTHROPIC_API_KEY: Claude Code would send that
    key to the gateway in place of the gateway key, and only a command-line override could outrank it."""
    for path in files:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # absent or unreadable: Claude Code reports a broken file itself
        block = data.get("env") if isinstance(data, dict) else None
        if isinstance(block, dict) and "ANTHROPIC_API_KEY" in block:
            raise LaunchError(f"{path} sets env.ANTHROPIC_API_KEY, which Claude Code would send to the gateway "
                              "instead of your gateway key: remove it from that file to use `dragoman claude`")


PROBE_TIMEOUT = 5.0  # seconds each of probe_gateway's requests waits to connect, then again for the answer
NO_CHECK = "DRAGOMAN_CLAUDE_NO_CHECK"  # =1: start Claude Code without probe_gateway (a check wrong for this machine)


class _Failure(NamedTuple):
    """Why one probe request got no answer: `kind` is refused, unresolved, no-connection (connect or TLS handshake
    timed out), slow (connected, no answer in time), untrusted (certificate), tls, http (`code`) or other."""
    kind: str
    detail: str = ""
    code: int = 0


def probe_context(env: Mapping[str, str]) -> tuple[ssl.SSLContext, list[str]]:
    """(TLS context, warnings): trusting what Claude Code trusts. Claude Code trusts the OS store and its bundled
    Mozilla roots (certifi's, when installed), plus NODE_EXTRA_CA_CERTS, added to them as Node does; SSL_CERT_FILE /
    SSL_CERT_DIR are loaded from `env` as well (OpenSSL reads them only from this process's environment). Its mTLS
    certificate (CLAUDE_CODE_CLIENT_CERT/_KEY/_KEY_PASSPHRASE) is presented too. A file that cannot be loaded is
    a warning: Node ignores a broken NODE_EXTRA_CA_CERTS with a warning and goes on."""
    context = ssl.create_default_context()
    warnings: list[str] = []
    try:
        import certifi  # optional (not a dependency): the Mozilla roots Claude Code bundles
        context.load_verify_locations(cafile=certifi.where())
    except (ImportError, OSError, ssl.SSLError):
        pass
    for name, kind in (("SSL_CERT_FILE", "cafile"), ("SSL_CERT_DIR", "capath"), ("NODE_EXTRA_CA_CERTS", "cafile")):
        if env.get(name):
            try:
                context.load_verify_locations(**{kind: env[name]})
            except (OSError, ssl.SSLError) as err:
                warnings.append(f"{name}={env[name]} could not be loaded ({_reason(err)}); the check goes on without it")
    cert = env.get("CLAUDE_CODE_CLIENT_CERT")
    if cert:
        try:
            context.load_cert_chain(cert, env.get("CLAUDE_CODE_CLIENT_KEY") or None,
                                    env.get("CLAUDE_CODE_CLIENT_KEY_PASSPHRASE") or None)
        except (OSError, ssl.SSLError) as err:
            warnings.append(f"CLAUDE_CODE_CLIENT_CERT={cert} could not be loaded ({_reason(err)}); the check goes on "
                            "without a client certificate")
    return context, warnings


def probe_proxy(url: str, env: Mapping[str, str]) -> str | None:
    """The proxy Claude Code takes to `url` (Node's EnvHttpProxyAgent: https_proxy, else http_proxy, lower case
    first), None when NO_PROXY covers the host. Loopback is not exempt: urllib and Claude Code both send
    127.0.0.1 through the proxy unless NO_PROXY names it. NO_PROXY may be space- or comma-separated (Claude Code's
    docs show both; urllib reads commas only)."""
    def var(name: str) -> str:
        return (env.get(name) or env.get(name.upper()) or "").strip()

    https = url.startswith("https://")
    proxy = (var("https_proxy") if https else "") or var("http_proxy")
    if not proxy:
        return None
    no_proxy = ",".join(var("no_proxy").split())  # urllib skips the empty items "a, b" leaves
    host = urllib.parse.urlsplit(url).netloc
    return None if urllib.request.proxy_bypass_environment(host, {"no": no_proxy}) else proxy


def probe_gateway(url: str, key: str, env: Mapping[str, str], *, timeout: float = PROBE_TIMEOUT) -> list[str]:
    """Warnings, or LaunchError unless a gateway answers at `url` and takes `key`: without this Claude Code
    retries a refused connection for minutes, and a 401 from a gateway whose keys this machine cannot see says
    nothing of the cause. The check reaches the gateway as Claude Code will (probe_context, probe_proxy), and
    refuses only what Claude Code would fail on too: a failure through a proxy (which may treat the two clients
    differently), a gateway slow to answer, and any answer to the key check but a 401 are warnings."""
    context, warnings = probe_context(env)
    proxy = probe_proxy(url, env)
    handlers = [urllib.request.ProxyHandler({"https" if url.startswith("https://") else "http": proxy} if proxy else {}),
                urllib.request.HTTPSHandler(context=context)]
    opener = urllib.request.build_opener(*handlers)
    failure = _get(opener, urllib.request.Request(url + "/healthz"), timeout)
    if failure is None:
        models = urllib.request.Request(url + "/v1/models", headers={"x-api-key": key})
        failure, step = _get(opener, models, timeout), "/v1/models"
    else:
        step = "/healthz"
    if failure is None:
        return warnings
    if failure.kind == "http" and failure.code == 401 and step == "/v1/models":
        if key == NO_AUTH_KEY:
            raise LaunchError(f"the gateway at {url} wants a key: set DRAGOMAN_GATEWAY_KEY to yours")
        raise LaunchError(f"the gateway at {url} refused your key (401): check DRAGOMAN_GATEWAY_KEY")
    what = _describe(failure, step, timeout)
    if proxy:
        host = urllib.parse.urlsplit(url).hostname
        return [*warnings, f"could not check the gateway at {url} through the proxy {_shown(proxy)} ({what}); "
                f"starting Claude Code anyway, which takes the same proxy (if that proxy cannot reach the gateway, "
                f"add {host} to NO_PROXY)"]
    if step == "/v1/models":  # the gateway answered /healthz: Claude Code reports what it gets
        return [*warnings, f"the gateway at {url} is up, but {what}: starting Claude Code without checking your key"]
    if failure.kind == "slow":  # a busy gateway answers late, not never
        return [*warnings, f"the gateway at {url} accepted the connection, but {what}: starting Claude Code "
                "without checking it"]
    raise LaunchError(_refusal(url, failure, timeout))


def _get(opener: urllib.request.OpenerDirector, request: urllib.request.Request, timeout: float) -> _Failure | None:
    try:
        opener.open(request, timeout=timeout).close()
    except urllib.error.HTTPError as err:
        return _Failure("http", code=err.code)
    except urllib.error.URLError as err:  # raised before the request was sent: connect, TLS handshake, proxy
        reason = err.reason
        if isinstance(reason, TimeoutError):
            return _Failure("no-connection")
        return _classify(reason) if isinstance(reason, BaseException) else _Failure("other", str(reason))
    except TimeoutError:  # sent, and no answer in time
        return _Failure("slow")
    except (OSError, http.client.HTTPException, ValueError) as err:
        return _classify(err)
    return None


def _classify(err: BaseException) -> _Failure:
    if isinstance(err, ssl.SSLCertVerificationError):
        return _Failure("untrusted", err.verify_message or _reason(err))
    if isinstance(err, ssl.SSLError):
        return _Failure("tls", _reason(err))
    if isinstance(err, ConnectionRefusedError):
        return _Failure("refused")
    if isinstance(err, socket.gaierror):
        return _Failure("unresolved", _reason(err))
    return _Failure("other", _reason(err) or type(err).__name__)


def _describe(failure: _Failure, step: str, timeout: float) -> str:
    return {"refused": "connection refused",
            "unresolved": f"host not found: {failure.detail}",
            "no-connection": f"no connection within {timeout:g} s",
            "slow": f"it did not answer GET {step} within {timeout:g} s",
            "untrusted": f"certificate not trusted: {failure.detail}",
            "tls": f"TLS handshake failed: {failure.detail}",
            "http": f"GET {step} answered HTTP {failure.code}"}.get(failure.kind, failure.detail)


def _refusal(url: str, failure: _Failure, timeout: float) -> str:
    """The LaunchError text for a failed GET /healthz without a proxy, one cause each."""
    check = "check --gateway / DRAGOMAN_URL"
    escape = f"or set {NO_CHECK}=1 to start Claude Code without this check"
    host = urllib.parse.urlsplit(url).netloc
    return {
        "refused": f"no gateway answers at {url} ({host} refused the connection): start one with `dragoman serve` "
                   "(another terminal), or point --gateway / DRAGOMAN_URL at yours",
        "unresolved": f"the gateway's host in {url} is not found ({failure.detail}): {check}",
        "no-connection": f"nothing at {url} accepted a connection within {timeout:g} s (waited for the TCP "
                         f"connection{' and TLS handshake' if url.startswith('https://') else ''}): a wrong address "
                         f"or a firewall dropping the packets? {check}, {escape}",
        "untrusted": f"the gateway at {url} presented a certificate this machine does not trust: {failure.detail}; "
                     "set NODE_EXTRA_CA_CERTS to the PEM file of the CA that signed it (Claude Code reads it too; "
                     f"SSL_CERT_FILE / SSL_CERT_DIR are read as well), {escape}",
        "tls": f"the TLS handshake with the gateway at {url} failed ({failure.detail}): if it serves plain HTTP, "
               f"use an http:// URL; {check}",
        "http": f"{url}/healthz answered HTTP {failure.code}, not a Dragoman gateway (its /healthz answers 200): "
                f"{check}",
    }.get(failure.kind, f"the gateway at {url} gave no HTTP answer to GET /healthz ({failure.detail}): {check} "
                        "(http:// or https://)")


def _reason(err: BaseException) -> str:
    return str(getattr(err, "reason", None) or getattr(err, "strerror", None) or err)


def _shown(proxy: str) -> str:
    """The proxy URL without its user:password (never printed)."""
    parts = urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"


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
        if any(arg == "--settings" or arg.startswith("--settings=") for arg in passed):
            raise LaunchError("dragoman claude passes Claude Code a --settings of its own (the last one wins): put "
                              "yours in .claude/settings.local.json, or run `claude` without the gateway")
        options = _options(own)
        path = options.config or env.get("DRAGOMAN_CONFIG")
        missing: list[str] = []  # the config's secrets are the gateway's, not needed here
        read = _ReadNames(env)  # every variable the config reads is the gateway's business, not Claude Code's
        config = load_config(path, read, missing_secrets=missing) if path else zero_config(env)
        key = options.key or env.get("DRAGOMAN_GATEWAY_KEY") or None
        cwd = Path.cwd()
        url = gateway_url(options.gateway, env)
        child = claude_env(config, env, url=url, key=key, repo=repo_name(cwd), user=getpass.getuser(),
                           auth=inbound_auth(config, missing), secret_vars=sorted(read.names))
        settings_conflicts(list(settings_files(env, cwd)))
        exe = claude_executable(env)
        for warning in _checked(url, child["ANTHROPIC_API_KEY"], env):
            print(f"warning: {warning}", file=sys.stderr)
    except (LaunchError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    sys.stdout.flush()
    sys.stderr.flush()
    own_headers = bool(env.get("ANTHROPIC_CUSTOM_HEADERS", "").strip())
    settings = json.dumps(flag_settings(child, own_headers=own_headers))
    try:
        os.execvpe(exe, [exe, "--settings", settings, *passed], child)
    except OSError as err:
        print(f"error: cannot run {exe}: {err.strerror or err}; {INSTALL_HINT}", file=sys.stderr)
        return 2
    return 2  # not reached: execvpe does not return


def _checked(url: str, key: str, env: Mapping[str, str]) -> list[str]:
    """probe_gateway's warnings, or none when $DRAGOMAN_CLAUDE_NO_CHECK=1 turns the check off (0 or unset: on)."""
    switch = env.get(NO_CHECK, "").strip()
    if switch not in ("", "0", "1"):
        raise LaunchError(f"{NO_CHECK}={switch!r}: set it to 1 to start Claude Code without checking the gateway, "
                          "or 0 / unset to check it")
    return [] if switch == "1" else probe_gateway(url, key, env)


class _ReadNames(Mapping[str, str]):
    """The environment, noting the names read from it (load_config's secrets: api_key_ref, secrets.*.env)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self.names: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.names.add(name)
        return self._env[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._env)

    def __len__(self) -> int:
        return len(self._env)


def _one_line(value: str) -> str:
    # A newline would start a header line of its own in ANTHROPIC_CUSTOM_HEADERS.
    return " ".join(value.split())
