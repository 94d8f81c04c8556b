"""Every verdict kind of loop/checks.py, on JSON and streamed answers built as a client receives them."""

from __future__ import annotations

import pytest

from dragoman.loop import verdict as V
from dragoman.loop.checks import SchemaCache, check
from dragoman.loop.evidence import TRANSPORT_FAILED, UPSTREAM_CLOSED, Evidence
from tests.upstreams.anthropic_messages import MessageReply
from tests.verdict_helpers import error_event, json_evidence, request, stream_evidence

BOTH = pytest.mark.parametrize("build", [json_evidence, stream_evidence], ids=["json", "stream"])


def _check(evidence: Evidence, notes: list[str] | None = None):
    return check(evidence, notes or [], SchemaCache(8))


@BOTH
def test_a_text_answer_passes(build) -> None:
    found = _check(build(MessageReply(text="Hello")))
    assert (found.verdict, found.kinds, found.detail, found.tool_calls) == (V.PASS, [], None, [])


@BOTH
def test_a_valid_tool_call_passes_and_is_counted(build) -> None:
    found = _check(build(MessageReply(text=None, tool_uses=[("toolu_1", "Read", {"file_path": "/a", "limit": 3})])))
    assert found.verdict == V.PASS and found.kinds == []
    assert [(c.id, c.name, c.input) for c in found.tool_calls] == [("toolu_1", "Read", {"file_path": "/a", "limit": 3})]


@BOTH
def test_a_tool_not_offered_is_unknown_tool(build) -> None:
    found = _check(build(MessageReply(tool_uses=[("toolu_1", "Write", {"file_path": "/a"})])))
    assert found.verdict == V.FAIL and found.kinds == [V.UNKNOWN_TOOL]
    assert "Write" in found.detail


@BOTH
def test_a_tool_call_when_no_tool_was_offered_is_unknown_tool(build) -> None:
    req = request(tools=None, stream=build is stream_evidence)
    found = _check(build(MessageReply(tool_uses=[("toolu_1", "Read", {"file_path": "/a"})]), req))
    assert found.kinds == [V.UNKNOWN_TOOL]


@pytest.mark.parametrize("args, where", [
    ({}, "file_path"),  # a required key missing
    ({"file_path": 12}, "file_path"),  # a wrong type
    ({"file_path": "/a", "mode": "x"}, "mode"),  # an unknown key where additionalProperties is false
    ({"file_path": "/a", "limit": "ten"}, "limit"),
])
@BOTH
def test_arguments_breaking_the_input_schema_are_a_schema_violation(build, args, where) -> None:
    found = _check(build(MessageReply(tool_uses=[("toolu_1", "Read", args)])))
    assert found.verdict == V.FAIL and found.kinds == [V.SCHEMA_VIOLATION]
    assert found.detail.startswith("schema_violation: Read:") and where in found.detail


def test_streamed_arguments_that_are_not_json_are_invalid_json() -> None:
    reply = MessageReply(tool_uses=[("toolu_1", "Read", {"file_path": "/a"})])
    evidence = stream_evidence(reply)
    evidence.chunks = [c.replace(b'\\"/a\\"}', b'\\"/a\\"') for c in evidence.chunks]  # the closing brace lost
    found = _check(evidence)
    assert found.verdict == V.FAIL and found.kinds == [V.INVALID_JSON]


def test_arguments_the_gateway_could_not_parse_are_invalid_json_even_though_the_client_got_an_object() -> None:
    found = _check(json_evidence(MessageReply(tool_uses=[("toolu_1", "Bash", {"command": "ls"})])),
                   ["tool arguments invalid"])
    assert found.verdict == V.FAIL and found.kinds == [V.INVALID_JSON]


@pytest.mark.parametrize("note", ["tool arguments repaired", "tool arguments unwrapped"])
def test_arguments_the_gateway_repaired_are_recorded_but_pass(note: str) -> None:
    found = _check(json_evidence(MessageReply(tool_uses=[("toolu_1", "Bash", {"command": "ls"})])), [note])
    assert found.verdict == V.PASS and found.kinds == [V.REPAIRED_JSON] and found.detail is None


@BOTH
def test_no_text_and_no_tool_call_is_an_empty_answer(build) -> None:
    found = _check(build(MessageReply(text=None)))
    assert found.verdict == V.FAIL and found.kinds == [V.EMPTY_ANSWER]


@BOTH
def test_an_empty_text_block_is_an_empty_answer(build) -> None:
    assert _check(build(MessageReply(text=""))).kinds == [V.EMPTY_ANSWER]


@BOTH
def test_thinking_without_text_is_an_empty_answer(build) -> None:
    assert _check(build(MessageReply(text=None, thinking="hmm"))).kinds == [V.EMPTY_ANSWER]


@BOTH
def test_stop_reason_refusal_is_a_refusal(build) -> None:
    found = _check(build(MessageReply(text="I can't help with that.", stop_reason="refusal")))
    assert found.verdict == V.FAIL and found.kinds == [V.REFUSAL]


@BOTH
def test_max_tokens_inside_a_tool_call_is_a_cut_tool_call(build) -> None:
    reply = MessageReply(text="Reading", tool_uses=[("toolu_1", "Read", {})], stop_reason="max_tokens")
    found = _check(build(reply))
    assert found.verdict == V.FAIL and found.kinds == [V.CUT_TOOL_CALL]  # not also a schema violation


@BOTH
def test_max_tokens_after_text_is_no_cut_tool_call(build) -> None:
    found = _check(build(MessageReply(text="A long essay", stop_reason="max_tokens")))
    assert found.verdict == V.PASS


def test_a_stream_the_upstream_closed_before_its_finish_is_unfinished() -> None:
    evidence = stream_evidence(MessageReply(text="Hello there"), cut_after=4, failure="api_error",
                               stream_end=UPSTREAM_CLOSED, tail=error_event())
    found = _check(evidence)
    assert found.verdict == V.FAIL and found.kinds == [V.UNFINISHED_STREAM]


@pytest.mark.parametrize("stream_end", [TRANSPORT_FAILED, "finished"])
def test_an_error_after_the_first_byte_is_its_own_kind(stream_end: str) -> None:
    evidence = stream_evidence(MessageReply(text=None, tool_uses=[("toolu_1", "Read", {"file_path": "/a"})]),
                               cut_after=4, failure="overloaded_error", stream_end=stream_end,
                               tail=error_event("overloaded_error"))
    found = _check(evidence)
    assert found.verdict == V.FAIL and found.kinds == [V.ERROR_AFTER_FIRST_BYTE]  # the open call is not judged


def test_a_stream_the_client_stopped_reading_is_not_assessed() -> None:
    evidence = stream_evidence(MessageReply(text="Hello there"), cut_after=4, ended=False, stream_end=None)
    assert _check(evidence).verdict is None


def test_an_error_answer_before_the_first_byte_is_not_assessed() -> None:
    assert _check(Evidence()).verdict is None


def test_a_long_tool_name_shortened_for_the_upstream_is_checked_under_its_client_name() -> None:
    long_name = "mcp__server__" + "x" * 70
    req = request(tools=[{"name": long_name, "input_schema": {"type": "object"}}])
    evidence = json_evidence(MessageReply(tool_uses=[("toolu_1", long_name[:55] + "_abcdef12", {})]), req)
    evidence.tool_names.restored[long_name[:55] + "_abcdef12"] = long_name
    assert _check(evidence).verdict == V.PASS


def test_several_failures_are_listed_in_the_vocabulary_order_and_the_detail_names_the_first() -> None:
    reply = MessageReply(text=None, tool_uses=[("toolu_1", "Read", {"file_path": 1}), ("toolu_2", "Nope", {})])
    found = _check(json_evidence(reply), ["tool arguments repaired"])
    assert found.kinds == [V.UNKNOWN_TOOL, V.REPAIRED_JSON, V.SCHEMA_VIOLATION]
    assert found.detail.startswith("schema_violation")  # the first one found, in the answer's order


def test_a_validator_is_compiled_once_per_schema_and_the_cache_is_bounded() -> None:
    cache = SchemaCache(2)
    reply = MessageReply(tool_uses=[("toolu_1", "Read", {"file_path": "/a"})])
    for _ in range(3):
        check(json_evidence(reply), [], cache)
    assert cache.compiled == 1
    for i in range(5):
        cache.validator(b'{"type": "object", "title": "%d"}' % i)
    assert len(cache) == 2


def test_a_tool_whose_schema_changed_is_checked_against_its_new_schema() -> None:
    # The cache remembers the last schema of each tool name: a client that changes the schema under the same name
    # is judged by the new one, and the same schema text as the last one (in a new request body) reuses it.
    cache = SchemaCache(8)
    reply = MessageReply(tool_uses=[("toolu_1", "Read", {"file_path": "/a"})])
    renamed = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"],
               "additionalProperties": False}
    assert check(json_evidence(reply), [], cache).verdict == V.PASS
    changed = check(json_evidence(reply, request(tools=[{"name": "Read", "input_schema": renamed}])), [], cache)
    assert changed.kinds == [V.SCHEMA_VIOLATION] and "path" in changed.detail
    assert check(json_evidence(reply), [], cache).verdict == V.PASS  # and back
    assert check(json_evidence(reply), [], cache).verdict == V.PASS
    assert cache.compiled == 2


def test_a_tool_with_a_broken_schema_is_not_failed_for_it() -> None:
    req = request(tools=[{"name": "Odd", "input_schema": {"type": 12}}])
    assert _check(json_evidence(MessageReply(tool_uses=[("toolu_1", "Odd", {"a": 1})]), req)).verdict == V.PASS


def test_a_text_only_stream_never_parses_its_events() -> None:
    # The fast path: bytes with no tool_use and a non-empty text delta are judged by one search; an event that
    # could not even be decoded does not matter.
    evidence = stream_evidence(MessageReply(text="Hello"))
    evidence.chunks.insert(2, b"data: {not json\n\n")
    assert _check(evidence).verdict == V.PASS


def test_a_schema_pointing_at_another_document_is_not_fetched_and_not_checked() -> None:
    # The schema is the client's and the checks run on the event loop: a $ref to a URL must not make the gateway
    # fetch it (jsonschema-rs would, while compiling).
    import http.server
    import threading

    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"type": "integer"}')

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        ref = f"http://127.0.0.1:{server.server_address[1]}/path.json"
        req = request(tools=[{"name": "Read", "input_schema": {"type": "object", "properties": {"p": {"$ref": ref}}}}])
        evidence = json_evidence(MessageReply(tool_uses=[("toolu_1", "Read", {"p": "not an integer"})]), req)
        assert _check(evidence).verdict == V.PASS  # nothing to check against
        assert hits == []
    finally:
        server.shutdown()
        server.server_close()
