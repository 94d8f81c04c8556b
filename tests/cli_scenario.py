"""What the real-CLI tests share: finding the installed `claude`, its clean environment, running it headless,
and reading its stream-json output. Factored out of tests/test_claude_code_cli.py (same behaviour), so the
Chat and Responses CLI tests run the CLI the same way.

Needs the CLI installed by `bash tests/cli/install.sh` (scripts/test runs it); without it a test fails. It skips
only when scripts/test found no Node.js/npm to install the CLI with, outside CI (tests/prerequisites.py).
`DRAGOMAN_CLAUDE_BIN` points the tests at another `claude` executable.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.prerequisites import skip_if_missing

CLI_DIR = Path(__file__).resolve().parent / "cli"
INSTALL_HINT = "run `bash tests/cli/install.sh` (installs the Claude Code CLI into tests/cli/node_modules)"
CLI_TIMEOUT = 180  # seconds for the whole CLI run; a healthy run takes a few seconds
INBOUND_KEY = "sk-dragoman-e2e-cli"
ROUTE = "gpt-5-via-gateway"
FILES = [f"{name}.txt" for name in "abcdef"]
FINAL_TEXT = "Done: all six files now say NEW."
SIDE_TEXT = "Edit six files"
TASK = "In each of a.txt, b.txt, c.txt, d.txt, e.txt and f.txt replace OLD with NEW."


def claude_executable() -> Path:
    """The installed `claude` executable, or a test failure telling how to install it."""
    override = os.environ.get("DRAGOMAN_CLAUDE_BIN")
    if not override:
        skip_if_missing("CLI")
    exe = Path(override) if override else CLI_DIR / "node_modules" / ".bin" / "claude"
    if not exe.exists():
        pytest.fail(f"Claude Code CLI not found at {exe}: {INSTALL_HINT}", pytrace=False)
    try:
        version = subprocess.run([str(exe), "--version"], check=False, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"{exe} --version failed ({exc!r}): {INSTALL_HINT}", pytrace=False)
    if version.returncode != 0 or "Claude Code" not in version.stdout:
        pytest.fail(f"{exe} --version exited {version.returncode}: {version.stdout}{version.stderr}\n{INSTALL_HINT}",
                    pytrace=False)
    return exe


def cli_env(home: Path, base_url: str) -> dict[str, str]:
    """A clean environment: throwaway HOME, gateway as the Anthropic API, everything non-essential off.

    Built from scratch so that no ANTHROPIC_* / CLAUDE_* variable of the developer's shell leaks in.
    """
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "TMPDIR": str(home / "tmp"),
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "SHELL": "/bin/bash",
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": INBOUND_KEY,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        # --dangerously-skip-permissions refuses to run as root outside a sandbox.
        "IS_SANDBOX": "1",
        # Without it the CLI preflights `HEAD /api/hello` and tries telemetry/update hosts (DNS look-ups).
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        # A gateway error is a test failure, not something to wait out: by default the CLI retries a 5xx ten
        # times with backoff (about three minutes).
        "CLAUDE_CODE_MAX_RETRIES": "1",
        "API_TIMEOUT_MS": "60000",
    }


def make_project(root: Path) -> tuple[Path, Path]:
    """(project, home) under `root`: six files saying OLD, and an empty HOME."""
    project, home = root / "project", root / "home"
    project.mkdir()
    home.mkdir()
    for name in FILES:
        (project / name).write_text("value = OLD\n")
    return project, home


def run_cli(exe: Path, project: Path, home: Path, base_url: str, task: str, model: str = ROUTE,
            timeout: float = CLI_TIMEOUT) -> tuple[int, str, str, float]:
    """Run `claude -p` headless; kill its process group if it outlives `timeout`."""
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    argv = [str(exe), "-p", task, "--output-format", "stream-json", "--verbose",
            "--model", model, "--dangerously-skip-permissions"]
    started = time.monotonic()
    proc = subprocess.Popen(argv, cwd=project, env=cli_env(home, base_url), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"claude did not finish within {timeout}s\nstdout tail:\n{out[-4000:]}\nstderr:\n{err[-4000:]}")
    return proc.returncode, out, err, time.monotonic() - started


def stream_events(stdout: str) -> list[dict[str, Any]]:
    """The CLI's stream-json events."""
    return [json.loads(line) for line in stdout.splitlines() if line.strip().startswith("{")]


def assert_cli_succeeded(code: int, out: str, project: Path, context: str) -> list[dict[str, Any]]:
    """Exit 0, six files edited on disk, one successful result with FINAL_TEXT, no retries; the events."""
    assert code == 0, context
    for name in FILES:
        assert (project / name).read_text() == "value = NEW\n", f"{name}: {(project / name).read_text()!r}\n{context}"
    events = stream_events(out)
    retries = [e for e in events if e.get("subtype") == "api_retry"]
    assert not retries, f"the CLI had to retry requests the gateway failed: {retries}\n{context}"
    results = [e for e in events if e.get("type") == "result"]
    assert len(results) == 1, context
    assert results[0].get("is_error") is False and results[0].get("subtype") == "success", results[0]
    assert results[0].get("result") == FINAL_TEXT, results[0]
    tool_uses = [block for e in events if e.get("type") == "assistant"
                 for block in e["message"]["content"] if block.get("type") == "tool_use"]
    assert [b["name"] for b in tool_uses] == ["Read"] * 6 + ["Edit"] * 6, context
    assert [b["input"]["file_path"] for b in tool_uses] == [str(project / n) for n in FILES] * 2
    return events
