"""Hypothesis settings and strategies shared by the OpenAI Chat property tests (tests/test_stream_properties.py,
tests/test_request_tool_pairing_properties.py): text, tool names as Claude Code has them, tool arguments."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LONG_NAME = "mcp__claude_ai_Google_Drive__google_drive_search_files_by_name_and_owner_v2"  # over OpenAI's 64
CLIENT_NAMES = ["Read", "Bash", "Edit", "TaskCreate", "mcp__github__create_issue", LONG_NAME]

texts = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30)
_json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000), texts)
_json_value = st.recursive(
    _json_scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.sampled_from("abcq"), inner, max_size=3)),
    max_leaves=6,
)
tool_arguments = st.dictionaries(st.sampled_from(["command", "file_path", "q", "a", "content"]), _json_value, max_size=4)
