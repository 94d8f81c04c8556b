"""Dragoman: the Anthropic Messages API on OpenAI and OpenAI-compatible upstreams."""
