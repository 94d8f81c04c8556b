"""The endpoints around /v1/messages that the SDK and Claude Code call: token counting grows with what is sent,
the model list names the routes, and the root answers health checks."""

from __future__ import annotations

import pytest

from tests.gateway import ROUTE_NAME
from tests.routing_helpers import USER_HI
from tests.sdk_helpers import SIX_TOOLS

pytestmark = pytest.mark.timeout(60)


def test_count_tokens_is_positive_and_grows_with_the_text(client):
    short = client.messages.count_tokens(model=ROUTE_NAME, messages=USER_HI).input_tokens
    longer = client.messages.count_tokens(
        model=ROUTE_NAME, messages=[{"role": "user", "content": "hi " + "tell me about the sea. " * 50}]).input_tokens
    with_tools = client.messages.count_tokens(model=ROUTE_NAME, messages=USER_HI, tools=SIX_TOOLS,
                                              system="You are a careful assistant.").input_tokens
    assert 0 < short < longer
    assert with_tools > short


def test_models_lists_the_routes(client):
    ids = [model.id for model in client.models.list()]
    assert ROUTE_NAME in ids


@pytest.mark.parametrize("method", ["HEAD", "GET"])
def test_root_answers_200(method, gateway):
    assert gateway.request(method, "/").status == 200
