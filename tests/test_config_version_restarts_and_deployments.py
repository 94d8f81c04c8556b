"""Config versions across process lifetimes and deployments, on one real store (SQLite, and a real PostgreSQL):
a version live before a restart is not "new" again once past its watch (and still watched when it was not); two
gateways with different config files on one store never take each other's versions; the default rollback after
an automatic one does not re-apply the version that regressed; an automatic rollback leaves a newer push alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from dragoman.config.load import load_config
from dragoman.loop import version_store
from dragoman.loop.versions import AUTO, MANUAL, ConfigVersions, RollbackError, content_version
from dragoman.observe.record import AuditRecord
from dragoman.observe.stores import AuditStore, open_store
from tests.observe_pg import store, store_url  # noqa: F401 (fixtures)

CONFIG = """\
routes:
  - name: r
    upstream: {{provider: openai_compatible, model: m, endpoint: "http://127.0.0.1:9/v1"}}
loop:
  rollback: {{min_calls: 10, baseline_calls: 10, watch_calls: 40}}
# {note}
"""
WATCH = 40



class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def _versions(path: Path, note: str, store: AuditStore, clock: Clock) -> ConfigVersions:
    """A gateway process's ConfigVersions on the file, which now holds version `note`, applied at its start."""
    path.write_text(CONFIG.format(note=note))
    versions = ConfigVersions(load_config(str(path)), store, lambda config: None, path=str(path), clock=clock)
    versions.applied(versions.config, "startup")
    return versions


def _push(versions: ConfigVersions, path: Path, note: str) -> str:
    path.write_text(CONFIG.format(note=note))
    return versions.applied(load_config(str(path)), "file change").version


def _served(store: AuditStore, version: str, clock: Clock, passed: int, failed: int) -> None:
    """Calls of `version` in the audit store (another process's, or this one's before a restart)."""
    verdicts = ["pass"] * passed + ["fail"] * failed
    store.write([AuditRecord(time=clock(), request_id=f"req_{version}_{clock.now}_{i}", config_version=version,
                             verdict=v) for i, v in enumerate(verdicts)])


def _failing(versions: ConfigVersions, version: str, calls: int) -> None:
    """A bad spell: `calls` failing calls of `version`, as the audit writer hands them to the scores."""
    versions.scores.verdicts([AuditRecord(time=0.0, request_id=f"req_bad_{i}", config_version=version,
                                          verdict="fail") for i in range(calls)])


def _restart(store_url: str, path: Path, clock: Clock) -> tuple[AuditStore, ConfigVersions]:
    store = open_store(store_url)
    versions = ConfigVersions(load_config(str(path)), store, lambda config: None, path=str(path), clock=clock)
    versions.applied(versions.config, "startup")
    return store, versions


def test_a_version_past_its_watch_is_not_new_again_after_a_restart(store_url: str, tmp_path: Path) -> None:
    path, clock = tmp_path / "dragoman.yaml", Clock()
    first = open_store(store_url)
    before = _versions(path, "A", first, clock)
    _served(first, before.live, clock, 40, 0)
    b = _push(before, path, "B")
    _served(first, b, clock, 95, 5)  # far past watch_calls
    first.close()

    store, after = _restart(store_url, path, clock)  # the second lifetime: the file unchanged
    try:
        _failing(after, b, 30)  # an upstream incident right after the restart
        assert path.read_text() == CONFIG.format(note="B")  # not rolled back to A
        assert [e.applied_by for e in after.history()][:1] == ["file change"]  # no new row, no rollback row
    finally:
        store.close()


def test_a_version_restarted_within_its_watch_is_still_watched(store_url: str, tmp_path: Path) -> None:
    path, clock = tmp_path / "dragoman.yaml", Clock()
    first = open_store(store_url)
    before = _versions(path, "A", first, clock)
    a = before.live
    _served(first, a, clock, 40, 0)
    b = _push(before, path, "B")
    _served(first, b, clock, 5, 0)  # five calls into its watch
    first.close()

    store, after = _restart(store_url, path, clock)
    try:
        _failing(after, b, 10)
        assert path.read_text() == CONFIG.format(note="A")
        newest = after.history()[0]
        assert (newest.version, newest.applied_by, newest.rolled_back_from) == (a, AUTO, b)
    finally:
        store.close()


def test_gateways_with_other_files_on_one_store_keep_their_own_versions(store: AuditStore, tmp_path: Path) -> None:
    clock = Clock()
    path1, path2 = tmp_path / "gw1.yaml", tmp_path / "gw2.yaml"
    gw1 = _versions(path1, "gateway 1", store, clock)
    gw2 = _versions(path2, "gateway 2", store, clock)
    assert gw2.scores.previous is None  # gateway 1's config is not gateway 2's "version before"
    assert [e.version for e in gw2.history()] == [gw2.live]
    gw1.applied(gw1.config, "startup")  # a restart of gateway 1: its newest row is its version, whatever came since
    assert len(version_store.history(store)) == 2

    with pytest.raises(RollbackError, match="no version before"):
        gw2.rollback(None, MANUAL)
    with pytest.raises(RollbackError, match="is the config of .*gw1.yaml"):
        gw2.rollback(gw1.live, MANUAL)
    assert path2.read_text() == CONFIG.format(note="gateway 2")

    two = _push(gw2, path2, "gateway 2, second")
    assert gw2.scores.previous == content_version(CONFIG.format(note="gateway 2")) != two
    assert gw2.rollback(None, MANUAL) == content_version(CONFIG.format(note="gateway 2"))


def test_the_default_rollback_after_an_automatic_one_goes_further_back(store: AuditStore, tmp_path: Path) -> None:
    path, clock = tmp_path / "dragoman.yaml", Clock()
    versions = _versions(path, "A", store, clock)
    a = versions.live
    b = _push(versions, path, "B")
    c = _push(versions, path, "C")
    assert versions.rollback(b, AUTO, "C regressed") == b

    assert versions.rollback(None, MANUAL) == a  # not C, the version that just regressed
    assert path.read_text() == CONFIG.format(note="A")
    with pytest.raises(RollbackError, match=f"{b}, {c}, rolled back from already: name one"):
        versions.rollback(None, MANUAL)  # nothing older: B and C are named, not toggled between
    assert versions.rollback(c, MANUAL) == c  # named, it is applied


def test_an_automatic_rollback_leaves_a_newer_push_alone(store: AuditStore, tmp_path: Path) -> None:
    path, clock = tmp_path / "dragoman.yaml", Clock()
    versions = _versions(path, "A", store, clock)
    _served(store, versions.live, clock, 40, 0)
    b = _push(versions, path, "B")
    path.write_text(CONFIG.format(note="C, pushed while B was being judged"))  # not reloaded yet

    _failing(versions, b, 10)  # B regressed: the decision is taken on B's calls

    assert path.read_text() == CONFIG.format(note="C, pushed while B was being judged")
    assert versions.live == b and not version_store.auto_rolled_back(store, b)


def test_dragoman_versions_with_a_config_lists_that_files_versions_only(
        store: AuditStore, store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dragoman.cli import main

    clock = Clock()
    path1, path2 = tmp_path / "gw1.yaml", tmp_path / "gw2.yaml"
    gw1 = _versions(path1, "gateway 1", store, clock)
    gw2 = _versions(path2, "gateway 2", store, clock)

    assert main(["versions", "--config", str(path2), "--store", store_url, "--format", "json"]) == 0
    listed = capsys.readouterr().out
    assert gw2.live in listed and gw1.live not in listed
    assert main(["versions", "--store", store_url, "--format", "json"]) == 0  # no file named: every file's
    listed = capsys.readouterr().out
    assert gw2.live in listed and gw1.live in listed


def test_a_reload_the_file_has_moved_on_from_is_not_recorded(store: AuditStore, tmp_path: Path) -> None:
    """With workers, one slow to apply a push may get there after another rolled it back: its row would list the
    bad version as live while the file holds the one before."""
    clock = Clock()
    path = tmp_path / "dragoman.yaml"
    versions = _versions(path, "good", store, clock)
    good = load_config(str(path))
    path.write_text(CONFIG.format(note="bad"))
    bad = load_config(str(path))
    path.write_text(CONFIG.format(note="good"))  # rolled back by another worker before this one recorded its reload
    versions.applied(bad, "file change")
    assert [e.version for e in version_store.history(store)] == [content_version(CONFIG.format(note="good"))]
    assert versions.live == content_version(CONFIG.format(note="bad"))  # it serves what it applied, until it reloads
    versions.applied(good, "file change")  # this worker's next reload: the file's text, already the newest row
    assert [e.version for e in version_store.history(store)] == [content_version(CONFIG.format(note="good"))]
    path.write_text(CONFIG.format(note="bad"))  # a push that stays
    versions.applied(load_config(str(path)), "file change")
    assert version_store.history(store)[0].version == content_version(CONFIG.format(note="bad"))
