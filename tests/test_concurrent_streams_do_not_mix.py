"""Sixteen streams through one gateway at once, eight at a time: each client gets its own answer, never a chunk
of another's."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.gateway import ROUTE_NAME
from tests.upstreams import ChatReply

pytestmark = pytest.mark.timeout(60)


def test_concurrent_streams_do_not_mix(client, chat_upstream):
    chat_upstream.script(lambda body: ChatReply(text=f"echo {body['messages'][-1]['content']}", chunk_delay=0.01))

    def one(i: int) -> str:
        with client.messages.stream(model=ROUTE_NAME, max_tokens=100,
                                    messages=[{"role": "user", "content": f"n{i}"}]) as s:
            return s.get_final_message().content[0].text

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(one, range(16))) == [f"echo n{i}" for i in range(16)]
