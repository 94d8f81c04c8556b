"""`loop: verdicts:` keys: each acts (memory bound, schema cache bound, retention of the store's tool_calls, how
long a join waits) or is refused at load with file and line; the README's block loads as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dragoman.config.load import ConfigError, parse_config
from dragoman.config.loop import VerdictSettings
from dragoman.loop.assess import Assessor
from dragoman.observe.stores import ToolCallRow
from tests.upstreams.anthropic_messages import MessageReply
from tests.verdict_helpers import assessed, json_evidence

ROUTE = "routes: [{name: a, upstream: {provider: openai, model: x, endpoint: 'http://127.0.0.1:1/v1'}}]\n"
README = Path(__file__).resolve().parent.parent / "README.md"


def _load(loop_block: str):
    return parse_config(ROUTE + loop_block, "dragoman.yaml", {})


@pytest.mark.parametrize("block, message", [
    ("loop:\n  verdicts:\n    memory: 0\n", "dragoman.yaml:4: loop.verdicts.memory"),
    ("loop:\n  verdicts:\n    schema_cache: -1\n", "dragoman.yaml:4: loop.verdicts.schema_cache"),
    ("loop:\n  verdicts:\n    retention_hours: 0\n", "dragoman.yaml:4: loop.verdicts.retention_hours"),
    ("loop:\n  verdicts:\n    join_wait: nope\n", "dragoman.yaml:4: loop.verdicts.join_wait"),
    ("loop:\n  verdicts:\n    memroy: 10\n", 'dragoman.yaml:4: unknown field "memroy"'),
    ("loop:\n  enabled: maybe\n", "dragoman.yaml:3: loop.enabled"),
])
def test_a_bad_key_is_refused_with_file_and_line(block: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        _load(block)
    assert str(err.value).startswith(message), str(err.value)


def test_the_readme_block_loads_as_written() -> None:
    [block] = [b for b in re.findall(r"```yaml\n(.*?)```", README.read_text(), flags=re.DOTALL) if "verdicts:" in b]
    config = _load(block)
    assert config.loop.enabled and config.loop.verdicts == VerdictSettings()


def test_memory_bounds_the_answers_remembered() -> None:
    assessor = Assessor(VerdictSettings(memory=2))
    from dragoman.loop.next_turn import UNKNOWN
    from dragoman.observe.record import AuditRecord
    for i in range(3):
        reply = MessageReply(text=None, tool_uses=[(f"toolu_{i}", "Read", {"file_path": "/a"})])
        assessed(assessor, AuditRecord(time=1.0, request_id=f"req_{i}"), json_evidence(reply))
    assert len(assessor.memory) == 2
    assert assessor.memory.take(["toolu_0"]) is UNKNOWN  # the oldest was dropped


def test_schema_cache_bounds_the_compiled_validators() -> None:
    assessor = Assessor(VerdictSettings(schema_cache=1))
    for i in range(3):
        assessor.schemas.validator(b'{"type": "object", "title": "%d"}' % i)
    assert len(assessor.schemas) == 1


def test_retention_hours_prunes_the_stores_tool_calls() -> None:
    now = [1_800_000_000.0]
    assessor = Assessor(VerdictSettings(retention_hours=2), clock=lambda: now[0])
    assessor.attach(store=_NoStore())
    now[0] += 3601  # the prune runs hourly
    assert assessor.pending().prune_before == now[0] - 2 * 3600


class _NoStore:
    def find_tool_calls(self, ids: list[str]) -> list[ToolCallRow]:
        return []
