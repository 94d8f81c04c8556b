"""Where the captured Claude Code request bodies are: tests/fixtures/claude_code in this checkout (its README says
what each holds), or DRAGOMAN_FIXTURES/claude_code to try the tests on another set; the headers Claude Code
sends with them; and their prose as a text of any length."""

from __future__ import annotations

import json
import os
from pathlib import Path


def _claude_code_fixtures() -> Path:
    override = os.environ.get("DRAGOMAN_FIXTURES")
    if override:
        return Path(override) / "claude_code"
    return Path(__file__).resolve().parent / "fixtures" / "claude_code"


CLAUDE_CODE_FIXTURES = _claude_code_fixtures()
CLAUDE_CODE_FIXTURE_FILES = sorted(p.name for p in CLAUDE_CODE_FIXTURES.glob("claude_code_*.json"))


def claude_code_text(chars: int) -> str:
    """`chars` characters of Claude Code's own prose (system prompts and tool descriptions), repeated as needed."""
    texts: list[str] = []
    for name in CLAUDE_CODE_FIXTURE_FILES:
        request = json.loads((CLAUDE_CODE_FIXTURES / name).read_text())
        system = request.get("system")
        texts += [system] if isinstance(system, str) else [b.get("text", "") for b in system or ()]
        texts += [tool.get("description", "") for tool in request.get("tools", ())]
    corpus = "\n".join(texts)
    return (corpus * (chars // len(corpus) + 1))[:chars]


def claude_code_headers(body: dict) -> dict[str, str]:
    """The headers Claude Code 2.1.328 sends with `body` (its session id taken from the body's metadata)."""
    session = json.loads(body["metadata"]["user_id"])["session_id"]
    return {"x-api-key": "sk-ant-anything", "anthropic-version": "2023-06-01",
            "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14,"
                              "mid-conversation-system-2026-04-07,advanced-tool-use-2025-11-20",
            "x-claude-code-session-id": session, "user-agent": "claude-cli/2.1.328 (external, sdk-cli)"}
