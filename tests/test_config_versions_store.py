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
from dragoman.loop.versions import AUTO, ConfigVersions, RollbackError, content_version, write_atomically
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
    with pytest.raises(version_store.VersionIdError, match="6 to 12 of its hex digits"):
        version_store.find(store, "aaa")  # too short a prefix
    assert version_store.find(store, "cccccc") is None


@pytest.mark.parametrize("asked", ["______", "%%%%%%", "a%%%%%", "ab33__", "ab3333%", "abcdef\x00", "ab3333\x00",
                                   "ab3333\u00e9", "\uff41\uff42\uff13\uff13\uff13\uff13", "ab3333333333a",
                                   "zzzzzz", ""])
def test_a_version_is_asked_for_by_its_hex_digits_only(store: AuditStore, asked: str) -> None:
    # LIKE wildcards once matched any version; a NUL reached PostgreSQL's driver (a ValueError outside the
    # refusals, a 500); fullwidth digits pass str.isalnum(). Each is refused before any query.
    for i, version in enumerate(["aa1111111111", "bb2222222222", "ab3333333333"]):
        version_store.record_applied(store, _entry(version, 1.0 + i))
    with pytest.raises(version_store.VersionIdError, match="hex digits"):
        version_store.find(store, asked)


def test_a_prefix_is_compared_exactly_and_an_ambiguous_one_is_refused(store: AuditStore) -> None:
    for i, version in enumerate(["abcdef111111", "abcdef222222", "ab3333333333"]):
        version_store.record_applied(store, _entry(version, 1.0 + i))
    found = version_store.find(store, "AB3333")  # upper case is the same hex digits
    assert found is not None and found.version == "ab3333333333"
    assert version_store.find(store, "abcdef1").version == "abcdef111111"  # type: ignore[union-attr]
    assert version_store.find(store, "a3333333") is None  # no substring, only a prefix
    with pytest.raises(version_store.VersionIdError) as refused:
        version_store.find(store, "abcdef")
    assert refused.value.candidates == ["abcdef111111", "abcdef222222"]
    assert "ambiguous" in str(refused.value) and "abcdef111111, abcdef222222" in str(refused.value)


def test_without_a_store_a_version_is_asked_for_the_same_way() -> None:
    from dragoman.config.load import parse_config

    one, two = (parse_config(ROUTES.format(model=m), "inline.yaml", {}) for m in ("one", "two"))
    versions = ConfigVersions(one, None, None, path=None)
    first = versions.applied(one, "startup").version
    versions.applied(two, "file change")
    assert versions.find(first[:6].upper()).version == first  # type: ignore[union-attr]
    for asked in ("______", first[:5], first[:6] + "\x00"):
        with pytest.raises(version_store.VersionIdError):
            versions.find(asked)
    live = versions.live
    versions._memory[1].version = live[:6] + "000000"  # an earlier version beginning with the live one's digits
    with pytest.raises(version_store.VersionIdError, match="ambiguous"):
        versions.find(live[:6])


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


def test_a_rollback_through_a_symlinked_config_path_replaces_the_real_file(tmp_path: Path) -> None:
    # /etc/dragoman.yaml -> a release directory's file: renaming over the link once turned it into a regular file
    # and left the real file, which other gateways and the next deploy read, at the bad version.
    (tmp_path / "release").mkdir()
    (tmp_path / "etc").mkdir()
    real, link = tmp_path / "release" / "dragoman.yaml", tmp_path / "etc" / "dragoman.yaml"
    real.write_text(ROUTES.format(model="one"))
    os.chmod(real, 0o640)
    link.symlink_to(real)
    versions = ConfigVersions(load_config(str(link)), None, None, path=str(link))
    first = versions.applied(load_config(str(link)), "startup")
    real.write_text(ROUTES.format(model="two"))
    versions.applied(load_config(str(link)), "file change")

    assert versions.rollback(None, "rollback:manual") == first.version

    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_text() == ROUTES.format(model="one") and (real.stat().st_mode & 0o777) == 0o640
    assert os.listdir(tmp_path / "release") == ["dragoman.yaml"]  # no temporary file left beside it
    assert os.listdir(tmp_path / "etc") == ["dragoman.yaml"]


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file another owner to keep")
def test_a_rolled_back_file_keeps_its_owner_and_group(tmp_path: Path) -> None:
    path = tmp_path / "dragoman.yaml"
    path.write_text("# the bad version\n")
    os.chown(path, 12345, 23456)
    os.chmod(path, 0o640)
    write_atomically(str(path), "# the version before\n")
    st = path.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (12345, 23456, 0o640)
    assert path.read_text() == "# the version before\n"


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
