"""A route's `translation:` block checked against the upstream it goes to: every key either acts on that
upstream or is refused at load, at its file and line (a key that is silently ignored is a lie in the config)."""

from __future__ import annotations

from typing import Any

import msgspec

from dragoman.config.yaml_source import Path, Source
from dragoman.translate.options import DROPPABLE, TranslationOptions

# The values the translators implement, per key.
_CHOICES: tuple[tuple[str, tuple[Any, ...]], ...] = (
    ("system_role", ("system", "developer")),
    ("tool_use", ("openai_tool_calls",)),
    ("streaming", ("anthropic_events",)),
    ("reasoning_effort", ("auto", "off", "minimal", "low", "medium", "high")),
    ("server_tools", ("reject", "drop")),
    ("max_tokens_field", (None, "max_tokens", "max_completion_tokens")),
)
_PLACEMENTS = {"chat": (None, "first_message"), "responses": (None, "first_message", "instructions")}
# On an anthropic route the body goes upstream as the client sent it, so only these keys act there.
_PASSTHROUGH_KEYS = frozenset(("passthrough", "drop_headers", "streaming"))


def route_translation(
    options: TranslationOptions, clamp: int | None, api: str, path: Path, src: Source
) -> TranslationOptions:
    """The options a route runs with, once every key is known to act on its upstream (chat | responses |
    messages); `clamp` is upstream.max_output_tokens, which the translators read from the options."""
    here = path + ("translation",)
    for key, allowed in _CHOICES:
        src.choice(here + (key,), getattr(options, key), allowed)
    for i, name in enumerate(options.drop_headers):
        src.choice(here + ("drop_headers", i), name, DROPPABLE)
    if api == "messages":
        return _passthrough(options, path, src)
    if options.passthrough:
        raise src.error(here + ("passthrough",), "passthrough needs provider anthropic")
    if api == "chat" and options.system_placement == "instructions":
        problem = "instructions is a field of the Responses API (api: responses); Chat takes first_message"
        raise src.error(here + ("system_placement",), problem)
    src.choice(here + ("system_placement",), options.system_placement, _PLACEMENTS[api])
    if clamp is None:
        return options
    if options.max_output_tokens is not None and options.max_output_tokens != clamp:
        raise src.error(here + ("max_output_tokens",), "conflicts with upstream.max_output_tokens; keep one")
    return msgspec.structs.replace(options, max_output_tokens=clamp)


def _passthrough(options: TranslationOptions, path: Path, src: Source) -> TranslationOptions:
    here = path + ("translation",)
    if src.has(here + ("passthrough",)) and not options.passthrough:
        problem = "provider anthropic is always passthrough: the gateway does not rewrite Anthropic requests"
        raise src.error(here + ("passthrough",), problem)
    for field in msgspec.structs.fields(TranslationOptions):
        name = field.name
        # Written in the file, or changed through a YAML merge key (`<<:`) that the node tree does not show.
        if name not in _PASSTHROUGH_KEYS and (src.has(here + (name,)) or getattr(options, name) != field.default):
            raise src.error(here + (name,), _NO_EFFECT)
    if src.has(path + ("upstream", "max_output_tokens")):
        raise src.error(path + ("upstream", "max_output_tokens"), _NO_EFFECT)
    return msgspec.structs.replace(options, passthrough=True)


_NO_EFFECT = ("has no effect on provider anthropic: the request goes upstream as the client sent it "
              "(only passthrough, drop_headers and streaming apply); remove it")
