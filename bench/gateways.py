"""The servers the benchmark starts: the fake upstream and each gateway under test, pinned to their cores.

Every process is started in its own session (process group) and recorded in a `Processes` registry, so the
runner can end exactly the processes it started — the group of each, by id — even on error.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from scenarios import ROUTE, ROUTE_RESPONSES, ROUTE_TOOLS, TOOLS_PATH_PREFIX

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
LITELLM_VENV = BENCH / ".litellm-venv"
UPSTREAM_KEY = "sk-bench-upstream"
LITELLM_MASTER_KEY = "sk-bench-master"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(cmd: list[str], cpus: str | None) -> list[str]:
    return ["taskset", "-c", cpus, *cmd] if cpus else cmd


def http_status(port: int, path: str, timeout: float = 0.5) -> int | None:
    """Status of GET path on 127.0.0.1:port, or None if nothing answers."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n".encode())
            head = s.recv(64)
        return int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else None
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class Started:
    name: str
    proc: subprocess.Popen
    port: int
    cold_start_s: float
    log: Path
    headers: tuple[tuple[str, str], ...] = ()  # what a client sends it (the gateway's own, or a key made at start)


@dataclass
class Processes:
    """Everything the runner started; `stop_all` ends each one's process group."""

    live: list[subprocess.Popen] = field(default_factory=list)

    def start(self, cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
        # cwd: the run's own folder, so files a server writes to ./ (Dragoman's audit store, configured as
        # ./dragoman.db) land there, never in the repository
        with open(log, "wb") as out:  # a file, never a pipe: a full pipe would stall the server
            proc = subprocess.Popen(
                cmd,
                env={**env, "PYTHONPATH": str(REPO)},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=log.parent,
            )
        self.live.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, grace: float = 5.0) -> None:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(grace)
            except ProcessLookupError:
                pass
        # the group may outlive its leader (a worker process); end whatever is left of it
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if proc in self.live:
            self.live.remove(proc)

    def stop_all(self) -> None:
        for proc in list(reversed(self.live)):
            self.stop(proc)


def wait_ready(proc: subprocess.Popen, port: int, path: str, started: float, limit: float, log: Path) -> float:
    """Poll GET path every 10 ms until 200; returns seconds since `started`."""
    while True:
        if http_status(port, path) == 200:
            return time.perf_counter() - started
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}; log {log}:\n{log.read_text()[-3000:]}")
        if time.perf_counter() - started > limit:
            raise RuntimeError(f"{proc.args} not ready after {limit:.0f} s; log {log}:\n{log.read_text()[-3000:]}")
        time.sleep(0.01)


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY")}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.pop("DRAGOMAN_API_KEYS", None)
    return env


# ---------------------------------------------------------------------------------------------- the servers
def start_upstream(procs: Processes, workdir: Path, cpus: str | None) -> Started:
    port = free_port()
    log = workdir / "upstream.log"
    t0 = time.perf_counter()
    proc = procs.start(
        pinned([sys.executable, str(BENCH / "upstream.py"), "--port", str(port)], cpus), _base_env(), log
    )
    return Started("upstream", proc, port, wait_ready(proc, port, "/healthz", t0, 30, log), log)


def start_redis(procs: Processes, workdir: Path, cpus: str | None) -> str:
    """A throwaway redis-server on loopback (no persistence) for the governance targets; its URL."""
    port = free_port()
    log = workdir / "redis.log"
    cmd = ["/usr/bin/redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    proc = procs.start(pinned(cmd, cpus), _base_env(), log)
    deadline = time.perf_counter() + 10
    while True:  # ready when it answers PING
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return f"redis://127.0.0.1:{port}/0"
        except OSError:
            pass
        if proc.poll() is not None or time.perf_counter() > deadline:
            raise RuntimeError(f"redis-server did not start; log {log}:\n{log.read_text()[-2000:]}")
        time.sleep(0.01)


@dataclass(frozen=True)
class Gateway:
    """How to start one gateway and talk to it."""

    name: str
    health_path: str
    headers: tuple[tuple[str, str], ...]
    ready_limit_s: float
    speaks_chat: bool = False  # takes the upstream body (like direct), not the Anthropic one
    skips: tuple[str, ...] = ()  # scenarios it has no equivalent for (not run, shown as such)

    def supports(self, scenario: str) -> bool:
        return scenario not in self.skips

    def command(self, config: Path, port: int) -> list[str]:
        raise NotImplementedError

    def write_config(self, workdir: Path, upstream_port: int, redis_url: str | None = None) -> Path:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return _base_env()

    def available(self) -> str | None:
        """None when it can run here, else why not."""
        return None

    def client_headers(self, config: Path, workdir: Path) -> tuple[tuple[str, str], ...]:
        """Headers a client sends; called before the server starts (a variant may make its key here)."""
        return self.headers

    def start(
        self, procs: Processes, workdir: Path, upstream_port: int, cpus: str | None, tag: str,
        redis_url: str | None = None,
    ) -> Started:
        config = self.write_config(workdir, upstream_port, redis_url)
        headers = self.client_headers(config, workdir)
        port = free_port()
        log = workdir / f"{self.name}-{tag}.log"
        t0 = time.perf_counter()
        proc = procs.start(pinned(self.command(config, port), cpus), self.env(), log)
        cold = wait_ready(proc, port, self.health_path, t0, self.ready_limit_s, log)
        return Started(self.name, proc, port, cold, log, headers)


# The seed's cost-aware policy (issue 4), as dragoman-policy applies it to every request.
SEED_POLICY = """\
if input_tokens < 8000 and tool_call_count <= 2:
  route gpt-5-mini-via-gateway
elif input_tokens < 60000:
  route gpt-5-via-gateway
else:
  route claude-opus-fallback
"""
POLICY_ROUTES = ("gpt-5-mini-via-gateway", "gpt-5-via-gateway", "claude-opus-fallback")


def _dragoman_route(name: str, upstream_port: int, api: str = "chat", prefix: str = "") -> str:
    path = prefix + ("/v1/responses" if api == "responses" else "/v1/chat/completions")
    return (
        f"  - name: {name}\n"
        "    inbound_protocol: anthropic\n"
        "    upstream:\n"
        "      provider: openai_compatible\n"
        + (f"      api: {api}\n" if api != "chat" else "")
        + "      model: gpt-4.1\n"
        f"      endpoint: http://127.0.0.1:{upstream_port}{path}\n"
        "      api_key_ref: k\n"
    )


class Dragoman(Gateway):
    """`python -m dragoman serve`, one worker. Variants (each its own target in run.py):

    - dragoman: defaults but for the audit store, SQLite at ./dragoman.db (the run's folder); routes bench-model (Chat) and bench-responses
      (`api: responses`); requests name a route, so no policy runs;
    - dragoman-noaudit: the same with `audit: {enabled: false}`;
    - dragoman-noloop: the same with `loop: {enabled: false}` (audit on): the correctness loop's cost;
    - dragoman-policy: the seed's cost_aware_routing policy (`applies_to: ["*"]`) over three Chat routes at the
      same fake upstream; bench-model is no route's name, so the policy picks the route of every request
      (small: gpt-5-mini-via-gateway, cc78k: gpt-5-via-gateway). Audit on, as in `dragoman`, so
      dragoman-policy − dragoman is what the policy adds. No Responses or tools route: skips those;
    - dragoman-gov / dragoman-gov-redis: the same as dragoman plus governance (issue 13): a virtual key made with
      `dragoman keys create` before the start (its own budget and limits) that every request presents, budgets
      for its team, each developer and globally, and limit rules for each developer and its team, counted in
      memory or on a redis-server the runner starts. Caps far above what a run spends: every check runs, none
      refuses.
    """

    def __init__(
        self, name: str = "dragoman", audit: bool = True, policy: bool = False, loop: bool = True,
        governance: str | None = None,
    ) -> None:
        super().__init__(
            name,
            "/healthz",
            (("x-api-key", "sk-bench-client"), ("anthropic-version", "2023-06-01")),
            60,
            skips=("responses", "tools", "tools-stream") if policy else (),
        )
        object.__setattr__(self, "audit", audit)
        object.__setattr__(self, "policy", policy)
        object.__setattr__(self, "loop", loop)
        object.__setattr__(self, "governance", governance)  # None, "memory" or "redis"

    def command(self, config: Path, port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "dragoman",
            "serve",
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ]

    def write_config(self, workdir: Path, upstream_port: int, redis_url: str | None = None) -> Path:
        path = workdir / f"{self.name}.yaml"
        text = "secrets:\n  k: {env: BENCH_KEY}\n"
        # The audit store in the run's folder (the server's cwd), where the runner measures and deletes it; by
        # default Dragoman would write it to the user's data directory.
        text += "audit: {store: sqlite:///./dragoman.db}\n" if self.audit else "audit: {enabled: false}\n"
        if not self.loop:
            text += "loop: {enabled: false}\n"
        if self.governance:
            text += _governance_block(self.governance, redis_url)
        text += "routes:\n"
        if self.policy:
            text += "".join(_dragoman_route(name, upstream_port) for name in POLICY_ROUTES)
            text += "policies:\n  - name: cost_aware_routing\n    applies_to: [\"*\"]\n    rule: |\n"
            text += "".join(f"      {line}\n" for line in SEED_POLICY.splitlines())
        else:
            text += _dragoman_route(ROUTE, upstream_port) + _dragoman_route(ROUTE_RESPONSES, upstream_port, "responses")
            text += _dragoman_route(ROUTE_TOOLS, upstream_port, prefix=TOOLS_PATH_PREFIX)
        path.write_text(text)
        return path

    def client_headers(self, config: Path, workdir: Path) -> tuple[tuple[str, str], ...]:
        if not self.governance:
            return self.headers
        # in the run's folder: the store is ./dragoman.db there, deleted after each start, so a key per start
        made = subprocess.run(
            [sys.executable, "-m", "dragoman", "keys", "create", "--config", str(config), "--developer", "bench",
             "--team", "bench", "--budget", "1000000000/month", "--rpm", "1000000000", "--tpm", "1000000000000",
             "--output-tpm", "1000000000000", "--concurrent", "1000000", "--format", "json"],
            capture_output=True, text=True, cwd=workdir, env={**self.env(), "PYTHONPATH": str(REPO)},
        )
        if made.returncode != 0:
            raise RuntimeError(f"dragoman keys create failed: {made.stderr[-1000:]}")
        key = json.loads(made.stdout)["key"]
        return (("x-api-key", key), ("anthropic-version", "2023-06-01"))

    def env(self) -> dict[str, str]:
        # a fixed signing key: without one Dragoman creates ~/.config/dragoman/signing.key
        return {**_base_env(), "BENCH_KEY": UPSTREAM_KEY, "DRAGOMAN_SIGNING_KEY": "bench-signing-key-of-32-characters"}

    def available(self) -> str | None:
        probe = subprocess.run([sys.executable, "-m", "dragoman", "serve", "--help"], capture_output=True, cwd=REPO)
        return (
            None
            if probe.returncode == 0
            else "`python -m dragoman serve --help` fails: "
            + (probe.stderr.decode(errors="replace").strip().splitlines() or ["?"])[-1]
        )


def _governance_block(backend: str, redis_url: str | None) -> str:
    """Budgets and limits that apply to the bench key's developer and team (and globally), never reached."""
    redis = f"    redis_url: {redis_url}\n" if backend == "redis" else ""
    big = "rpm: 1000000000, input_tpm: 1000000000000, output_tpm: 1000000000000, concurrent_streams: 1000000"
    return (
        "governance:\n"
        "  budgets:\n"
        "    - {scope: team:bench, limit: 1000000000, period: month}\n"
        "    - {scope: developer:*, limit: 1000000000, period: week}\n"
        "    - {scope: global, limit: 1000000000, period: month}\n"
        "  limits:\n"
        f"    backend: {backend}\n{redis}"
        "    rules:\n"
        f"      - {{scope: developer:*, {big}}}\n"
        "      - {scope: team:bench, rpm: 1000000000}\n"
    )


class LiteLLM(Gateway):
    def __init__(self) -> None:
        super().__init__(
            "litellm",
            "/health/liveliness",
            (("x-api-key", LITELLM_MASTER_KEY), ("anthropic-version", "2023-06-01")),
            180,
            skips=("responses",),  # /v1/messages -> Chat only, as configured below; no Responses equivalent
        )

    def command(self, config: Path, port: int) -> list[str]:
        return [
            str(LITELLM_VENV / "bin" / "litellm"),
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--num_workers",
            "1",
        ]

    def write_config(self, workdir: Path, upstream_port: int, redis_url: str | None = None) -> Path:
        path = workdir / "litellm.yaml"
        path.write_text(
            "model_list:\n"
            "  - model_name: bench-model\n"
            "    litellm_params:\n"
            "      model: openai/gpt-4.1\n"
            f"      api_base: http://127.0.0.1:{upstream_port}/v1\n"
            f"      api_key: {UPSTREAM_KEY}\n"
            f"  - model_name: {ROUTE_TOOLS}\n"
            "    litellm_params:\n"
            "      model: openai/gpt-4.1\n"
            f"      api_base: http://127.0.0.1:{upstream_port}{TOOLS_PATH_PREFIX}/v1\n"
            f"      api_key: {UPSTREAM_KEY}\n"
            "litellm_settings:\n"
            "  use_chat_completions_url_for_anthropic_messages: true  # /v1/messages -> Chat, not Responses\n"
            "  telemetry: false\n"
            "  drop_params: true  # else it rejects the fixture: gpt-4.1 takes no reasoning_effort (from thinking)\n"
            "general_settings:\n"
            f"  master_key: {LITELLM_MASTER_KEY}\n"
        )
        return path

    def env(self) -> dict[str, str]:
        env = _base_env()
        env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # else it fetches a price map from the internet at start
        for name in ("DATABASE_URL", "LITELLM_MASTER_KEY", "REDIS_HOST", "REDIS_URL"):
            env.pop(name, None)
        return env

    def available(self) -> str | None:
        if (LITELLM_VENV / "bin" / "litellm").exists():
            return None
        return f"{LITELLM_VENV} is missing: run bash bench/setup_litellm.sh (or pass --only dragoman,direct)"


class Forwarder(Gateway):
    """bench/forwarder.py: uvicorn + aiohttp passing the upstream body through untouched (to the upstream's same
    path: Chat, or Responses for the `responses` scenario), the floor of docs/performance.md."""

    def __init__(self) -> None:
        super().__init__("forwarder", "/healthz", (("authorization", f"Bearer {UPSTREAM_KEY}"),), 30, speaks_chat=True)

    def command(self, config: Path, port: int) -> list[str]:
        return [
            sys.executable,
            str(BENCH / "forwarder.py"),
            "--upstream",
            config.read_text().strip(),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]

    def write_config(self, workdir: Path, upstream_port: int, redis_url: str | None = None) -> Path:
        path = workdir / "forwarder.url"
        path.write_text(f"http://127.0.0.1:{upstream_port}\n")  # + the request's own path
        return path


GATEWAYS: dict[str, Gateway] = {
    "forwarder": Forwarder(),
    "dragoman": Dragoman(),
    "dragoman-noaudit": Dragoman("dragoman-noaudit", audit=False),
    "dragoman-noloop": Dragoman("dragoman-noloop", loop=False),
    "dragoman-policy": Dragoman("dragoman-policy", policy=True),
    "dragoman-gov": Dragoman("dragoman-gov", governance="memory"),
    "dragoman-gov-redis": Dragoman("dragoman-gov-redis", governance="redis"),
    "litellm": LiteLLM(),
}
