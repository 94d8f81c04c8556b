"""Where the captured Claude Code request bodies are: tests/fixtures/claude_code in this checkout (its README says
what each holds), or DRAGOMAN_FIXTURES/claude_code to try the tests on another set."""

from __future__ import annotations

import os
from pathlib import Path


def _claude_code_fixtures() -> Path:
    override = os.environ.get("DRAGOMAN_FIXTURES")
    if override:
        return Path(override) / "claude_code"
    return Path(__file__).resolve().parent / "fixtures" / "claude_code"


CLAUDE_CODE_FIXTURES = _claude_code_fixtures()
