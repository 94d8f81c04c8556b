"""Over real sockets: the seed's cost-aware policy sends small, medium and large requests to three different
upstreams, and the decision shows in the dry-run command's output too."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml

from tests.gateway import run_gateway
from tests.routing_helpers import KEYS_ENV, config_yaml, route, sdk
from tests.upstreams import ChatReply, ScriptedChatUpstream

RULE = """\
if input_tokens < 8000 and tool_call_count <= 2:
  route small
elif input_tokens < 60000:
  route medium
else:
  route large
"""


def _config(small: ScriptedChatUpstream, medium: ScriptedChatUpstream, large: ScriptedChatUpstream) -> str:
    routes = [route("small", small.chat_url), route("medium", medium.chat_url), route("large", large.chat_url)]
    config = yaml.safe_load(config_yaml(routes, default_route="medium"))
    config["policies"] = [{"name": "cost_aware_routing", "applies_to": ["claude-*"], "rule": RULE}]
    return yaml.safe_dump(config, sort_keys=False)


def _ask(client, words: int) -> str:
    message = client.messages.create(
        model="claude-opus-5-5", max_tokens=50, messages=[{"role": "user", "content": "word " * words}]
    )
    return message.content[0].text


def test_policy_sends_small_medium_large_to_three_upstreams() -> None:
    with ScriptedChatUpstream(ChatReply(text="from small")) as small, \
            ScriptedChatUpstream(ChatReply(text="from medium")) as medium, \
            ScriptedChatUpstream(ChatReply(text="from large")) as large, \
            run_gateway(_config(small, medium, large), env=KEYS_ENV) as gateway:
        client = sdk(gateway)
        assert _ask(client, 10) == "from small"  # ~ a few tokens
        assert _ask(client, 20_000) == "from medium"  # ~ 20k tokens
        assert _ask(client, 80_000) == "from large"  # ~ 80k tokens
        # A route asked for by name goes straight there: the policy applies to claude-* only.
        named = client.messages.create(model="large", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
        assert named.content[0].text == "from large"
        assert (len(small.bodies), len(medium.bodies), len(large.bodies)) == (1, 1, 2)


def test_dry_run_names_policy_branch_and_candidates(tmp_path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(_config_text_for_dry_run())
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"model": "claude-opus-5-5", "max_tokens": 10,
                                   "messages": [{"role": "user", "content": "word " * 20_000}]}))
    out = subprocess.run(
        [sys.executable, "-m", "dragoman", "route", str(config), str(request)],
        capture_output=True, text=True, timeout=30, env={**KEYS_ENV, "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    assert "route: medium (policy cost_aware_routing, branch 'elif input_tokens < 60000')" in out.stdout
    assert "candidates, in order: medium -> large" in out.stdout


def _config_text_for_dry_run() -> str:
    routes = [route("small", "http://127.0.0.1:9/v1"), route("medium", "http://127.0.0.1:9/v1", fallbacks=["large"]),
              route("large", "http://127.0.0.1:9/v1")]
    config = yaml.safe_load(config_yaml(routes))
    config["policies"] = [{"name": "cost_aware_routing", "applies_to": ["claude-*"], "rule": RULE}]
    return yaml.safe_dump(config, sort_keys=False)
