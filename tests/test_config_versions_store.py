"""The config_versions table (migration 6) on SQLite and on a real PostgreSQL: workers applying the same version
leave one row, the history comes newest first with each version's score counted from the audit records, a
version is found by a prefix, automatic rollbacks are remembered; and ConfigVersions on top of it: the previous
version, rollbacks marked so they are never rolled back automatically, a rollback written back to the file."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dragoman.config.load import load_config
from dragoman.loop import version_store
from dragoman.loop.version_store import VersionEntry
from dragoman.loop.versions import AUTO, ConfigVersions, RollbackError, content_version
from dragoman.observe.record import AuditRecord
from dragoman.observe.stores import AuditStore, open_store
from tests.observe_pg import cluster


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AuditStore]:
    url = f"sqlite:///{tmp_path}/audit.db" if request.param == "sqlite" else cluster().new_database()
    opened = open_store(url)
    yield opened
    opened.close()


def _entry(version: str, t: float, applied_by: str = "startup", **fields) -> VersionEntry:
    return VersionEntry(version=version, time=t, applied_by=applied_by, source="/etc/dragoman.yaml",
                        content=f"# {version}", **fields)


def test_workers_applying_the_same_version_leave_one_row(store: AuditStore) -> None:
    assert version_store.record_applied(store, _entry("aaaaaaaaaaaa", 1.0))
    assert not version_store.record_applied(store, _entry("aaaaaaaaaaaa", 1.1, "file change"))
    assert version_store.record_applied(store, _entry("bbbbbbbbbbbb", 2.0, "SIGHUP"))
    assert version_store.record_applied(store, _entry("aaaaaaaaaaaa", 3.0, AUTO, rolled_back_from="bbbbbbbbbbbb"))
    rows = version_store.history(store)
    assert [(r.version, r.applied_by, r.rolled_back_from) for r in rows] == [
        ("aaaaaaaaaaaa", AUTO, "bbbbbbbbbbbb"), ("bbbbbbbbbbbb", "SIGHUP", None), ("aaaaaaaaaaaa", "startup", None)]
    assert version_store.auto_rolled_back(store, "bbbbbbbbbbbb")
    assert not version_store.auto_rolled_back(store, "aaaaaaaaaaaa")


def test_scores_are_counted_from_the_audit_records(store: AuditStore) -> None:
    version_store.record_applied(store, _entry("aaaaaaaaaaaa", 100.0))
    version_store.record_applied(store, _entry("bbbbbbbbbbbb", 200.0))
    verdicts = [("aaaaaaaaaaaa", "pass")] * 3 + [("aaaaaaaaaaaa", "fail"), ("bbbbbbbbbbbb", "fail"),
                                                 ("bbbbbbbbbbbb", None)]
    store.write([AuditRecord(time=150.0 + i, request_id=f"req_{i}", config_version=v, verdict=verdict)
                 for i, (v, verdict) in enumerate(verdicts)])
    rows = {r.version: r for r in version_store.history(store)}
    assert (rows["aaaaaaaaaaaa"].calls, rows["aaaaaaaaaaaa"].passed, rows["aaaaaaaaaaaa"].score) == (4, 3, 0.75)
    assert (rows["bbbbbbbbbbbb"].calls, rows["bbbbbbbbbbbb"].passed) == (1, 0)  # the unassessed call is not counted
    found = version_store.find(store, "aaaaaa")
    assert found is not None and found.version == "aaaaaaaaaaaa" and found.calls == 4 and found.content == "# aaaaaaaaaaaa"
    assert version_store.find(store, "aaa") is None  # too short a prefix
    assert version_store.find(store, "cccccc") is None


ROUTES = """\
routes:
  - name: r
    upstream: {{provider: openai_compatible, model: {model}, endpoint: "http://127.0.0.1:9/v1"}}
auth:
  keys: [sk-inline-key]
"""


def test_config_versions_roll_back_through_the_file_and_mark_the_rollback(store: AuditStore, tmp_path: Path) -> None:
    path = tmp_path / "dragoman.yaml"
    path.write_text(ROUTES.format(model="one"))
    os.chmod(path, 0o640)
    applied = []
    versions = ConfigVersions(load_config(str(path)), store, applied.append, path=str(path))
    first = versions.applied(load_config(str(path)), "startup")
    path.write_text(ROUTES.format(model="two"))
    second = versions.applied(load_config(str(path)), "file change")
    assert versions.scores.previous == first.version and versions.scores.live_version == second.version

    live = versions.rollback(None, AUTO, "it regressed")

    assert live == first.version == content_version(path.read_text())  # byte for byte, the secret restored
    assert path.read_text() == ROUTES.format(model="one") and (path.stat().st_mode & 0o777) == 0o640
    assert [c.routes[0].model for c in applied] == ["one"]
    newest = version_store.history(store)[0]
    assert (newest.version, newest.applied_by, newest.rolled_back_from, newest.reason) == (
        first.version, AUTO, second.version, "it regressed")
    assert "sk-inline-key" not in (newest.content or "")
    assert first.version in versions.scores._protected  # a rollback is never rolled back automatically
    # Another worker reloading the file it wrote adds no row, and knows the version is a rollback.
    other = ConfigVersions(load_config(str(path)), store, applied.append, path=str(path))
    other.applied(load_config(str(path)), "file change")
    assert len(version_store.history(store)) == 3 and first.version in other.scores._protected


def test_a_rollback_is_refused_when_a_masked_secret_is_gone(store: AuditStore, tmp_path: Path) -> None:
    path = tmp_path / "dragoman.yaml"
    path.write_text(ROUTES.format(model="one"))
    versions = ConfigVersions(load_config(str(path)), store, None, path=str(path))
    versions.applied(load_config(str(path)), "startup")
    path.write_text(ROUTES.format(model="two").replace("sk-inline-key", "sk-rotated-key"))
    versions.applied(load_config(str(path)), "file change")
    with pytest.raises(RollbackError, match="not in the live config"):
        versions.rollback(None, "rollback:manual")
    assert "sk-rotated-key" in path.read_text()


def test_without_a_file_a_rollback_applies_in_this_process_and_says_so(
        store: AuditStore, caplog: pytest.LogCaptureFixture) -> None:
    from dragoman.config.load import parse_config

    one, two = (parse_config(ROUTES.format(model=m), "inline.yaml", {}) for m in ("one", "two"))
    applied = []
    versions = ConfigVersions(one, store, applied.append, path=None)
    versions.applied(one, "startup")
    versions.applied(two, "file change")
    with caplog.at_level("WARNING", logger="dragoman.loop"):
        assert versions.rollback(None, "rollback:manual") == content_version(one.text or "")
    assert [c.routes[0].model for c in applied] == ["one"]
    assert "applied in this process only: there is no config file" in caplog.text


def test_the_watcher_says_why_it_applied_a_config(tmp_path: Path) -> None:
    import asyncio
    import signal

    from dragoman.config.reload import ConfigWatcher

    path = tmp_path / "dragoman.yaml"
    path.write_text(ROUTES.format(model="one"))
    reasons: list[str] = []

    async def scenario() -> None:
        told = asyncio.Event()

        def applied(config, reason: str) -> None:  # noqa: ANN001
            reasons.append(reason)
            told.set()

        watcher = ConfigWatcher(str(path), lambda config: None, poll=3600, applied=applied)
        watcher.start()
        try:
            os.kill(os.getpid(), signal.SIGHUP)
            await asyncio.wait_for(told.wait(), 5)
        finally:
            watcher.stop()

    asyncio.run(scenario())
    assert reasons == ["SIGHUP"]
