"""Shared fixtures: a scripted OpenAI Chat upstream and gateway processes pointed at it (with an SDK client), a
primary and a backup upstream, a gateway routed to the scripted OpenAI Responses upstream, and the audit
record tests' gateway on each audit store.

Starting a gateway costs about half a second, so gateways are module-scoped and cached by config; the
upstream is shared across a module too, and `chat_upstream` resets it (requests and script) for each test.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import anthropic
import pytest
from hypothesis import settings

# In CI every property test runs the same examples each time (derandomized, no example database), so a run
# is red only when the code changed; locally hypothesis explores freely. `--hypothesis-profile=explore` in CI
# turns exploration back on.
settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("explore")
if os.environ.get("CI") == "true":
    settings.load_profile("ci")

# `tests.upstreams` and `tests.gateway` are imported by package path whichever import mode pytest uses.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.audit_gateway import AuditEnv, run_audit_gateway  # noqa: E402
from tests.gateway import UPSTREAM_ENV, Gateway, gateway_config, run_gateway  # noqa: E402
from tests.responses_helpers import signing_env  # noqa: E402
from tests.routing_helpers import BACKUP_TEXT, sdk  # noqa: E402
from tests.upstreams import ChatReply, ScriptedChatUpstream  # noqa: E402
from tests.upstreams.openai_responses import ScriptedResponsesUpstream  # noqa: E402

GatewayFactory = Callable[..., Gateway]
UpstreamT = TypeVar("UpstreamT", bound=ScriptedChatUpstream)


@pytest.fixture(scope="session", autouse=True)
def _data_home_outside_the_real_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A gateway's default audit store lives in $XDG_DATA_HOME/dragoman/: point that at a temporary directory for
    the whole run, so no test, and no gateway subprocess (they inherit the environment), writes into the home."""
    patch = pytest.MonkeyPatch()
    patch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg-data")))
    yield
    patch.undo()


def _reset_around_the_test(upstream: UpstreamT) -> Iterator[UpstreamT]:
    """The module's upstream with no requests recorded and no script installed, before the test and after."""
    upstream.reset()
    yield upstream
    upstream.reset()


@pytest.fixture(scope="module")
def _module_chat_upstream() -> Iterator[ScriptedChatUpstream]:
    with ScriptedChatUpstream() as upstream:
        yield upstream


@pytest.fixture
def chat_upstream(_module_chat_upstream: ScriptedChatUpstream) -> Iterator[ScriptedChatUpstream]:
    """A scripted OpenAI Chat upstream with no requests recorded and no script installed."""
    yield from _reset_around_the_test(_module_chat_upstream)


@pytest.fixture(scope="module")
def gateway_for() -> Iterator[GatewayFactory]:
    """`gateway_for(upstream_or_endpoint, **overrides)` -> a running gateway with one route, gpt-5-via-gateway.

    Overrides are the keyword arguments of `tests.gateway.gateway_config` (e.g. `max_body_bytes=4096`,
    `auth_keys=[...]`, `default_route=None`, `timeout={...}`) plus `env` for the process environment.
    Gateways with the same config are reused for the whole module.
    """
    running: dict[str, Gateway] = {}
    with contextlib.ExitStack() as stack:

        def start(upstream: ScriptedChatUpstream | str, **overrides: Any) -> Gateway:
            endpoint = upstream if isinstance(upstream, str) else upstream.chat_url
            env = {**UPSTREAM_ENV, **overrides.pop("env", {})}
            config = gateway_config(endpoint, **overrides)
            key = config + repr(sorted(env.items()))
            if key not in running or running[key].proc.poll() is not None:
                running[key] = stack.enter_context(run_gateway(config, env=env))
            return running[key]

        yield start


@pytest.fixture
def gateway(gateway_for: GatewayFactory, chat_upstream: ScriptedChatUpstream) -> Gateway:
    """The default gateway of this module, routed to `chat_upstream`."""
    return gateway_for(chat_upstream)


@pytest.fixture
def client(gateway: Gateway) -> Iterator[anthropic.Anthropic]:
    """The anthropic SDK pointed at this module's default gateway, without retries."""
    with sdk(gateway, timeout=30) as sdk_client:
        yield sdk_client


# ---- a primary and a backup upstream (fallback and circuit-breaker tests) ---------------------------------


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[ScriptedChatUpstream, ScriptedChatUpstream]]:
    with ScriptedChatUpstream() as primary, ScriptedChatUpstream() as backup:
        yield primary, backup


@pytest.fixture
def primary(upstreams) -> Iterator[ScriptedChatUpstream]:  # noqa: ANN001 - a fixture
    upstreams[0].reset()
    yield upstreams[0]
    upstreams[0].reset()


@pytest.fixture
def backup(upstreams) -> Iterator[ScriptedChatUpstream]:  # noqa: ANN001 - a fixture
    upstreams[1].reset(ChatReply(text=BACKUP_TEXT, model="gpt-5-mini"))
    yield upstreams[1]
    upstreams[1].reset()


# ---- a gateway routed to the scripted OpenAI Responses upstream ------------------------------------------


@pytest.fixture(scope="module")
def _module_responses_upstream() -> Iterator[ScriptedResponsesUpstream]:
    with ScriptedResponsesUpstream() as upstream:
        yield upstream


@pytest.fixture
def responses_upstream(_module_responses_upstream: ScriptedResponsesUpstream) -> Iterator[ScriptedResponsesUpstream]:
    """A scripted OpenAI Responses upstream with no requests recorded and no script installed."""
    yield from _reset_around_the_test(_module_responses_upstream)


@pytest.fixture(scope="module")
def signing_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The signing key file of this module's gateways (never the developer's ~/.config/dragoman/signing.key)."""
    return tmp_path_factory.mktemp("signing") / "signing.key"


@pytest.fixture(scope="module")
def responses_gateway(_module_responses_upstream: ScriptedResponsesUpstream,
                      signing_key_file: Path) -> Iterator[Gateway]:
    """This module's gateway with one route, gpt-5-via-gateway, on the Responses upstream."""
    config = gateway_config(_module_responses_upstream.responses_url)
    with run_gateway(config, env=signing_env(signing_key_file)) as running:
        yield running


@pytest.fixture
def responses_client(responses_gateway: Gateway,
                     responses_upstream: ScriptedResponsesUpstream) -> Iterator[anthropic.Anthropic]:
    """The anthropic SDK pointed at `responses_gateway`, without retries."""
    with sdk(responses_gateway, timeout=20) as sdk_client:
        yield sdk_client


# ---- the audit record tests' gateway, on SQLite and on PostgreSQL -----------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def audit_env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditEnv]:
    """tests/audit_gateway.py's gateway, once per module with each store: every test runs on both."""
    with run_audit_gateway(request.param, tmp_path_factory.mktemp("audit")) as env:
        yield env
