"""Config hot reload: on SIGHUP and when the file changes, validate the whole new file first, then swap.

An invalid file keeps the old config serving and logs why, and so does a config that cannot be applied (a
Responses route needs the signing key, whose file may have become unreadable). The file is polled (stat once
a second): no dependency, works on every filesystem, and costs nothing on the request path.

SIGHUP's default action is to terminate, and a reload can arrive at any moment (systemctl reload, a deploy hook,
a closed terminal signalling the whole process group): from the start of `dragoman serve` until exit it is
either a reload (`ConfigWatcher`) or logged and ignored (`ignore_sighup`), never left at the default."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Callable

from dragoman.config.load import load_config
from dragoman.config.model import Config
from dragoman.errors import ConfigError
from dragoman.signing_key import SigningKeyError

log = logging.getLogger("dragoman.reload")

POLL_SECONDS = 1.0


class ConfigWatcher:
    """Calls `apply(config)` with each new valid config loaded from `path`."""

    def __init__(
        self,
        path: str,
        apply: Callable[[Config], None],
        poll: float = POLL_SECONDS,
        *,
        applied: Callable[[Config, str], None] | None = None,
    ) -> None:
        self.path = path
        self.apply = apply
        self.applied = applied  # told what was applied and why ("file change", "SIGHUP"): config versions
        self.poll = poll
        self._stamp = file_stamp(path)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGHUP, self.reload, "SIGHUP")
        except (NotImplementedError, RuntimeError, ValueError):  # no signals off the main thread / on Windows
            log.debug("SIGHUP reload unavailable here; the file watch still works")
        self._task = loop.create_task(self._watch())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        # Swapped, not removed: removing puts SIGHUP back to its default action, and a SIGHUP while the audit
        # queue is flushed (Gateway.stop) would kill the process with the queued records. The loop keeps a
        # handler until it closes; `serving.run` ignores SIGHUP from then on.
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, _log_ignored, "shutting down")
        except (NotImplementedError, RuntimeError, ValueError):
            pass

    def seen(self) -> None:
        """The file changed by this process's own hand (a rollback it applied already): no reload for it."""
        self._stamp = file_stamp(self.path)

    def reload(self, reason: str = "file change") -> bool:
        """Load, validate and apply the file now; False (old config kept) when it is invalid or cannot apply."""
        self._stamp = file_stamp(self.path)
        try:
            config = load_config(self.path)
            self.apply(config)  # builds the whole new runtime before swapping it in: a failure changes nothing
        except (ConfigError, SigningKeyError) as err:
            log.error("config reload failed; still serving the previous config: %s", err)
            return False
        log.warning("config reloaded from %s (%d routes)", self.path, len(config.routes))
        if self.applied is not None:
            self.applied(config, reason)
        return True

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.poll)
            stamp = file_stamp(self.path)
            if stamp != self._stamp and stamp is not None:
                try:
                    self.reload()
                except Exception:  # noqa: BLE001 - a bug in one reload must not end the watch for good
                    log.exception("config reload failed; still serving the previous config")


def ignore_sighup(reason: str) -> None:
    """From now on SIGHUP is logged as ignored (`reason`: "starting", "shutting down") instead of terminating.
    A Python handler, not SIG_IGN: a handler is reset at exec, so no program this one starts inherits it."""
    try:
        signal.signal(signal.SIGHUP, lambda signum, frame: _log_ignored(reason))
    except (AttributeError, ValueError):  # no SIGHUP (Windows), or not the main thread: nothing to guard here
        pass


def ignore_sighup_to_exit() -> None:
    """SIGHUP ignored, silently, for the exit that follows: SIG_IGN, which, unlike a Python handler, the
    interpreter's finalization does not put back to the default action (a SIGHUP then would turn a clean exit
    into death by signal, a failed stop to systemd)."""
    try:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    except (AttributeError, ValueError):
        pass


def _log_ignored(reason: str) -> None:
    log.warning("SIGHUP ignored: %s", reason)


def file_stamp(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None  # mid-replace (rename) or deleted: keep serving, look again next tick
    return (st.st_mtime_ns, st.st_size, st.st_ino)
