"""Where the captured Claude Code request bodies are: ../shared/fixtures/claude_code beside the checkout (CI lays
shared/ there), or DRAGOMAN_FIXTURES, or the development machine's /work/shared."""

from __future__ import annotations

import os
from pathlib import Path


def _claude_code_fixtures() -> Path:
    candidates = []
    if os.environ.get("DRAGOMAN_FIXTURES"):
        candidates.append(Path(os.environ["DRAGOMAN_FIXTURES"]) / "claude_code")
    candidates.append(Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "claude_code")
    candidates.append(Path("/work/shared/fixtures/claude_code"))
    for path in candidates:
        if any(path.glob("claude_code_*.json")):
            return path
    return candidates[0]  # tests that need them fail loudly, naming this path


CLAUDE_CODE_FIXTURES = _claude_code_fixtures()
