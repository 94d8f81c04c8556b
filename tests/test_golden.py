"""Golden translations (design §2, §3): each tests/golden/<direction>/<case>.input.json is translated and
compared with <case>.expected.json.

    request/   Anthropic request + route options → Chat request (or the 400 it is refused with)
    responses_request/   the same request/ inputs (and a few Responses-only ones of its own) → Responses request
    response/  Chat completion → Anthropic message
    stream/    Chat chunk list + how the stream ended → Anthropic events (also checked against the grammar)
    responses_response/  Responses response → Anthropic message
    responses_stream/    Responses event list (then the upstream's EOF) → Anthropic events (grammar checked)

`DRAGOMAN_UPDATE_GOLDEN=1 pytest tests/test_golden.py` rewrites the expected files from the current
translators. Read every rewritten file against design.md before keeping it: a golden file that pins a bug
is worse than none.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import msgspec
import pytest

from dragoman.errors import GatewayError
from dragoman.protocols import anthropic as A
from dragoman.protocols import openai_chat as C
from dragoman.protocols import openai_responses as R
from dragoman.translate.responses import response as responses_to_anthropic
from dragoman.translate.chat.request import translate_request
from dragoman.translate.chat.stream import ChatStreamBridge
from dragoman.translate.chat.response import translate_response
from dragoman.translate.options import TranslationOptions
from dragoman.translate.request_context import RequestContext
from dragoman.translate.responses.request import translate_request as responses_request
from dragoman.translate.responses.stream import ResponsesStreamBridge
from dragoman.translate.tool_names import ToolNameMap
from tests.anthropic_events import check_grammar, wire_events
from tests.wire import messages_request

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("DRAGOMAN_UPDATE_GOLDEN") == "1"
MESSAGE_ID = "msg_golden"
SIGNING_KEY = b"golden-signing-key"  # thinking signatures in responses_* files are sealed with it


def _cases(direction: str) -> list[Any]:
    inputs = sorted((GOLDEN / direction).glob("*.input.json"))
    if direction == "responses_request":  # every Chat request case is a Responses case too
        inputs = sorted(inputs + list((GOLDEN / "request").glob("*.input.json")), key=lambda path: path.name)
    return [pytest.param(path, id=path.name.removesuffix(".input.json")) for path in inputs]


def _builtins(value: Any) -> Any:
    return msgspec.json.decode(msgspec.json.encode(value))


def _context(spec: dict[str, Any], requested_model: str = "claude-sonnet-4-5") -> RequestContext:
    ctx = RequestContext(
        message_id=MESSAGE_ID,
        requested_model=spec.get("requested_model", requested_model),
        tool_names=ToolNameMap(spec.get("max_tool_name_length", 64)),
        stop_sequences=tuple(spec.get("stop_sequences", ())),
        input_estimate=spec.get("input_estimate", 0),
        think_tags=spec.get("think_tags", False),
        max_tokens=spec.get("max_tokens", 0),  # the budget sent upstream
        visible_max_tokens=spec.get("visible_max_tokens", 0),  # the client's, when the upstream got more
    )
    for name in spec.get("tool_names", ()):  # the names the request registered (long ones get shortened)
        ctx.tool_names.upstream(name)
    return ctx


def _translate_request(case: dict[str, Any], protocol: str = "chat") -> dict[str, Any]:
    options = msgspec.convert(case.get("options", {}), TranslationOptions)
    req = messages_request(case["request"])
    ctx = RequestContext(
        message_id=MESSAGE_ID,
        requested_model=req.model,
        tool_names=ToolNameMap(options.max_tool_name_length),
        stop_sequences=tuple(req.stop_sequences or ()),
        think_tags=options.think_tags,
    )
    extensions = case.get("openai_extensions", True)
    try:
        if protocol == "chat":
            sent: Any = translate_request(req, case["upstream_model"], options, ctx, openai_extensions=extensions)
        else:
            sent = responses_request(
                req, case["upstream_model"], options, ctx, reasoning_key=SIGNING_KEY, openai_extensions=extensions
            )
    except GatewayError as exc:
        return {"error": {"status": exc.status, "type": exc.error_type, "message": exc.message}}
    out = {protocol: _builtins(sent), "restored_tool_names": ctx.tool_names.restored, "notes": ctx.notes}
    if ctx.visible_max_tokens:  # the upstream got more than the client asked: the answer is cut back to this
        out["visible_max_tokens"] = ctx.visible_max_tokens
    return out


def _translate_response(case: dict[str, Any]) -> dict[str, Any]:
    ctx = _context(case.get("context", {}))
    resp = msgspec.convert(case["response"], C.ChatResponse)
    return {"message": _builtins(translate_response(resp, ctx)), "notes": ctx.notes}


def _translate_stream(case: dict[str, Any]) -> dict[str, Any]:
    ctx = _context(case.get("context", {}))
    bridge = ChatStreamBridge(ctx)
    events: list[A.StreamEvent] = []
    for raw in case["chunks"]:
        events += bridge.on_chunk(msgspec.convert(raw, C.ChatChunk))
    end = case["end"]
    if end == "[DONE]":
        events += bridge.on_done()
    elif end == "EOF":
        events += bridge.on_eof()
    else:
        events += bridge.on_error(end["error"]["type"], end["error"]["message"])
    wire = wire_events(events)
    check_grammar(wire)
    return {"events": wire, "notes": ctx.notes}


def _translate_responses_response(case: dict[str, Any]) -> dict[str, Any]:
    ctx = _context(case.get("context", {}))
    resp = msgspec.convert(case["response"], R.Response)
    message = responses_to_anthropic.translate_response(resp, ctx, SIGNING_KEY)
    return {"message": _builtins(message), "notes": ctx.notes}


def _translate_responses_stream(case: dict[str, Any]) -> dict[str, Any]:
    ctx = _context(case.get("context", {}))
    bridge = ResponsesStreamBridge(ctx, SIGNING_KEY)
    events: list[A.StreamEvent] = []
    for raw in case["events"]:
        decoded = R.decode_event(msgspec.json.encode(raw))
        if decoded is not None:
            events += bridge.on_event(decoded)
    events += bridge.on_eof()
    wire = wire_events(events)
    check_grammar(wire)
    return {"events": wire, "notes": ctx.notes}


_TRANSLATE = {
    "request": _translate_request,
    "responses_request": lambda case: _translate_request(case, "responses"),
    "response": _translate_response,
    "stream": _translate_stream,
    "responses_response": _translate_responses_response,
    "responses_stream": _translate_responses_stream,
}


def _check(direction: str, path: Path) -> None:
    case = json.loads(path.read_text())
    assert case.get("description"), f"{path.name}: say what the case pins in `description`"
    actual = _TRANSLATE[direction](case)
    expected_path = GOLDEN / direction / path.name.replace(".input.json", ".expected.json")
    if UPDATE:
        expected_path.write_text(json.dumps(actual, indent=2, ensure_ascii=False) + "\n")
        return
    assert expected_path.exists(), f"{expected_path.name} missing: run with DRAGOMAN_UPDATE_GOLDEN=1, then review it"
    assert actual == json.loads(expected_path.read_text())


@pytest.mark.parametrize("path", _cases("request"))
def test_request(path: Path) -> None:
    _check("request", path)


@pytest.mark.parametrize("path", _cases("responses_request"))
def test_responses_request(path: Path) -> None:
    _check("responses_request", path)


@pytest.mark.parametrize("path", _cases("response"))
def test_response(path: Path) -> None:
    _check("response", path)


@pytest.mark.parametrize("path", _cases("stream"))
def test_stream(path: Path) -> None:
    _check("stream", path)


@pytest.mark.parametrize("path", _cases("responses_response"))
def test_responses_response(path: Path) -> None:
    _check("responses_response", path)


@pytest.mark.parametrize("path", _cases("responses_stream"))
def test_responses_stream(path: Path) -> None:
    _check("responses_stream", path)


def test_every_expected_file_has_an_input() -> None:
    for expected in GOLDEN.glob("*/*.expected.json"):
        name = expected.name.replace(".expected.json", ".input.json")
        shared = expected.parent.name == "responses_request" and (GOLDEN / "request" / name).exists()
        assert shared or expected.with_name(name).exists(), expected
