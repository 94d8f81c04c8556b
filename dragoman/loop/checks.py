"""The verdict checks: pure functions from a finished call's evidence to the failure kinds it shows
(loop/verdict.py's vocabulary), in a fixed order, with one short line on the first failure.

Arguments are validated against the tool's `input_schema` by a compiled validator cached per schema (keyed by the
schema's JSON bytes as the client ordered them, bounded: a client sends the same tools in the same order every
turn, and sorting the keys cost more than the rest of the look-up). In front of it, the last schema seen for each
tool name is compared as decoded: a client sends the same schema for a name every turn, and comparing the two
dicts touches the request's (cache-cold) schema once where encoding it to bytes, hashing and comparing the key
cost ~4 µs more a call (bench/RESULTS.md, "The tool-calling loop"). jsonschema-rs was chosen by measuring it
against fastjsonschema on the Claude Code fixtures' tool schemas: ~60x cheaper to compile and ~4x cheaper to
validate (bench/RESULTS.md, "Verdict checks: the schema validator")."""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass, field
from typing import Any

import jsonschema_rs
import msgspec

from dragoman.loop import verdict as V
from dragoman.loop.answer import ParsedAnswer, ToolCall, from_blocks, from_events, from_json, from_stream
from dragoman.loop.evidence import UPSTREAM_CLOSED, Evidence
from dragoman.protocols import anthropic as A

DETAIL_LIMIT = 200  # characters of verdict_detail
# Translation notes (translate/tool_arguments.py) that say what the gateway did to a call's arguments.
NOTE_INVALID = "tool arguments invalid"
NOTES_REPAIRED = ("tool arguments repaired", "tool arguments unwrapped")

_key = msgspec.json.encode


@dataclass(slots=True)
class Findings:
    """What the checks found: the verdict fields of the record."""

    verdict: str | None  # "pass" | "fail" | None (not assessed: no answer, or the client stopped reading)
    kinds: list[str] = field(default_factory=list)
    detail: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)

    def add(self, kind: str, detail: str) -> None:
        if kind not in self.kinds:
            self.kinds.append(kind)
        if self.detail is None and kind != V.REPAIRED_JSON:
            self.detail = f"{kind}: {detail}"[:DETAIL_LIMIT]


class SchemaCache:
    """Compiled validators by schema, least recently used dropped beyond `size`. Used from the event loop (each
    call is examined there); locked so a test or a second thread cannot corrupt it."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._validators: collections.OrderedDict[bytes, Any] = collections.OrderedDict()
        self._lock = threading.Lock()
        self.compiled = 0  # schemas compiled so far (a cache miss each)
        self._by_name: dict[str, tuple[dict[str, Any], Any]] = {}  # tool name -> (its last schema, validator)

    def validator(self, schema: dict[str, Any]) -> Any:
        """The schema's compiled validator, or None when the schema itself is not valid JSON Schema."""
        key = _key(schema)
        with self._lock:
            found = self._validators.get(key, False)
            if found is not False:
                self._validators.move_to_end(key)
                return found
        try:
            compiled: Any = jsonschema_rs.validator_for(schema, retriever=_no_remote_refs)
        except (ValueError, TypeError, jsonschema_rs.ValidationError):  # a tool's broken schema: nothing to check
            compiled = None
        with self._lock:
            self.compiled += 1
            self._validators[key] = compiled
            while len(self._validators) > self.size:
                self._validators.popitem(last=False)
        return compiled

    def for_tool(self, name: str, schema: dict[str, Any]) -> Any:
        """`validator(schema)`, through the last schema seen for this tool name when it is equal. Python's equality
        is JSON's but for 1 == 1.0 == true (and 0 == false): a name whose schema changed only there (`"const": 1`
        to `"const": true`) keeps the earlier validator until its schema differs otherwise."""
        seen = self._by_name.get(name)
        if seen is not None and seen[0] == schema:
            return seen[1]
        compiled = self.validator(schema)
        with self._lock:
            if len(self._by_name) >= self.size:
                self._by_name.clear()
            self._by_name[name] = (schema, compiled)
        return compiled

    def __len__(self) -> int:
        return len(self._validators)


def _no_remote_refs(uri: str) -> Any:
    """A schema's `$ref` to anything but itself is not fetched: the schema is the client's, and jsonschema-rs would
    fetch it (http, file) while compiling, on the event loop. Raising makes the schema one with nothing to check."""
    raise ValueError(f"the gateway does not fetch schema references ({uri[:100]})")


def parse(evidence: Evidence) -> ParsedAnswer | None:
    """The answer the client got, or None when there was none (an error before the first byte)."""
    if evidence.content is not None:
        return from_blocks(evidence.content)
    if evidence.body is not None:
        return from_json(evidence.body)
    if evidence.events is not None:
        return from_events(evidence.events)
    if evidence.chunks:
        return from_stream(evidence.chunks)
    return None


def check(evidence: Evidence, notes: list[str], schemas: SchemaCache) -> Findings:
    """Every check over one call, in the vocabulary's order."""
    answer = parse(evidence)
    if answer is None:
        return Findings(None)
    streamed = evidence.chunks is not None or evidence.events is not None
    if streamed and not evidence.ended and evidence.failure is None:
        # The client stopped reading before the answer ended: nothing to judge the upstream by.
        return Findings(None, tool_calls=answer.tool_calls)
    found = Findings(V.PASS, tool_calls=answer.tool_calls)
    failed_stream = streamed and evidence.failure is not None
    cut = evidence.stop_reason == "max_tokens" and answer.last_block == "tool_use"
    if answer.tool_calls:
        names = evidence.tool_names
        restore = names.client if names is not None and names.restored else None
        called = [restore(call.name) if restore else call.name for call in answer.tool_calls]
        validators = _validators(set(called), evidence.tools, schemas)
        for i, (call, name) in enumerate(zip(answer.tool_calls, called)):
            if cut and i == len(called) - 1:
                continue  # the cut call: its own kind below, its arguments are whatever was left
            if failed_stream and not call.closed:
                continue  # the failure is the kind; a call it interrupted is not judged on its own
            _check_call(call, name, validators, found)
    if NOTE_INVALID in notes:
        found.add(V.INVALID_JSON, "the upstream's tool arguments were not JSON; the client got {}")
    elif any(note in notes for note in NOTES_REPAIRED):
        found.add(V.REPAIRED_JSON, "the gateway repaired the upstream's tool arguments")
    if evidence.stop_reason == "refusal":
        found.add(V.REFUSAL, "the upstream refused")
    if not answer.readable:
        found.add(V.EMPTY_ANSWER, "the answer could not be read")
    elif not answer.has_text and not answer.tool_calls and not failed_stream:
        found.add(V.EMPTY_ANSWER, f"no text and no tool call (stop_reason {evidence.stop_reason})")
    if cut:
        name = answer.tool_calls[-1].name if answer.tool_calls else "?"
        found.add(V.CUT_TOOL_CALL, f"max_tokens hit inside a call to {name!r}")
    if failed_stream:
        if evidence.stream_end == UPSTREAM_CLOSED:
            found.add(V.UNFINISHED_STREAM, "the upstream closed the stream before its finish")
        else:
            found.add(V.ERROR_AFTER_FIRST_BYTE, f"the stream ended with an error ({evidence.failure})")
    found.kinds.sort(key=_ORDER.__getitem__)
    if any(kind != V.REPAIRED_JSON for kind in found.kinds):
        found.verdict = V.FAIL
    return found


_ORDER = {kind: i for i, kind in enumerate((V.UNKNOWN_TOOL, V.INVALID_JSON, V.REPAIRED_JSON, *V.ANSWER_KINDS[2:]))}


def _validators(called: set[str], tools: list[A.Tool] | None, schemas: SchemaCache) -> dict[str, Any]:
    """The validator of each called tool the request offered (None: a tool without a schema to check), by name;
    a name absent was not offered. One look-up per tool called, however many calls (six parallel Reads: one)."""
    chosen: dict[str, A.Tool] = {}
    for tool in tools or ():
        if tool.name in called:
            chosen[tool.name] = tool  # a name offered twice: the last one, as a client reading the list would
    return {name: schemas.for_tool(name, tool.input_schema) if tool.input_schema else None
            for name, tool in chosen.items()}


def _check_call(call: ToolCall, name: str, validators: dict[str, Any], found: Findings) -> None:
    validator = validators.get(name, _NOT_OFFERED)
    if validator is _NOT_OFFERED:
        found.add(V.UNKNOWN_TOOL, f"tool {name!r} was not offered")
        return
    if call.arguments is None:
        found.add(V.INVALID_JSON, f"{name}: arguments are not a JSON object: {call.raw!r}")
        return
    if validator is None or validator.is_valid(call.arguments):
        return
    error = next(iter(validator.iter_errors(call.arguments)), None)
    where = "/".join(str(p) for p in error.instance_path) if error is not None else ""
    message = error.message if error is not None else "invalid"
    found.add(V.SCHEMA_VIOLATION, f"{name}: {message}" + (f" at /{where}" if where else ""))


_NOT_OFFERED: Any = object()
