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
    env = {"DRAGOMAN_SIGNING_KEY": "team secret", "DRAGOMAN_SIGNING_KEY_FILE": str(tmp_path / "unused")}
    assert signing_key(env) == signing_key(dict(env))
    assert not (tmp_path / "unused").exists()
