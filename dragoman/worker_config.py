"""The config a worker process starts from: the config file, or the last good config when the file is broken.

With `--workers N` every worker loads the file itself. A hot reload refuses a broken file and keeps serving, but
a worker started later (the replacement for one that died) would fail to load it and die too, over and over.
So the supervisor keeps the file's last valid text in a private snapshot (`LastGoodConfig`), refreshed when
the file changes and on SIGHUP, and a worker that cannot load the file starts from that snapshot instead: the
same config its siblings still serve. It validates the file again on the next change, like they do."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Mapping

from dragoman.errors import ConfigError
from dragoman.config.reload import file_stamp, ignore_sighup
from dragoman.config.load import load_config, parse_config, zero_config
from dragoman.config.model import Config

log = logging.getLogger("dragoman")

CONFIG_ENV = "DRAGOMAN_CONFIG"  # the config file's absolute path, for worker processes
SNAPSHOT_ENV = "DRAGOMAN_CONFIG_SNAPSHOT"  # the supervisor's last good copy of it
STARTUP_FAILURE = 3  # uvicorn's code for a worker that cannot start: the first start stops, a replacement waits


class LastGoodConfig:
    """The supervisor's copy of the config file as last validated, in a file only this user can read."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._dir = tempfile.mkdtemp(prefix="dragoman-config-")  # 0700: the file can hold inline keys
        self.snapshot = os.path.join(self._dir, "last-good.yaml")
        self._stamp: tuple[int, int, int] | None = None
        if not self.refresh(force=True):
            self.close()
            raise ConfigError(f"{path}: changed to an invalid config while the gateway started")

    def refresh(self, force: bool = False) -> bool:
        """Validate the file when it changed (or `force`); keep its text when valid. False: it is invalid."""
        stamp = file_stamp(self.path)
        if stamp is None or (stamp == self._stamp and not force):
            return True  # unchanged, or mid-replace: the snapshot stands
        self._stamp = stamp
        try:
            with open(self.path, encoding="utf-8") as f:
                text = f.read()
            parse_config(text, self.path, os.environ)
        except (OSError, UnicodeDecodeError, ConfigError):
            return False  # the workers log why as they refuse it; the last good text stays
        tmp = self.snapshot + ".new"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, self.snapshot)
        return True

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)


def worker_config(env: Mapping[str, str]) -> Config:
    """The config a worker starts from; exits with uvicorn's startup-failure code when there is none."""
    # Until the lifespan's ConfigWatcher handles it, SIGHUP is ignored, never its default action (terminate). The
    # supervisor started this process with SIGHUP blocked (serving._Supervisor._start_worker) to cover the time
    # before this line: one that arrived meanwhile is delivered now, to the handler.
    ignore_sighup("starting")
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})
    path = env.get(CONFIG_ENV)
    try:
        if not path:
            return zero_config(env)
        try:
            return load_config(path, env)
        except ConfigError as err:
            snapshot = env.get(SNAPSHOT_ENV)
            if not snapshot:
                raise
            with open(snapshot, encoding="utf-8") as f:
                config = parse_config(f.read(), path, env)  # errors and secret paths still name the real file
            log.error("config file not loaded: %s; this worker starts from the last good config", err)
            return config
    except (OSError, ConfigError) as err:
        log.error("worker cannot start: %s", err)
        sys.exit(STARTUP_FAILURE)
