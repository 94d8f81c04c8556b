"""A gateway started on an audit store a newer Dragoman migrated refuses it in one line that says what to do, and
exits with the start-failure code that systemd and Kubernetes restart on: no traceback, one process or several
workers alike."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from dragoman.observe import migrations
from dragoman.observe.stores import open_store

START_FAILED = 3  # uvicorn's exit code for an application whose start failed


def _newer_store(tmp_path: Path) -> str:
    path = tmp_path / "newer.db"
    open_store(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
                     (migrations.LATEST + 1, "a newer Dragoman's", 0.0))
    return f"sqlite:///{path}"


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_on_a_newer_dragomans_store_says_so_in_one_line(tmp_path: Path, workers: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRAGOMAN_")}
    env.update({"XDG_DATA_HOME": str(tmp_path), "OPENAI_API_KEY": "sk-x", "DRAGOMAN_AUDIT_STORE": _newer_store(tmp_path)})
    done = subprocess.run([sys.executable, "-m", "dragoman", "serve", "--host", "127.0.0.1", "--port", "0",
                           "--workers", workers], capture_output=True, text=True, timeout=60, env=env,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == START_FAILED
    assert f"newer than this Dragoman's {migrations.LATEST}: upgrade Dragoman" in done.stderr
    assert "Traceback" not in done.stderr and "Unclosed client session" not in done.stderr
