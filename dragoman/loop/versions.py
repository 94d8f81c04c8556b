"""Config versions: every config the gateway applies gets a version (the short sha256 of the file's text, or of a
canonical form for zero-config), recorded in the audit store with when and why (loop/version_store.py), scored
over the calls that ran under it (loop/rollback.py), and rolled back — automatically when it regressed, or by
hand (`dragoman rollback`, POST /api/rollback).

A rollback writes the earlier version's text back to the config file, atomically (a temporary file beside the
real file, a symlinked path followed, the file's mode and owner, rename), after recording the rollback in the
store: every worker and every gateway watching the file reloads it (and finds the entry there, so it knows the
version is a rollback), and a restart starts from it. Only when there is no file, or it cannot be written, is the
earlier config applied in this process alone — logged as such: other workers and instances keep the regressed
version.

Versions belong to a deployment: the config file's absolute path, stored as each entry's `source`. Gateways with
other files may share the store; their entries are never this one's "version before", and a rollback to one of
their versions is refused."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec

from dragoman.config.load import parse_config
from dragoman.config.model import Config
from dragoman.errors import ConfigError
from dragoman.loop import version_store
from dragoman.loop.rollback import Tally, VersionScores
from dragoman.loop.secret_mask import UnrestorableSecret, mask_secrets, restore_secrets
from dragoman.loop.version_store import VersionEntry

log = logging.getLogger("dragoman.loop")

AUTO = "rollback:auto"
MANUAL = "rollback:manual"
_MEMORY = 32  # applications kept in memory (all there is without an audit store)


class RollbackError(Exception):
    """A rollback that cannot be done: the message says why and what to do."""


class Superseded(RollbackError):
    """An automatic rollback of a version that is not live any more: a newer one was applied (or another worker
    rolled it back, and this one reads the file it wrote)."""


def content_version(text: str) -> str:
    """A version: the first 12 hex digits of the sha256 of the config text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:version_store.ID_LENGTH]


def config_text(config: Config) -> str:
    """The text a config's version hashes: the file's, or for zero-config a canonical form without secrets."""
    if config.text is not None:
        return config.text
    routes = [{"name": r.name, "provider": r.provider, "model": r.model, "endpoint": r.endpoint, "api": r.api}
              for r in config.routes]
    canonical = {"zero_config": True, "routes": routes, "default_route": config.default_route,
                 "model_routes": [[m.match, m.route] for m in config.model_routes]}
    return msgspec.json.encode(canonical).decode()


def config_version(config: Config) -> str:
    return content_version(config_text(config))


class ConfigVersions:
    """The versions one gateway process applies, their scores, and its rollbacks. `applied` and `rollback` do
    store and file I/O: call them off the event loop. `apply(config)` swaps a config in (thread-safe)."""

    def __init__(
        self,
        config: Config,
        store: Any | None,
        apply: Callable[[Config], None] | None,
        *,
        path: str | None = None,
        on_rollback: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.path = path
        self.apply = apply  # None: not a gateway (the CLI): the file is the only way a rollback takes effect
        self.on_rollback = on_rollback  # metrics: called with the reason (auto, manual, admin)
        self.clock = clock
        self.config = config
        self.live = config_version(config)
        self.deployment = os.path.abspath(path) if path is not None else config.source  # whose entries are ours
        self.scores = VersionScores(config.loop.rollback, self._auto_rollback, self._stored_tally)
        self._memory: list[VersionEntry] = []
        self._lock = threading.RLock()

    # ---- applying ----------------------------------------------------------------------------------------

    def applied(self, config: Config, applied_by: str, *, rolled_back_from: str | None = None,
                reason: str | None = None) -> VersionEntry:
        """Record that `config` is now applied in this process, and why."""
        return self._applied(config, applied_by, rolled_back_from, reason)[0]

    def _applied(self, config: Config, applied_by: str, rolled_back_from: str | None,
                 reason: str | None) -> tuple[VersionEntry, bool]:
        """The entry, and whether it is a new row (False: another worker recorded this version first)."""
        text = config_text(config)
        entry = VersionEntry(version=content_version(text), time=self.clock(), applied_by=applied_by,
                             rolled_back_from=rolled_back_from, reason=reason, source=self.deployment,
                             content=mask_secrets(text) if config.text is not None else text)
        with self._lock:
            before = self.history(_MEMORY, with_scores=False)
            inserted = self.store is None or (not self._superseded(config, applied_by)
                                              and version_store.record_applied(self.store, entry))
            if not self._memory or self._memory[0].version != entry.version:
                self._memory.insert(0, entry)
                del self._memory[_MEMORY:]
            self.config, self.live = config, entry.version
            previous, protected = _previous(entry, before)
            if self.store is not None and not protected:
                protected = version_store.auto_rolled_back(self.store, entry.version)
            seen = None if inserted else self._seen(entry.version, before)
            self.scores.live(entry.version, previous, protected=protected, seen=seen)
        return entry, inserted

    def _superseded(self, config: Config, applied_by: str) -> bool:
        """A reload the file has moved on from before it could be recorded: with `--workers N`, a worker slow to
        apply a push can get there after another worker rolled it back; its row would list the bad version as the
        live one (until its own next reload) although the file holds the one before. It is not recorded: this
        process applies the file's newer text next. A rollback is recorded before it writes the file, so it is
        never superseded."""
        if applied_by.startswith("rollback:") or config.text is None or self.path is None:
            return False
        try:
            with open(self.path, encoding="utf-8") as f:  # read as config/load.py reads it
                return f.read() != config.text
        except (OSError, UnicodeDecodeError):
            return False  # nothing newer to apply: recorded as applied

    def _seen(self, version: str, before: list[VersionEntry]) -> Tally | None:
        """The calls `version` had since it went live, when it was live before this process applied it (a
        restart, a respawned worker, another worker first to record a reload): its watch goes on from there, so a
        version live for weeks is not "new" again after every restart."""
        if self.store is None or not before or before[0].version != version:
            return None
        past_watch = self.scores.settings.watch_calls + 1  # more are not needed to know it is not new
        try:
            calls, passed = version_store.calls_since(self.store, version, before[0].time, past_watch)
        except Exception:  # noqa: BLE001 - the store is down: not watching beats watching a long-live version anew
            log.warning("cannot read config version %s's calls from the audit store; not watching it", version,
                        exc_info=True)
            calls, passed = past_watch, 0
        return Tally(calls, passed)

    def history(self, limit: int = 50, *, with_scores: bool = True) -> list[VersionEntry]:
        """The newest applications first: from the store, or this process's memory without one."""
        if self.store is not None:
            return version_store.history(self.store, limit, with_scores=with_scores, source=self.deployment)
        entries = [msgspec.structs.replace(e) for e in self._memory[:limit]]
        for entry in entries:
            tally = self.scores.tally(entry.version)
            entry.calls, entry.passed = tally.calls, tally.passed
        return entries

    def find(self, version: str) -> VersionEntry | None:
        """The newest application of `version` (6+ hex digits of it); VersionIdError as version_store.find."""
        if self.store is not None:
            return version_store.find(self.store, version)
        prefix = version_store.checked_prefix(version)
        history = self.history(_MEMORY)
        found = version_store.one_version(prefix, [e.version for e in history if e.version.startswith(prefix)])
        return next((e for e in history if e.version == found), None)

    # ---- rolling back ------------------------------------------------------------------------------------

    def rollback(self, target: str | None, applied_by: str, reason: str | None = None, *,
                 only_from: str | None = None) -> str:
        """Roll back to `target` (None: the version before the live one); the version now live. `only_from`: only
        when that version is still the live one, in this process and in the file (a newer push wins)."""
        with self._lock:
            live = self.live
            if only_from is not None:
                self._still_live(only_from)
            entry = self._target(target, live)
            config, text = self._restored(entry)
            version = content_version(text)
            if version == live:
                return live
            writable = self.path is not None and _writable(self.path)
            if not writable and self.apply is None:
                raise RollbackError(f"cannot write {self.path or 'the config file'}: check its permissions")
            # In the store first: the workers that reload the file find the entry and know it is a rollback.
            _, inserted = self._applied(config, applied_by, live, reason)
            counted = inserted or applied_by != AUTO  # two workers sure at once: the one whose row it is counts
            if not (writable and self._write_file(text)):
                if self.apply is None:
                    raise RollbackError(f"cannot write {self.path}: the store records a rollback that did not happen")
                log.warning("config version %s applied in this process only: %s; other workers and gateways keep "
                            "%s, and a restart brings the file's version back", version,
                            "there is no config file" if self.path is None else f"{self.path} is not writable", live)
            if self.apply is not None:
                self.apply(config)
        if self.on_rollback is not None and counted:
            self.on_rollback(applied_by.partition(" ")[0].removeprefix("rollback:"))
        return version

    def _auto_rollback(self, bad: str, previous: str, why: str) -> None:
        if self.store is not None and version_store.auto_rolled_back(self.store, bad):
            return  # another worker rolled it back already: its file write reaches this one too
        try:
            now = self.rollback(previous, AUTO, why, only_from=bad)
        except Superseded as err:
            log.warning("config version %s regressed (%s) but is not rolled back: %s", bad, why, err)
            return
        except RollbackError as err:
            log.error("config version %s regressed (%s) but cannot be rolled back: %s", bad, why, err)
            return
        log.warning("rolled back config version %s to %s automatically: %s", bad, now, why)

    def _still_live(self, version: str) -> None:
        """Refuse when `version` is not live any more: another version was applied, or is in the file and not
        reloaded yet (the decision to roll it back was taken on calls of `version`, not of the newer one)."""
        text = self._live_text() if self.path is not None else None
        in_file = content_version(text) if text is not None else self.live
        if version != self.live or version != in_file:
            raise Superseded(f"version {version} is not the live one any more ({in_file} was applied since): "
                             "the newer version stays")

    def _target(self, target: str | None, live: str) -> VersionEntry:
        history = self.history(_MEMORY, with_scores=False)
        if target is None:
            entry, skipped = _previous_entry(history, live)
            if entry is not None:
                return entry
            if skipped:
                raise RollbackError(f"no version before the live one ({live}) to roll back to but "
                                    f"{', '.join(skipped)}, rolled back from already: name one to apply it again")
            raise RollbackError(f"no version before the live one ({live}) to roll back to")
        entry = self.find(target)
        if entry is None:
            raise RollbackError(f"no config version {target!r} (see dragoman versions)")
        self._check_ours(entry)
        return entry

    def _check_ours(self, entry: VersionEntry) -> None:
        """Refuse a version another config file applied (a gateway sharing the store): its text is that gateway's
        config. Entries without an absolute path (stored before entries named their file) are taken as asked."""
        if self.store is None:
            return
        sources = version_store.sources(self.store, entry.version)
        others = sorted(s for s in sources if s is not None and os.path.isabs(s) and s != self.deployment)
        if others and self.deployment not in sources:
            raise RollbackError(f"version {entry.version} is the config of {others[0]}, not of {self.deployment}: "
                                "roll back only to this file's versions (see dragoman versions)")

    def _restored(self, entry: VersionEntry) -> tuple[Config, str]:
        """The version's config, its inline secrets restored from the live config file."""
        if entry.source == "<zero-config>" or entry.content is None:
            raise RollbackError(f"version {entry.version} is a zero-config start: there is no file to roll back to")
        try:
            text = restore_secrets(entry.content, self._live_text())
            # The CLI may run where the gateway's secrets are not set: it checks everything else.
            missing: list[str] | None = None if self.apply is not None else []
            return parse_config(text, self.path or entry.source or "<rollback>", os.environ,
                                missing_secrets=missing), text
        except UnrestorableSecret as err:
            raise RollbackError(str(err)) from None
        except ConfigError as err:
            raise RollbackError(f"version {entry.version} does not load any more: {err}") from None

    def _live_text(self) -> str | None:
        if self.path is not None:
            try:
                with open(self.path, encoding="utf-8") as f:
                    return f.read()
            except (OSError, UnicodeDecodeError):
                pass
        return self.config.text

    def _write_file(self, text: str) -> bool:
        if self.path is None:
            return False
        try:
            write_atomically(self.path, text)
        except OSError as err:
            log.warning("cannot write the rolled-back config to %s: %s", self.path, err.strerror or err)
            return False
        return True

    def _stored_tally(self, version: str) -> Tally:
        entry = version_store.find(self.store, version) if self.store is not None else None
        return Tally(entry.calls, entry.passed) if entry is not None else Tally()


def _writable(path: str) -> bool:
    """The file can be replaced: it is writable, and so is its directory (the rename's). A symlinked path is
    judged by the file it points to, which is the one write_atomically replaces."""
    real = os.path.realpath(path)
    return os.access(real, os.W_OK) and os.access(os.path.dirname(real), os.W_OK | os.X_OK)


def write_atomically(path: str, text: str) -> None:
    """Replace the file's content in one rename, keeping its mode and, where permitted, its owner and group: a
    reader sees the old text or the new. A symlinked path (/etc/dragoman.yaml -> a release directory) is resolved
    first and the real file replaced: renaming over the link would turn it into a regular file and leave the real
    file, which other gateways and the next deploy read, at the old text."""
    real = os.path.realpath(path)
    st = os.stat(real)
    fd, tmp = tempfile.mkstemp(prefix=".dragoman-rollback-", dir=os.path.dirname(real))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        _keep_owner(tmp, st)
        os.chmod(tmp, st.st_mode & 0o7777)  # after the chown, which may clear set-id bits
        os.replace(tmp, real)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _keep_owner(tmp: str, st: os.stat_result) -> None:
    """Give the new file the old one's owner and group; without the right to (not root), at least its group
    when this user is in it; otherwise it stays the gateway user's, as mkstemp made it."""
    for uid in (st.st_uid, -1):
        try:
            os.chown(tmp, uid, st.st_gid)
            return
        except PermissionError:
            continue


def _previous(entry: VersionEntry, before: list[VersionEntry]) -> tuple[str | None, bool]:
    """The version applied before `entry`'s, and whether `entry`'s version is a rollback (protected)."""
    protected = entry.applied_by.startswith("rollback")
    for old in before:  # newest first; the leading run of the same version is this one applied elsewhere
        if old.version != entry.version:
            return old.version, protected
        protected = protected or old.applied_by.startswith("rollback")
    return None, protected


def _previous_entry(history: list[VersionEntry], live: str) -> tuple[VersionEntry | None, list[str]]:
    """The default rollback target: the newest entry of another version than the live one that no later entry
    rolled back from (going back to the version an automatic rollback just left is not a rollback: it would
    re-apply a regression, then toggle between the two). With the versions skipped for that reason."""
    rolled_back_from: set[str] = set()
    skipped: list[str] = []
    for entry in history:  # newest first
        if entry.version in rolled_back_from:
            if entry.version not in skipped:
                skipped.append(entry.version)
        elif entry.version != live:
            return entry, skipped
        if entry.rolled_back_from is not None:
            rolled_back_from.add(entry.rolled_back_from)
    return None, skipped
