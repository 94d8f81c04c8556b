"""What the translators need to know about upstream models: reasoning or not, and output-token limits."""

from __future__ import annotations

# Prefix → largest max_completion_tokens the model accepts (OpenAI's model pages). Longest prefix wins.
_OUTPUT_LIMITS: tuple[tuple[str, int], ...] = (
    ("gpt-5", 128000),
    ("gpt-4.1", 32768),
    ("gpt-4o", 16384),
    ("gpt-4-turbo", 4096),
    ("o1-mini", 65536),
    ("o1", 100000),
    ("o3", 100000),
    ("o4", 100000),
)

# OpenAI reasoning models reject temperature/top_p and max_tokens, and take reasoning_effort.
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")


def _base_name(model: str) -> str:
    # "openai/gpt-5" (OpenRouter style) and "azure/gpt-5" name the same model.
    return model.rsplit("/", 1)[-1].lower()


def is_reasoning_model(model: str) -> bool:
    name = _base_name(model)
    if name.startswith("gpt-5") and "chat" in name:  # gpt-5-chat-latest is not a reasoning model
        return False
    return name.startswith(_REASONING_PREFIXES)


def output_limit(model: str) -> int | None:
    """The model's max output tokens, or None when we do not know the model."""
    name = _base_name(model)
    best: tuple[int, int] | None = None
    for prefix, limit in _OUTPUT_LIMITS:
        if name.startswith(prefix) and (best is None or len(prefix) > best[0]):
            best = (len(prefix), limit)
    return best[1] if best else None
