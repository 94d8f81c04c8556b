"""The verdict vocabulary: the named failure kinds a translated call can be judged to have, and the signals that
arrive about a call after it finished (its next turn, the judge). The checks themselves live beside this module;
a new kind is a name here, a check there, and a metric label (docs/ARCHITECTURE.md, "Where new things go").

Who consumes verdicts implements `VerdictSink`: scores and clusters (loop/scores), config versions (loop/versions).
Calls come from one background thread (the audit writer's), never from the event loop: the event loop examines a
call (loop/assess.py) and the writer hands the examined record to the sinks."""

from __future__ import annotations

from typing import Protocol

import msgspec

from dragoman.observe.record import AuditRecord

PASS = "pass"
FAIL = "fail"

# Failure kinds of the answer itself (loop/checks.py).
UNKNOWN_TOOL = "unknown_tool"  # a tool_use whose name the request did not offer (after long-name restoration)
INVALID_JSON = "invalid_tool_json"  # tool arguments that were not valid JSON
REPAIRED_JSON = "repaired_tool_json"  # ... that the gateway repaired (recorded; not a failure on its own)
SCHEMA_VIOLATION = "schema_violation"  # arguments that parse but break the tool's input_schema
EMPTY_ANSWER = "empty_answer"  # no text and no tool call
REFUSAL = "refusal"  # the upstream refused (stop_reason refusal, or its refusal field)
CUT_TOOL_CALL = "cut_tool_call"  # max_tokens hit in the middle of a tool call
UNFINISHED_STREAM = "unfinished_stream"  # the stream ended without its finish
ERROR_AFTER_FIRST_BYTE = "error_after_first_byte"  # the upstream failed once the client had bytes

# Signals about an earlier call (set on that call's record later, and fed to the scores).
CLIENT_REFUSED = "client_refused"  # the client refused the tool call (InputValidationError, unknown tool, …)
EXECUTION_FAILED = "execution_failed"  # the call ran and failed (non-zero exit, old_string not found): weaker
JUDGE_FAIL = "judge_fail"  # the judge route said the task was not completed

ANSWER_KINDS = (UNKNOWN_TOOL, INVALID_JSON, SCHEMA_VIOLATION, EMPTY_ANSWER, REFUSAL, CUT_TOOL_CALL,
                UNFINISHED_STREAM, ERROR_AFTER_FIRST_BYTE)
LATE_KINDS = (CLIENT_REFUSED, EXECUTION_FAILED, JUDGE_FAIL)


class LateSignal(msgspec.Struct, frozen=True, kw_only=True):
    """Something learned about an earlier call after it finished: its next turn, or the judge."""

    request_id: str  # the call it is about
    kind: str  # one of LATE_KINDS, or "judge_pass"
    time: float  # epoch seconds when it was learned
    route: str | None = None  # the earlier call's route, model, shape and variant (scores are kept per these)
    model: str | None = None
    shape: str | None = None
    prompt_variant: str | None = None
    config_version: str | None = None
    tool_name: str | None = None
    detail: str | None = None  # redacted


class VerdictSink(Protocol):
    """What consumes verdicts. Both calls come from the audit writer's thread, in order, never concurrently."""

    def verdicts(self, records: list[AuditRecord]) -> None: ...  # finished calls, in order, their verdict fields set

    def late_signal(self, signal: LateSignal) -> None: ...  # something learned later about an earlier call
