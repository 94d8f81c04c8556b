"""Which `loop:` keys a reload applies: the switch, `shift` and `judge` are applied at once (server.py
`_configure_loop`, correctness_loop.py `_start_judge`); `verdicts` (the Assessor's checks and next-turn memory)
and `rollback` (the config versions' scores) are built once per process, so a reload that changes them says they
wait for a restart (config/restart.py `needing_restart`) instead of seeming to apply them."""

from __future__ import annotations

import pytest

from dragoman.config.load import parse_config
from dragoman.config.model import Config
from dragoman.config.restart import needing_restart

ROUTES = 'routes:\n  - {name: a, upstream: {provider: openai_compatible, model: m, endpoint: "http://127.0.0.1:1/v1"}}\n'


def load(loop: str = "") -> Config:
    return parse_config(ROUTES + loop, "config.yaml", {})


@pytest.mark.parametrize("loop, waits", [
    ("loop:\n  verdicts: {memory: 10}\n", ["loop.verdicts"]),
    ("loop:\n  rollback: {enabled: false}\n", ["loop.rollback"]),
    ("loop:\n  verdicts: {join_wait: 5}\n  rollback: {z: 4}\n", ["loop.verdicts", "loop.rollback"]),
])
def test_a_reload_changing_loop_settings_built_at_start_says_they_wait_for_a_restart(loop: str,
                                                                                      waits: list[str]) -> None:
    assert needing_restart(load(), load(loop)) == waits


@pytest.mark.parametrize("loop", [
    "loop: {enabled: false}\n",
    "loop:\n  shift: {window: 50, min_calls: 10}\n",
    "loop:\n  judge: {route: a}\n",
])
def test_a_reload_changing_loop_settings_it_applies_names_none(loop: str) -> None:
    assert needing_restart(load(), load(loop)) == []
