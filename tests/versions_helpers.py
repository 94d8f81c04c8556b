"""Helpers for the config version tests over real sockets: configs on a good and a regressing scripted upstream,
requests with tools, the gateway's config file, `dragoman versions` and `dragoman rollback` as subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.gateway import Gateway
from tests.routing_helpers import post_messages, route

ROUTE = "gpt-5-via-gateway"
ADMIN_KEY = "adm-versions-test-key"
OFFERED_TOOL = "Read"
TOOLS = [{"name": OFFERED_TOOL, "description": "read a file",
          "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}]
BODY = {"model": ROUTE, "max_tokens": 100, "tools": TOOLS,
        "messages": [{"role": "user", "content": "read README.md"}]}


def config(endpoint: str, *, min_calls: int = 10, judge: dict[str, Any] | None = None,
           extra_routes: list[dict[str, Any]] | None = None, note: str = "") -> str:
    """A one-route config (plus `extra_routes`) with an inline admin key and small rollback thresholds."""
    loop: dict[str, Any] = {"rollback": {"min_calls": min_calls, "baseline_calls": min_calls}}
    if judge is not None:
        loop["judge"] = judge
    data = {"default_route": ROUTE, "routes": [route(ROUTE, endpoint), *(extra_routes or [])],
            "admin": {"keys": [ADMIN_KEY]}, "loop": loop}
    return yaml.safe_dump(data, sort_keys=False) + (f"# {note}\n" if note else "")


def config_path(gateway: Gateway) -> Path:
    return gateway.stderr_path.parent / "dragoman.yaml"


def replace_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(text)
    os.replace(tmp, path)


def ask(gateway: Gateway) -> int:
    """One non-streamed request offering the Read tool; its HTTP status."""
    return post_messages(gateway, BODY).status


def admin(gateway: Gateway, method: str, path: str, body: Any = None) -> Any:
    response = gateway.request(method, path, body, {"x-api-key": ADMIN_KEY})
    assert response.status == 200, response.text
    return response.json()


def cli(gateway: Gateway, *args: str) -> subprocess.CompletedProcess:
    """`dragoman …` with the gateway's data directory (so its default audit store) and upstream keys."""
    env = {**os.environ, "XDG_DATA_HOME": str(gateway.stderr_path.parent / "data"), "OPENAI_PROD": "sk-upstream"}
    return subprocess.run([sys.executable, "-m", "dragoman", *args], capture_output=True, text=True, env=env,
                          timeout=30, check=False)


def versions_json(gateway: Gateway) -> dict[str, Any]:
    done = cli(gateway, "versions", "--config", str(config_path(gateway)), "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
