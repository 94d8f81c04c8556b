"""The verdict checks: pure functions from a finished call's evidence to the failure kinds it shows
(loop/verdict.py's vocabulary), in a fixed order, with one short line on the first failure.

Arguments are validated against the tool's `input_schema` by a compiled validator cached per schema, keyed by the
schema's JSON text as the client sent it (the request keeps it undecoded: protocols/anthropic.py), bounded. In front of
it, the last schema seen for each tool name is compared byte for byte: a client sends the same schema for a name every
turn, and comparing is cheaper than hashing the text for the cache's key. jsonschema-rs was chosen by measuring it
against fastjsonschema on the Claude Code fixtures' tool schemas: ~60x cheaper to compile and ~4x cheaper to validate
(bench/RESULTS.md, "Verdict checks: the schema validator")."""

from __future__ import annotations

import collections
import threading
from typing import Any

import jsonschema_rs
import msgspec

from dragoman.loop import verdict as V
from dragoman.loop.answer import Call, from_blocks, from_json, from_stream
from dragoman.loop.evidence import UPSTREAM_CLOSED, Evidence
from dragoman.protocols import anthropic as A
from dragoman.protocols import json_depth
from dragoman.redaction import redact_cut
# Translation notes that say what the gateway did to a call's arguments.
from dragoman.translate.tool_arguments import NOTE_INVALID, NOTE_REPAIRED, NOTE_UNWRAPPED

DETAIL_LIMIT = 200  # characters of verdict_detail

_decode_any = msgspec.json.decode


class Findings(msgspec.Struct, gc=False):
    """What the checks found: the verdict fields of the record."""

    verdict: str | None  # "pass" | "fail" | None (not assessed: no answer, or the client stopped reading)
    kinds: list[str] = []
    detail: str | None = None
    tool_calls: list[Call] = []

    def add(self, kind: str, detail: str) -> None:
        if kind not in self.kinds:
            self.kinds.append(kind)
        if self.detail is None and kind != V.REPAIRED_JSON:
            self.detail = redact_cut(f"{kind}: {detail}", DETAIL_LIMIT)  # it may quote a call's arguments


class SchemaCache:
    """Compiled validators by schema, least recently used dropped beyond `size`. Used from the event loop (each
    call is examined there); locked so a test or a second thread cannot corrupt it."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._validators: collections.OrderedDict[bytes, Any] = collections.OrderedDict()
        self._lock = threading.Lock()
        self.compiled = 0  # schemas compiled so far (a cache miss each)
        # tool name -> (its last schema, validator): `for_tool`'s first look, which `_check_calls` takes inline
        self.last: dict[str, tuple[msgspec.Raw, Any]] = {}

    def validator(self, schema: bytes) -> Any:
        """The compiled validator of a schema's JSON text, or None when it is not a valid JSON Schema."""
        with self._lock:
            found = self._validators.get(schema, False)
            if found is not False:
                self._validators.move_to_end(schema)
                return found
        try:
            compiled: Any = jsonschema_rs.validator_for(json_depth.decode(_decode_any, schema),
                                                        retriever=_no_remote_refs)
        except (ValueError, TypeError, msgspec.DecodeError, jsonschema_rs.ValidationError):
            compiled = None  # a tool's broken schema (or one nested deeper than the gateway follows): nothing to check
        with self._lock:
            self.compiled += 1
            self._validators[schema] = compiled
            while len(self._validators) > self.size:
                self._validators.popitem(last=False)
        return compiled

    def for_tool(self, name: str, schema: msgspec.Raw) -> Any:
        """`validator(schema)`, through the last schema seen for this tool name when it is the same text."""
        seen = self.last.get(name)
        if seen is not None and seen[0] == schema:
            return seen[1]
        text = bytes(schema)  # a copy: what the cache keeps must not keep the request's body alive
        compiled = self.validator(text)
        with self._lock:
            if len(self.last) >= self.size:
                self.last.clear()
            self.last[name] = (msgspec.Raw(text), compiled)
        return compiled

    def __len__(self) -> int:
        return len(self._validators)


def _no_remote_refs(uri: str) -> Any:
    """A schema's `$ref` to anything but itself is not fetched: the schema is the client's, and jsonschema-rs would
    fetch it (http, file) while compiling, on the event loop. Raising makes the schema one with nothing to check."""
    raise ValueError(f"the gateway does not fetch schema references ({uri[:100]})")


def check(evidence: Evidence, notes: list[str], schemas: SchemaCache) -> Findings:
    """Every check over one call, in the vocabulary's order. It runs once per call on the event loop: a passing
    call touches as little as it can (no kind list sorted, no note searched when there is none), in as few functions
    as reads well: run once a request among a busy gateway's other work, its code is fetched cache-cold each time,
    and each function called costs more in fetching than in running (bench/RESULTS.md, "The next turn, lighter")."""
    # The answer the client got: none (an error before the first byte) has nothing to judge.
    if evidence.content is not None:
        answer = from_blocks(evidence.content)
    elif evidence.body is not None:
        answer = from_json(evidence.body)
    elif evidence.facts is not None:
        answer = evidence.facts.answer()
    elif evidence.chunks:
        answer = from_stream(evidence.chunks)
    else:
        return Findings(None)
    streamed = evidence.chunks is not None or evidence.facts is not None
    calls = answer.tool_calls
    if streamed and not evidence.ended and evidence.failure is None:
        # The client stopped reading before the answer ended: nothing to judge the upstream by.
        return Findings(None, tool_calls=calls)
    found = Findings(V.PASS, tool_calls=calls)
    failed_stream = streamed and evidence.failure is not None
    stop = evidence.stop_reason
    cut = stop == "max_tokens" and answer.last_block == "tool_use"
    if calls:
        _check_calls(calls, evidence, schemas, found, cut, failed_stream)
    if notes:
        if NOTE_INVALID in notes:
            found.add(V.INVALID_JSON, "the upstream's tool arguments were not JSON; the client got {}")
        elif NOTE_REPAIRED in notes or NOTE_UNWRAPPED in notes:
            found.add(V.REPAIRED_JSON, "the gateway repaired the upstream's tool arguments")
    if stop == "refusal":
        found.add(V.REFUSAL, "the upstream refused")
    if not answer.readable:
        found.add(V.EMPTY_ANSWER, "the answer could not be read")
    elif not answer.has_text and not calls and not failed_stream:
        found.add(V.EMPTY_ANSWER, f"no text and no tool call (stop_reason {stop})")
    if cut:
        name = calls[-1].name if calls else "?"
        found.add(V.CUT_TOOL_CALL, f"max_tokens hit inside a call to {name!r}")
    if failed_stream:
        if evidence.stream_end == UPSTREAM_CLOSED:
            found.add(V.UNFINISHED_STREAM, "the upstream closed the stream before its finish")
        else:
            found.add(V.ERROR_AFTER_FIRST_BYTE, f"the stream ended with an error ({evidence.failure})")
    kinds = found.kinds
    if kinds:
        kinds.sort(key=_ORDER.__getitem__)
        if len(kinds) > 1 or kinds[0] != V.REPAIRED_JSON:
            found.verdict = V.FAIL
    return found


_ORDER = {kind: i for i, kind in enumerate((V.UNKNOWN_TOOL, V.INVALID_JSON, V.REPAIRED_JSON, *V.ANSWER_KINDS[2:]))}


def _check_calls(calls: list[Call], evidence: Evidence, schemas: SchemaCache, found: Findings, cut: bool,
                 failed_stream: bool) -> None:
    """Each call against the tool the request offered under its name (after long-name restoration), its validator
    looked up once per tool however many calls it got (six parallel Reads: one)."""
    names = evidence.tool_names
    restore = names.client if names is not None and names.restored else None
    offered = evidence.offered or {}
    last = schemas.last
    validators: dict[str, Any] = {}
    named, validator = None, _UNSEEN  # the previous call's tool and validator: parallel calls mostly share one
    for call in calls[:-1] if cut else calls:  # the cut call: its own kind, its arguments are whatever was left
        if failed_stream and not call.closed:  # (a stream's calls are ToolCalls: only a stream fails midway)
            continue  # the failure is the kind; a call it interrupted is not judged on its own
        name = restore(call.name) if restore is not None else call.name
        if name != named:
            named = name
            validator = validators.get(name, _UNSEEN)
        if validator is _UNSEEN:
            schema = offered.get(name)
            seen = last.get(name)
            if schema is None:
                validator = _NOT_OFFERED
            elif seen is not None and seen[0] == schema:  # the name's schema as last time (`for_tool`, inline)
                validator = seen[1]
            elif A.schema_given(schema):
                validator = schemas.for_tool(name, schema)
            else:
                validator = None  # a tool without a schema to check
            validators[name] = validator
        arguments = call.input
        if validator is _NOT_OFFERED or arguments is None or (validator is not None and
                                                               not validator.is_valid(arguments)):
            _failed(call, name, validator, found)  # the passing call, the common one, stays inline


def _failed(call: Call, name: str, validator: Any, found: Findings) -> None:
    """Why a call failed its checks: not offered, arguments not a JSON object, or not valid for its schema."""
    if validator is _NOT_OFFERED:
        found.add(V.UNKNOWN_TOOL, f"tool {name!r} was not offered")
        return
    if call.input is None:
        found.add(V.INVALID_JSON, f"{name}: arguments are not a JSON object: {call.raw!r}")
        return
    error = next(iter(validator.iter_errors(call.input)), None)
    where = "/".join(str(p) for p in error.instance_path) if error is not None else ""
    message = error.message if error is not None else "invalid"
    found.add(V.SCHEMA_VIOLATION, f"{name}: {message}" + (f" at /{where}" if where else ""))


_UNSEEN: Any = object()
_NOT_OFFERED: Any = object()
