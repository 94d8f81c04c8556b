"""Azure OpenAI routes reach the deployment they name. Chat puts it in the URL (`/openai/deployments/{deployment}`);
Azure's v1 API (`/openai/v1/responses`, `/openai/v1/chat/completions`) and its dated Responses URL have no
deployment segment, and Azure reads the deployment from the body's `model` — a deployment named unlike its model
(`my-gpt5-prod`) was answered 404 DeploymentNotFound. The model still decides how the request is translated.
`dragoman check` refuses an Azure setting the route would not use."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import yaml

from tests.gateway import UPSTREAM_ENV, gateway_config, run_gateway
from tests.routing_helpers import sdk
from tests.sdk_helpers import ask
from tests.test_readme_config import ROOT
from tests.upstreams import ChatReply
from tests.upstreams.openai_chat import ScriptedChatUpstream
from tests.upstreams.openai_responses import ResponsesReply, ScriptedResponsesUpstream

pytestmark = pytest.mark.timeout(60)


def _sent(api: str, upstream_settings: dict[str, Any], endpoint_path: str = "") -> list[tuple[str, str, Any]]:
    """(path, query, body model) of each request an Azure route sends for one streamed and one JSON answer."""
    upstream = ScriptedResponsesUpstream() if api == "responses" else ScriptedChatUpstream()
    try:
        resource = upstream.base_url.rsplit("/v1", 1)[0]  # http://127.0.0.1:port, as https://RES.openai.azure.com
        config = yaml.safe_load(gateway_config(resource + endpoint_path, provider="azure_openai"))
        config["routes"][0]["upstream"].update({"api": api, **upstream_settings})
        upstream.script(ResponsesReply(text="ok") if api == "responses" else ChatReply(text="ok"))
        with run_gateway(yaml.safe_dump(config), env=UPSTREAM_ENV) as gateway, sdk(gateway) as client:
            for stream in (True, False):
                assert ask(client, stream).content[0].text == "ok"
        return [(r.path, r.query, (r.body or {}).get("model")) for r in upstream.requests]
    finally:
        upstream.stop()


def test_a_responses_route_sends_its_deployment_as_the_body_model():
    sent = _sent("responses", {"model": "gpt-5", "deployment": "my-gpt5-prod"})
    assert sent == [("/openai/v1/responses", "", "my-gpt5-prod")] * 2


def test_a_responses_route_on_the_v1_base_url_posts_to_its_responses_path():
    sent = _sent("responses", {"model": "gpt-5", "deployment": "my-gpt5-prod"}, "/openai/v1/")
    assert sent == [("/openai/v1/responses", "", "my-gpt5-prod")] * 2


def test_a_dated_api_version_selects_azures_dated_responses_url():
    sent = _sent("responses", {"model": "gpt-5", "deployment": "d", "api_version": "2025-04-01-preview"})
    assert sent == [("/openai/responses", "api-version=2025-04-01-preview", "d")] * 2


def test_a_chat_route_keeps_its_deployment_in_the_url():
    sent = _sent("chat", {"model": "gpt-5", "deployment": "my-gpt5-prod"})
    assert sent == [("/openai/deployments/my-gpt5-prod/chat/completions", "api-version=2024-10-21", "gpt-5")] * 2


CHECKED = """\
routes:
  - name: azure-v1
    upstream:
      provider: azure_openai
      api: responses
      endpoint: https://myres.openai.azure.com/openai/v1/
      model: gpt-5
      api_version: 2025-04-01-preview
"""


@pytest.mark.parametrize(("text", "line", "said"), [
    (CHECKED, 8, "api_version is not used with this endpoint"),
    (CHECKED.replace("azure_openai", "openai").replace("      api_version: 2025-04-01-preview\n",
                                                        "      deployment: whatever\n"),
     8, "deployment is an azure_openai setting; provider openai does not use it"),
])
def test_check_refuses_an_azure_setting_the_route_would_ignore(tmp_path, text, line, said):
    path = tmp_path / "dragoman.yaml"
    path.write_text(text)
    out = subprocess.run([sys.executable, "-m", "dragoman", "check", str(path)], capture_output=True, text=True,
                         timeout=30, cwd=ROOT, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert out.returncode == 2, out
    assert f"{path}:{line}: " in out.stderr and said in out.stderr, out.stderr
