"""The README's headline start, as a process: `OPENAI_API_KEY=sk-... dragoman serve --port 8080` with no
config sends every model name, verbatim, to OpenAI Chat at $OPENAI_BASE_URL with $OPENAI_API_KEY; a client
of the Messages API (the `anthropic` SDK) gets an Anthropic answer."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import anthropic
import pytest

from tests.gateway import run_gateway
from tests.upstreams import ChatReply, ScriptedChatUpstream

pytestmark = pytest.mark.timeout(30)

KEY = "sk-zero-config-test-key"


def _dragoman() -> list[str]:
    """The installed console script, as the README runs it; else the module."""
    script = shutil.which("dragoman")
    return [script] if script else [sys.executable, "-m", "dragoman"]


def test_serve_without_a_config_answers_through_openai_base_url(chat_upstream: ScriptedChatUpstream,
                                                                 tmp_path: Path) -> None:
    chat_upstream.script(ChatReply(text="hello from the zero-config start", usage=(12, 6, 0), model="gpt-4.1-2025"))
    env = {
        "OPENAI_API_KEY": KEY,
        "OPENAI_BASE_URL": chat_upstream.base_url,
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "DRAGOMAN_AUDIT_STORE": "",
    }
    with run_gateway(None, env=env, command=_dragoman()) as gw:
        with anthropic.Anthropic(base_url=gw.base_url, api_key="sk-any-client-key", max_retries=0, timeout=15) as client:
            message = client.messages.create(model="gpt-4.1", max_tokens=64,
                                             messages=[{"role": "user", "content": "say hello"}])
            with client.messages.stream(model="gpt-4.1", max_tokens=64,
                                        messages=[{"role": "user", "content": "say hello"}]) as stream:
                streamed = stream.get_final_message()
        assert gw.proc.poll() is None, gw.stderr_text()

    for answer in (message, streamed):
        assert answer.type == "message" and answer.role == "assistant"
        assert [block.text for block in answer.content if block.type == "text"] == ["hello from the zero-config start"]
        assert answer.stop_reason == "end_turn"
        assert answer.usage.output_tokens == 6
    assert len(chat_upstream.bodies) == 2
    for request in chat_upstream.requests:
        assert request.path == "/v1/chat/completions"
        assert request.headers["authorization"] == f"Bearer {KEY}"
        assert request.body["model"] == "gpt-4.1"  # verbatim: no config, no mapping
        assert request.body["messages"][-1] == {"role": "user", "content": "say hello"}
