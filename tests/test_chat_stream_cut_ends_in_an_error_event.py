"""An OpenAI Chat stream that stops after its first bytes (the connection dropped mid-text or mid-tool-call, or the
upstream silent past the idle timeout) ends the client's stream with an Anthropic `error` event: never a clean
end_turn that would pass a cut answer off as whole."""

from __future__ import annotations

import anthropic
import pytest

from tests.anthropic_events import check_sse_grammar
from tests.gateway import ROUTE_NAME
from tests.routing_helpers import USER_HI
from tests.sdk_helpers import stream_raw, tool
from tests.upstreams import RawStream
from tests.upstreams.chat_chunks import ROLE_CHUNK, chat_chunk, tool_call_delta

pytestmark = pytest.mark.timeout(60)


def test_mid_stream_disconnect_is_an_error_never_a_clean_end(client, gateway, chat_upstream):
    cut = RawStream([chat_chunk({"role": "assistant", "content": ""}), chat_chunk({"content": "Hel"}),
                     chat_chunk({"content": "lo"})], disconnect_after=3)
    chat_upstream.script(cut)
    with pytest.raises(anthropic.APIStatusError):
        with client.messages.stream(model=ROUTE_NAME, max_tokens=100, messages=USER_HI) as stream:
            stream.get_final_message()
    status, events = stream_raw(gateway, model=ROUTE_NAME, max_tokens=100, messages=USER_HI)
    assert status == 200
    assert check_sse_grammar(events) == "error", [e for e, _ in events]
    assert events[-1][1]["error"]["type"] in {"api_error", "overloaded_error"}
    assert not any(e == "message_delta" and d["delta"].get("stop_reason") == "end_turn" for e, d in events)


def test_mid_tool_call_disconnect_is_an_error(gateway, chat_upstream):
    chat_upstream.script(RawStream([ROLE_CHUNK, chat_chunk({"tool_calls": [
        tool_call_delta(0, id="call_1", name="Bash", args='{"comm')]})], disconnect_after=2))
    status, events = stream_raw(gateway, model=ROUTE_NAME, max_tokens=100, messages=USER_HI,
                                tools=[tool("Bash", {"command": {}})])
    assert status == 200
    assert check_sse_grammar(events) == "error"


def test_upstream_idle_mid_stream_ends_with_an_error_event(gateway_for, chat_upstream):
    slow = gateway_for(chat_upstream, timeout={"connect": 2, "first_byte": 1, "idle": 1})
    chat_upstream.script(RawStream([ROLE_CHUNK, chat_chunk({"content": "Hel"}), chat_chunk({"content": "lo"})],
                                   delay=5))
    status, events = stream_raw(slow, model=ROUTE_NAME, max_tokens=100, messages=USER_HI)
    assert status == 200
    assert check_sse_grammar(events) == "error"
