"""What a routing policy can read about a request: `RequestFeatures`, built by `extract_features`.

Building features must cost microseconds, because it runs before every routing decision. The O(1) features
(model, stream, thinking, counts, identity) are read eagerly; the ones that walk the conversation
(`input_tokens`, `has_images`, `tool_call_count`) are computed on first read and cached, so a policy that
never reads them never pays for them.

`input_tokens` is an estimate, not a tokenizer count: the request body's byte size divided by 4.65, with base64
image and document data taken out (it is ~1.33 bytes per byte of binary, not text) and a flat 1600 tokens
added per image or document instead (Anthropic's cost of a ~1.15-megapixel image). The divisor is measured on
what Claude Code sends, compact JSON (`JSON.stringify`): against the o200k count of what the model sees
(`dragoman.tokens.count_tokens`), the ten Claude Code fixtures in tests/fixtures/claude_code/, re-encoded
compactly, have 4.54-4.76 body bytes per token, so the estimate is within -2.4%..+2.3% of it (table and band in
tests/test_request_features.py). Whitespace between JSON tokens counts as text: the same requests pretty-printed
(one-space indent) read 5-11% high. Text that is not mostly ASCII (CJK: ~3 UTF-8 bytes a character, ~1 token per
1-1.5 characters) is under-counted by up to ~40%.
"""

from __future__ import annotations

from collections.abc import Mapping


from dragoman.identity import Identity

from dragoman.protocols.anthropic import ContentBlock, Message, MessagesRequest

# Measured on the ten Claude Code fixtures as Claude Code sends them (compact JSON): body bytes / o200k tokens of
# the model-visible text = 4.54-4.76; 4.65 is the middle (the estimate is then within -2.4%..+2.3%). Kept as
# bytes per 100 tokens so the estimate stays integer arithmetic (~15 ns a request; int(n / 4.65) costs ~70 ns).
BYTES_PER_100_TOKENS = 465
# What count_tokens charges for an image or document whose pixel size / page count it does not decode.
BINARY_BLOCK_TOKENS = 1600
_BINARY_KINDS = frozenset(("image", "document"))
_THINKING_ON = frozenset(("enabled", "adaptive"))
_UNSET: object = object()
_EMPTY_HEADERS: Mapping[str, str] = {}


class RequestFeatures:
    """The variables a policy reads. Construct it directly (tests, dry runs) or with `extract_features`.

    Values not given are computed from `request` on first read (0 / False without a request).
    """

    __slots__ = (
        "_body_size", "_has_images", "_headers", "_input_tokens", "_request", "_tool_call_count",
        "developer", "message_count", "model", "repo", "stream", "team", "thinking", "tools_count",
    )  # fmt: skip

    def __init__(
        self,
        *,
        model: str = "",
        stream: bool = False,
        thinking: bool = False,
        message_count: int = 0,
        tools_count: int = 0,
        developer: str | None = None,
        team: str | None = None,
        repo: str | None = None,
        headers: Mapping[str, str] = _EMPTY_HEADERS,
        input_tokens: int | None = None,
        has_images: bool | None = None,
        tool_call_count: int | None = None,
        request: MessagesRequest | None = None,
        body_size: int = 0,
    ) -> None:
        self.model = model
        self.stream = stream
        self.thinking = thinking
        self.message_count = message_count
        self.tools_count = tools_count
        self.developer = developer
        self.team = team
        self.repo = repo
        self._headers = headers
        self._request = request
        self._body_size = body_size
        self._input_tokens = _UNSET if input_tokens is None else input_tokens
        self._has_images = _UNSET if has_images is None else has_images
        self._tool_call_count = _UNSET if tool_call_count is None else tool_call_count

    @property
    def input_tokens(self) -> int:
        """Estimated prompt tokens (see the module docstring for how, and how far off)."""
        if self._input_tokens is _UNSET:
            self._scan()
        return self._input_tokens  # type: ignore[return-value]

    @property
    def has_images(self) -> bool:
        """An image block anywhere in the messages, tool results included."""
        if self._has_images is _UNSET:
            self._scan()
        return self._has_images  # type: ignore[return-value]

    @property
    def tool_call_count(self) -> int:
        """tool_use blocks in the latest assistant message (6 after six parallel tool calls)."""
        if self._tool_call_count is _UNSET:
            req = self._request
            self._tool_call_count = 0 if req is None else _latest_tool_calls(req.messages)
        return self._tool_call_count  # type: ignore[return-value]

    def header(self, name: str) -> str | None:
        """A request header's value, or None. `name` must be lower case (the policy compiler lowers it)."""
        headers = self._headers
        value = headers.get(name)
        if value is None and headers:
            # ASGI delivers lower-case names; this scan only serves callers that pass another casing.
            for key, candidate in headers.items():
                if key.lower() == name:
                    return candidate
        return value

    def _scan(self) -> None:
        # One walk serves both lazy features: they need the same pass over every block.
        req = self._request
        images, binary_blocks, binary_chars = (False, 0, 0) if req is None else _scan_binary(req.messages)
        if self._has_images is _UNSET:
            self._has_images = images
        if self._input_tokens is _UNSET:
            text_bytes = max(self._body_size - binary_chars, 0)
            self._input_tokens = text_bytes * 100 // BYTES_PER_100_TOKENS + binary_blocks * BINARY_BLOCK_TOKENS

    def __repr__(self) -> str:
        return (
            f"RequestFeatures(model={self.model!r}, input_tokens={self.input_tokens}, "
            f"tool_call_count={self.tool_call_count}, message_count={self.message_count}, "
            f"tools_count={self.tools_count}, has_images={self.has_images}, thinking={self.thinking}, "
            f"stream={self.stream}, developer={self.developer!r}, team={self.team!r}, repo={self.repo!r})"
        )


def extract_features(
    req: MessagesRequest,
    body_size: int,
    headers: Mapping[str, str],
    identity: Identity | None = None,
) -> RequestFeatures:
    """The features of a decoded request; body_size is the raw body's length in bytes, headers lower-cased."""
    thinking = req.thinking
    effort = req.output_config.effort if req.output_config is not None else None
    who = identity if identity is not None else _NOBODY
    return RequestFeatures(
        model=req.model,
        stream=req.stream,
        # "thinking" means the client wants reasoning: extended or adaptive thinking, or an explicit effort.
        thinking=(thinking is not None and thinking.type in _THINKING_ON) or effort is not None,
        message_count=len(req.messages),
        tools_count=len(req.tools) if req.tools else 0,
        developer=who.developer,
        team=who.team,
        repo=who.repo,
        headers=headers,
        request=req,
        body_size=body_size,
    )


_NOBODY = Identity()


def _latest_tool_calls(messages: list[Message]) -> int:
    # Claude Code appends system and user messages after the assistant turn, so search back for it.
    for message in reversed(messages):
        if message.role == "assistant":
            content = message.content
            if isinstance(content, str):
                return 0
            return sum(1 for block in content if block.type == "tool_use")
    return 0


def _scan_binary(messages: list[Message]) -> tuple[bool, int, int]:
    """(any image, image/document blocks, base64 characters they carry) over the user messages."""
    # The hot loop of the features (~50 ns a block): only user turns carry images (as blocks, or inside
    # tool_result content: Claude Code's Read returns screenshots and PDFs there), so other roles are skipped.
    images = False
    blocks = chars = 0
    for message in messages:
        content = message.content
        if message.role != "user" or content.__class__ is str:
            continue
        for block in content:  # type: ignore[union-attr]
            kind = block.type
            if kind == "tool_result":
                inner = block.content
                if inner.__class__ is list:
                    for nested in inner:  # type: ignore[union-attr]
                        if nested.type in _BINARY_KINDS:
                            images = images or nested.type == "image"
                            blocks, chars = blocks + 1, chars + _base64_chars(nested)
            elif kind in _BINARY_KINDS:
                images = images or kind == "image"
                blocks, chars = blocks + 1, chars + _base64_chars(block)
    return images, blocks, chars


def _base64_chars(block: ContentBlock) -> int:
    source = block.source
    if source is None or source.type != "base64" or source.data is None:
        return 0
    return len(source.data)
