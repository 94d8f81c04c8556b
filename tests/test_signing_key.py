"""The signing key: one per deployment, shared by every worker from the first start on, never empty."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from dragoman.signing_key import SigningKeyError, signing_key


def _key(path: str, barrier, results) -> None:  # noqa: ANN001 - multiprocessing primitives
    barrier.wait()
    results.put(signing_key({"DRAGOMAN_SIGNING_KEY_FILE": path}))


def test_workers_racing_to_create_the_key_all_get_the_same_one(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    for trial in range(10):
        path = str(tmp_path / f"t{trial}" / "signing.key")
        barrier, results = ctx.Barrier(4), ctx.Queue()
        procs = [ctx.Process(target=_key, args=(path, barrier, results)) for _ in range(4)]
        for proc in procs:
            proc.start()
        keys = [results.get(timeout=10) for _ in procs]
        for proc in procs:
            proc.join(10)
        assert len(set(keys)) == 1 and len(keys[0]) == 32
        assert (Path(path).stat().st_mode & 0o777) == 0o600


def test_an_empty_or_garbled_key_file_is_refused(tmp_path: Path) -> None:
    for text in ("", "not hex", "abcd"):
        path = tmp_path / "signing.key"
        path.write_text(text)
        with pytest.raises(SigningKeyError):
            signing_key({"DRAGOMAN_SIGNING_KEY_FILE": str(path)})


def test_a_configured_key_wins(tmp_path: Path) -> None:
    env = {"DRAGOMAN_SIGNING_KEY": "team secret shared by every replica", "DRAGOMAN_SIGNING_KEY_FILE": str(tmp_path / "unused")}
    assert signing_key(env) == signing_key(dict(env))
    assert not (tmp_path / "unused").exists()


def test_a_short_configured_key_is_refused_with_its_length() -> None:
    for short in ("a", "x" * 31):
        with pytest.raises(SigningKeyError, match=f"DRAGOMAN_SIGNING_KEY is {len(short)} characters; it needs at least 32"):
            signing_key({"DRAGOMAN_SIGNING_KEY": short})
    assert len(signing_key({"DRAGOMAN_SIGNING_KEY": "x" * 32})) == 32


def test_the_deploy_examples_placeholders_are_refused() -> None:
    """deploy/.env.example's and deploy/k8s/secret.example.yaml's values: published, so anyone could sign."""
    for placeholder in _placeholders():
        with pytest.raises(SigningKeyError, match="still the example's placeholder"):
            signing_key({"DRAGOMAN_SIGNING_KEY": placeholder})


def _placeholders() -> list[str]:
    import re

    deploy = Path(__file__).resolve().parent.parent / "deploy"
    env = re.search(r"^DRAGOMAN_SIGNING_KEY=(.+)$", (deploy / ".env.example").read_text(), re.M)
    secret = re.search(r'DRAGOMAN_SIGNING_KEY: "(.+)"', (deploy / "k8s" / "secret.example.yaml").read_text())
    assert env and secret
    return [env.group(1).strip(), secret.group(1)]


def test_serve_refuses_to_start_with_the_placeholder_key(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("DRAGOMAN_")}
    env.update({"XDG_DATA_HOME": str(tmp_path), "DRAGOMAN_SIGNING_KEY": _placeholders()[0]})
    done = subprocess.run([sys.executable, "-m", "dragoman", "serve", "--host", "127.0.0.1", "--port", "0"],
                          capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stderr
    assert "error: DRAGOMAN_SIGNING_KEY is still the example's placeholder" in done.stderr
    assert "starting with" not in done.stderr
