"""Per-route translation options: what a route's `translation:` block says, as the translators read it.

Which values each key takes, and which keys a passthrough route refuses, is checked at load by
`dragoman.config.translation_keys`: a value the translators do not act on never gets this far."""

from __future__ import annotations

import msgspec

# What drop_headers can name: the Anthropic request fields and client headers a route can strip before the
# request goes upstream. OpenAI upstreams never get either (the translators drop cache_control, and only
# passthrough forwards anthropic-* headers), so the list acts on anthropic routes.
DROPPABLE = ("cache_control", "anthropic-beta")


class TranslationOptions(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How one route maps Anthropic requests onto its upstream. Defaults suit OpenAI's own API."""

    # None: the upstream's own place: Chat's first message, Responses' `instructions`. "first_message" on a
    # Responses route sends the system text as the first input message instead (servers that ignore instructions).
    system_placement: str | None = None
    system_role: str = "system"  # "developer" for OpenAI reasoning models that prefer it
    tool_use: str = "openai_tool_calls"  # the one shape OpenAI upstreams take tool calls in (Chat and Responses)
    streaming: str = "anthropic_events"  # what the client receives, whatever the upstream streams
    drop_headers: tuple[str, ...] = ()  # names from DROPPABLE
    reasoning_effort: str = "auto"  # auto | off | minimal | low | medium | high
    server_tools: str = "reject"  # reject | drop
    max_tool_name_length: int = 64  # OpenAI's limit on function names
    max_stop_sequences: int = 4  # OpenAI takes at most 4
    think_tags: bool = False  # split <think>…</think> text into thinking blocks (reasoning servers)
    max_output_tokens: int | None = None  # clamp for max_tokens; None = the model table, else no clamp
    min_output_tokens: int | None = None  # floor for max_tokens; None = 1024 for reasoning models, else 1
    reasoning_model: bool | None = None  # None = guessed from the model name (o1/o3/o4/gpt-5…)
    passthrough: bool = False  # set at load for provider anthropic: body and stream pass untouched but for key and model
    max_tokens_field: str | None = None  # max_tokens | max_completion_tokens; None = by provider
