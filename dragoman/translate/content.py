"""Anthropic user content as protocol-neutral parts: text, images, documents, and the text of a tool result.

`Text`, `Image` and `File` are what the conversation walk (`conversation.py`) hands the renderers; each
protocol maps them to its own part shapes. A part no upstream can take raises `PartError` with its path
below the block (`source.type`); the walk adds where the block sits. Pure: no I/O, no config, no clock.
"""

from __future__ import annotations

import msgspec

from dragoman.protocols import anthropic as A
from dragoman.translate.request_context import RequestContext
from dragoman.translate.request_errors import PartError


class Text(msgspec.Struct, gc=False):
    text: str


class Image(msgspec.Struct, gc=False):
    url: str  # an http(s) URL or a data: URL


class File(msgspec.Struct, gc=False):
    filename: str | None = None
    file_data: str | None = None  # a data: URL
    file_id: str | None = None


Part = Text | Image | File


def user_part(block: A.ContentBlock, ctx: RequestContext) -> Part | None:
    """A user block other than tool_result as a content part, or None when the upstream cannot take it."""
    kind = block.type
    if kind == "text":
        if block.text is None:
            raise PartError("text block has no text")  # the SDK's TextBlockParam requires it
        return Text(block.text)
    if kind == "image":
        return _image(block.source)
    if kind == "document":
        return _document(block, ctx)
    ctx.note(f"user {kind} block dropped")
    return None


def tool_result(block: A.ContentBlock, ctx: RequestContext, loaded: set[str]) -> tuple[str, list[Image | File]]:
    """The text of a tool result (never empty) and the images and files it holds, which follow in a user turn;
    the tools its tool_reference blocks load are added to `loaded`."""
    content = block.content
    attachments: list[Image | File] = []
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    else:
        text = _result_text(content, attachments, ctx, loaded)
    if not text:
        text = "(no output)"
    if block.is_error:
        text = f"[tool error] {text}"
    return text, attachments


def _result_text(
    content: list[A.ContentBlock], attachments: list[Image | File], ctx: RequestContext, loaded: set[str]
) -> str:
    texts: list[str] = []
    names: list[str] = []
    for k, item in enumerate(content):
        kind = item.type
        try:
            if kind == "text":
                texts.append(item.text or "")
            elif kind == "tool_reference":
                name = item.tool_name or ""
                names.append(name)
                if name:
                    loaded.add(name)
            elif kind == "image":
                attachments.append(_image(item.source))
            elif kind == "document":
                part = _document(item, ctx)
                if isinstance(part, Text):
                    texts.append(part.text)
                else:
                    attachments.append(part)
            else:
                ctx.note(f"tool_result {kind} block dropped")
        except PartError as exc:
            raise exc.within("content", k) from None
    if names:
        # Claude Code's ToolSearch answers with tool_reference blocks only: say which tools are now loaded.
        texts.insert(0, "Loaded tools: " + ", ".join(names))
    if attachments:
        texts.append(f"[{len(attachments)} attachment(s) follow in the next message]")
    return "\n".join(t for t in texts if t)


def _image(source: A.Source | str | None) -> Image:
    if not isinstance(source, A.Source):
        raise PartError("image block has no source object", "source")
    if source.type == "base64":
        return Image(f"data:{source.media_type or 'image/png'};base64,{source.data}")
    if source.type == "url" and source.url:
        return Image(source.url)
    raise PartError(f"image source type {source.type!r} cannot be sent to this upstream", "source", "type")


def _document(block: A.ContentBlock, ctx: RequestContext) -> Text | File:
    source = block.source
    if not isinstance(source, A.Source):
        raise PartError("document block has no source object", "source")
    title = block.title or "document"
    if source.type == "text":
        return Text(f"[{title}]\n{source.data or ''}")
    if source.type == "content" and isinstance(source.content, list):
        return Text("\n\n".join(b.text for b in source.content if b.type == "text" and b.text))
    if source.type == "base64":
        media = source.media_type or "application/pdf"
        return File(filename=_filename(title, media), file_data=f"data:{media};base64,{source.data}")
    if source.type == "file" and source.file_id:
        return File(file_id=source.file_id)
    if source.type == "url" and source.url:
        ctx.note("document url sent as text")
        return Text(f"[{title}: {source.url}]")
    raise PartError(f"document source type {source.type!r} cannot be sent to this upstream", "source", "type")


def _filename(title: str, media: str) -> str:
    return title if "." in title else f"{title}.{media.rsplit('/', 1)[-1]}"
