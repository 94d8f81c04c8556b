"""A first `dragoman serve` without a config goes wrong in two common ways, and each says what to do. Without
OPENAI_API_KEY, OpenAI's 401 reaches the client as the 502 of a refused gateway credential naming OPENAI_API_KEY
(it was a 500 telling the user to "check the route's api_key_ref", which zero-config does not have), and the start warns the same way (naming
ANTHROPIC_API_KEY too when that is what the shell has). On a port another server holds, the start ends with
"port N is in use" and how to pick another, not uvicorn's bare "address already in use" after the start block."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.gateway import run_gateway
from tests.upstreams import ErrorReply, ScriptedChatUpstream
from tests.upstreams.openai_chat import openai_error

REQUEST = {"model": "claude-sonnet-4-5-20250929", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
NO_KEY = openai_error("You didn't provide an API key. You need to provide your API key in an Authorization header.")


def test_zero_config_without_openai_api_key_answers_an_error_naming_it(chat_upstream: ScriptedChatUpstream) -> None:
    chat_upstream.script(ErrorReply(401, NO_KEY))
    env = {"OPENAI_BASE_URL": chat_upstream.base_url, "OPENAI_API_KEY": "", "ANTHROPIC_API_KEY": "sk-ant-first-run",
           "DRAGOMAN_AUDIT_STORE": ""}
    with run_gateway(None, env=env) as gw:
        answer = gw.request("POST", "/v1/messages", REQUEST, {"x-api-key": "anything"})
        log = gw.stderr_text()
    assert answer.status == 502, answer.body  # the gateway's upstream refused it: not the client's key
    error = answer.json()
    assert error["type"] == "error" and error["error"]["type"] == "api_error"
    message = error["error"]["message"]
    assert "set OPENAI_API_KEY" in message and "api_key_ref" not in message
    assert "authorization" not in {k.lower() for k in chat_upstream.requests[0].headers}
    warning = next(line for line in log.splitlines() if "WARNING" in line and "OPENAI_API_KEY" in line)
    assert "set OPENAI_API_KEY" in warning and "ANTHROPIC_API_KEY is not used without a config" in warning
    assert "sk-ant-first-run" not in log


def test_a_taken_port_ends_the_start_saying_how_to_pick_another(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "dragoman", "serve", "--host", "127.0.0.1", "--port", str(port)],
                              capture_output=True, text=True, timeout=60,
                              env={**_without_dragoman(os.environ), "XDG_DATA_HOME": str(tmp_path),
                                   "OPENAI_API_KEY": "sk-x"}, stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stderr
    assert f"error: port {port} on 127.0.0.1 is in use: pick another with --port or DRAGOMAN_PORT" in done.stderr
    assert "starting with" not in done.stderr and "Errno" not in done.stderr


def _without_dragoman(env: os._Environ[str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if not k.startswith("DRAGOMAN_")}
