"""Requests for paths the gateway does not serve, logged so a misconfigured client is visible, and bounded so
a scanner cannot flood the log.

Each distinct method and path is logged the first time it is seen: a client retrying one wrong path (a base URL
with an extra segment) shows up once, not once per request. New paths are logged at most `burst` per `window`
seconds; the ones held back beyond that are counted, and the count rides on the next line logged. The set of
paths seen is bounded too (it starts over when full), so neither memory nor the log grows with what a scanner
sends."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from dragoman.redaction import redact_cut

_MAX_PATH = 200  # characters of a path kept in the log line


class NotFoundLog:
    def __init__(
        self,
        log: logging.Logger,
        *,
        burst: int = 20,
        window: float = 60.0,
        max_paths: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._burst, self._window, self._max_paths = burst, window, max_paths
        self._clock = clock
        self._seen: set[str] = set()
        self._window_start = clock()
        self._lines = 0
        self._held = 0

    def __call__(self, method: str, path: str) -> None:
        """Note a 404 for an unknown path: log it unless it was seen before or this window's lines are spent."""
        # The path is the client's text: escaped, so it stays one line, and cut to a bounded length.
        # redacted (before the cut): a client that put its key into the base URL sends it in every path
        key = f"{method} {redact_cut(path, _MAX_PATH)}".encode("unicode_escape").decode("ascii")
        if key in self._seen:
            return
        if len(self._seen) >= self._max_paths:
            self._seen.clear()
        self._seen.add(key)
        now = self._clock()
        if now - self._window_start >= self._window:
            self._window_start, self._lines = now, 0
        if self._lines >= self._burst:
            self._held += 1
            return
        self._lines += 1
        held, self._held = self._held, 0
        more = f" ({held} more unknown paths were not logged)" if held else ""
        self._log.warning("404 %s: no such endpoint%s", key, more)
