"""Per-route translation options: what a route's `translation:` block says, as the translators read it."""

from __future__ import annotations

import msgspec


class TranslationOptions(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How one route maps Anthropic requests onto its upstream. Defaults suit OpenAI's own API."""

    system_placement: str = "first_message"  # the only placement Chat has: system text leads the messages
    system_role: str = "system"  # "developer" for OpenAI reasoning models that prefer it
    tool_use: str = "openai_tool_calls"
    streaming: str = "anthropic_events"
    drop_headers: tuple[str, ...] = ("cache_control",)
    reasoning_effort: str = "auto"  # auto | off | minimal | low | medium | high
    server_tools: str = "reject"  # reject | drop
    max_tool_name_length: int = 64  # OpenAI's limit on function names
    max_stop_sequences: int = 4  # OpenAI takes at most 4
    think_tags: bool = False  # split <think>…</think> text into thinking blocks (reasoning servers)
    max_output_tokens: int | None = None  # clamp for max_tokens; None = the model table, else no clamp
    min_output_tokens: int | None = None  # floor for max_tokens; None = 1024 for reasoning models, else 1
    reasoning_model: bool | None = None  # None = guessed from the model name (o1/o3/o4/gpt-5…)
    passthrough: bool = False  # Anthropic upstreams: body and stream pass untouched but for key and model
    max_tokens_field: str | None = None  # max_tokens | max_completion_tokens; None = by provider
