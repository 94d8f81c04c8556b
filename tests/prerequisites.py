"""System packages scripts/test cannot install without root: Node.js/npm (to install the Claude Code CLI) and a
C/C++ compiler (to build llama.cpp). When one is missing, scripts/test says what to install and sets
DRAGOMAN_MISSING_<WHAT> to that; the tests that need it then skip with that reason, shown in the summary, instead
of failing on a missing executable. Never in CI (CI=true): there scripts/test fails first, and nothing skips here.
"""

from __future__ import annotations

import os

import pytest


def skip_if_missing(what: str) -> None:
    """Skip the test with scripts/test's reason when it found `what` (CLI, LLAMA) uninstallable here."""
    reason = os.environ.get(f"DRAGOMAN_MISSING_{what}")
    if reason and os.environ.get("CI", "").lower() != "true":
        pytest.skip(reason)
