"""A request id starts with the time it was made, so the audit store's request_id index grows at its end
(exchange/lifecycle.py `new_request_id`), and stays unique within a millisecond."""

from __future__ import annotations

import re

from dragoman.exchange.lifecycle import new_request_id


def test_ids_made_later_sort_later_whatever_their_random_part() -> None:
    ms = 1_796_000_000_000  # 2026-11
    earlier = [new_request_id(lambda: ms * 1_000_000 + 999_999) for _ in range(50)]
    later = [new_request_id(lambda: (ms + 1) * 1_000_000) for _ in range(50)]
    assert max(earlier) < min(later)
    assert all(re.fullmatch(r"req_[0-9a-f]{28}", i) for i in earlier + later)


def test_ids_made_in_the_same_millisecond_differ() -> None:
    ids = {new_request_id(lambda: 1_796_000_000_000_000_000) for _ in range(10_000)}
    assert len(ids) == 10_000
