"""The embedded audit store lives in the user's data directory ($XDG_DATA_HOME/dragoman/dragoman.db), never the
working directory: the gateway creates it there (directory mode 0700), `dragoman logs` / `costs` find the same file
from any directory, and a report never creates a store: with none, it says where it looked and exits non-zero."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.audit_helpers import ENV, ROOT, config, headers, messages_body, route, wait_record
from tests.gateway import run_gateway
from tests.upstreams import ChatReply, ScriptedChatUpstream


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedChatUpstream]:
    with ScriptedChatUpstream(ChatReply(text="ok", model="gpt-5")) as up:
        yield up


def _report(*args: str, cwd: Path, data_home: Path, **env: str) -> subprocess.CompletedProcess:
    """`dragoman ARGS` run in `cwd`, with `data_home` as XDG_DATA_HOME and no store chosen by the environment."""
    proc_env = {k: v for k, v in os.environ.items() if k != "DRAGOMAN_AUDIT_STORE"}
    proc_env.update(XDG_DATA_HOME=str(data_home), **env)
    return subprocess.run([sys.executable, "-m", "dragoman", *args], check=False, capture_output=True, text=True,
                          timeout=30, env=proc_env, cwd=cwd)


def test_gateway_writes_to_the_data_directory_and_logs_finds_it_from_anywhere(
    upstream: ScriptedChatUpstream, tmp_path: Path
) -> None:
    data_home = tmp_path / "data"  # does not exist yet: the gateway makes it
    with run_gateway(config([route("gpt-5-via-gateway", upstream.chat_url)]),
                     env={**ENV, "XDG_DATA_HOME": str(data_home)}) as gateway:
        response = gateway.request("POST", "/v1/messages", messages_body("gpt-5-via-gateway"), headers(None))
        assert response.status == 200, response.text
        request_id = response.headers["request-id"]
        db = data_home / "dragoman" / "dragoman.db"
        wait_record(f"sqlite:///{db}", request_id)
        assert stat.S_IMODE((data_home / "dragoman").stat().st_mode) == 0o700
        assert not list(gateway.stderr_path.parent.glob("dragoman.db*"))  # nothing in the gateway's cwd
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    logs = _report("logs", "--format", "json", cwd=elsewhere, data_home=data_home)
    assert logs.returncode == 0, logs.stderr
    assert [row["request_id"] for row in json.loads(logs.stdout)] == [request_id]
    costs = _report("costs", "--by", "route", "--format", "json", cwd=ROOT, data_home=data_home)
    assert costs.returncode == 0, costs.stderr
    assert [(row["route"], row["requests"]) for row in json.loads(costs.stdout)] == [("gpt-5-via-gateway", 1)]
    assert not list(elsewhere.iterdir())


@pytest.mark.parametrize("command", [("logs",), ("costs",), ("logs", "--follow")])
def test_a_report_without_a_store_says_where_it_looked_and_creates_nothing(tmp_path: Path, command: tuple) -> None:
    data_home = tmp_path / "data"
    result = _report(*command, cwd=tmp_path, data_home=data_home)
    assert result.returncode == 1
    assert f"no audit store at {data_home / 'dragoman' / 'dragoman.db'}" in result.stderr
    assert "--store" in result.stderr and "DRAGOMAN_AUDIT_STORE" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # not the store, not its directory


def test_a_missing_store_named_by_flag_env_or_config_is_not_created(tmp_path: Path) -> None:
    data_home = tmp_path / "data"
    gateway_yaml = tmp_path / "gateway.yaml"
    gateway_yaml.write_text("audit:\n  store: sqlite:///from-config.db\n"
                            "routes:\n  - {name: gpt5, upstream: {provider: openai, model: gpt-5}}\n")
    by_flag = _report("logs", "--store", "sqlite:///from-flag.db", cwd=tmp_path, data_home=data_home)
    by_env = _report("costs", cwd=tmp_path, data_home=data_home, DRAGOMAN_AUDIT_STORE=str(tmp_path / "from-env.db"))
    by_config = _report("logs", "--config", str(gateway_yaml), cwd=tmp_path, data_home=data_home)
    for result, name, source in ((by_flag, "from-flag.db", "--store"), (by_env, "from-env.db", "$DRAGOMAN_AUDIT_STORE"),
                                 (by_config, "from-config.db", f"audit.store in {gateway_yaml}")):
        assert result.returncode == 1, result.stderr
        assert f"no audit store at {tmp_path / name} ({source}" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gateway.yaml"]
