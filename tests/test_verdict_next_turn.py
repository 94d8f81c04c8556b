"""The next turn tells whether the last one worked: tool_result texts captured from the real Claude Code CLI
(tests/fixtures/claude_code/tool_results/, by capture.py there) classified, the fixtures' conversations, and the
join of a result to the call that produced its id — in one process's memory, and through the store's tool_calls
table from another worker's Assessor."""

from __future__ import annotations

import glob
import json
from pathlib import Path

import msgspec
import pytest

from dragoman.config.loop import VerdictSettings
from dragoman.loop import verdict as V
from dragoman.loop.assess import Assessor
from dragoman.loop.evidence import decoded, taken
from dragoman.loop.next_turn import OK, UNKNOWN, Answered, Remembered, ToolCallMemory, classify, result_text, tool_results
from dragoman.observe.record import AuditRecord
from dragoman.observe.stores import open_store
from dragoman.protocols import anthropic as A
from tests.upstreams.anthropic_messages import MessageReply
from tests.verdict_helpers import assessed, json_evidence, request

FIXTURES = Path(__file__).parent / "fixtures" / "claude_code"
CAPTURED = sorted((FIXTURES / "tool_results").glob("cli_*.json"))
EXPECTED = {
    "unknown_tool": V.CLIENT_REFUSED,
    "wrong_type": V.CLIENT_REFUSED,
    "missing_required": V.CLIENT_REFUSED,
    "bash_exit_code": V.EXECUTION_FAILED,
    "read_missing_file": V.EXECUTION_FAILED,
    "edit_old_string_missing": V.EXECUTION_FAILED,
    "edit_unread_file": OK,
    "read_first": OK,
    "permission_denied": None,  # the client's permission rules said no: not the call's failure
}


def _block(raw: dict) -> A.ContentBlock:
    return msgspec.convert(raw, A.ContentBlock)


@pytest.mark.parametrize("path", CAPTURED, ids=lambda p: p.stem)
def test_tool_results_captured_from_the_real_cli_are_classified(path: Path) -> None:
    captured = json.loads(path.read_text())
    assert set(captured) == set(EXPECTED), "re-run capture.py: the cases changed"
    for case, raw in captured.items():
        block = _block(raw)
        assert classify(bool(block.is_error), result_text(block)) == EXPECTED[case], (case, raw["content"])


@pytest.mark.parametrize("text", [
    "The user doesn't want to proceed with this tool use. The tool use was rejected (eg. if it was a file edit, "
    "the new_string was NOT written to the file). STOP what you are doing and wait for the user to tell you how to "
    "proceed.",
    "[Request interrupted by user for tool use]",
])
def test_a_users_rejection_is_no_signal(text: str) -> None:
    assert classify(True, text) is None


def test_the_results_in_the_claude_code_fixtures_are_found_and_all_fine() -> None:
    for path in sorted(glob.glob(str(FIXTURES / "*.json"))):
        _, results = taken(decoded(Path(path).read_bytes()))
        # Every turn after tools answers them, also 2.1.197's, whose tool_results are followed by a system message.
        assert (results is not None) == ("_after_" in path), path
        assert results is None or (results.ids and results.others is None), path


def test_only_the_last_message_is_read_for_results() -> None:
    earlier = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_old", "content": "x",
                                             "is_error": True}]}
    req = request(messages=[{"role": "user", "content": "go"},
                            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_old", "name": "Read",
                                                               "input": {}}]},
                            earlier,
                            {"role": "assistant", "content": "ok"},
                            {"role": "user", "content": "thanks"}])
    assert taken(decoded(req))[1] is None


def _remembered(i: int, calls: int = 2) -> Remembered:
    ids = [f"toolu_{i}_{n}" for n in range(calls)]
    return Remembered(f"req_{i}", float(i), "r", "m", None, None, None, ids, ["Read"] * calls)


def test_the_memory_keeps_the_newest_answers_by_their_first_call_and_answers_each_once() -> None:
    memory = ToolCallMemory(3)
    for i in range(5):
        memory.remember(_remembered(i))
    assert len(memory) == 3
    assert memory.take(["toolu_0_1", "toolu_0_0"]) is UNKNOWN  # the oldest was dropped
    assert memory.take(["toolu_4_1"]) is UNKNOWN  # an answer is found by its first call's id only
    found = memory.take(["toolu_4_1", "toolu_4_0"])  # results in any order
    assert found.request_id == "req_4" and found.ids == ["toolu_4_0", "toolu_4_1"]
    assert memory.take(["toolu_4_0"]) is None  # answered already: a retry is not counted twice


def test_the_memory_remembers_an_answer_in_the_same_step_that_finds_the_one_before() -> None:
    memory = ToolCallMemory(3)
    memory.remember(_remembered(1))
    found = memory.take(["toolu_1_0", "toolu_1_1"], remember=_remembered(2))
    assert found.request_id == "req_1"
    assert memory.take(["toolu_2_0"]).request_id == "req_2"
    assert memory.take(["toolu_9_0"], remember=_remembered(3)) is UNKNOWN and len(memory) == 3
    assert memory.take(["toolu_3_0"]).request_id == "req_3"


def test_a_turns_results_keep_an_outcome_only_for_those_that_are_not_plain_successes() -> None:
    turn = A.Message(role="user", content=[
        A.ContentBlock(type="tool_result", tool_use_id="toolu_a", content="fine"),
        A.ContentBlock(type="tool_result", tool_use_id="toolu_b", is_error=True,
                       content="<tool_use_error>InputValidationError: Read failed</tool_use_error>"),
        A.ContentBlock(type="tool_result", tool_use_id="toolu_c", is_error=True, content="Exit code 1"),
        A.ContentBlock(type="text", text="go on"),
    ])
    answered = tool_results(turn)
    assert answered.ids == ["toolu_a", "toolu_b", "toolu_c"]
    assert [(i, outcome) for i, outcome, _ in answered.others] == [("toolu_b", V.CLIENT_REFUSED),
                                                                   ("toolu_c", V.EXECUTION_FAILED)]
    assert [(i, outcome) for i, outcome, _ in answered.outcomes()] == [
        ("toolu_a", OK), ("toolu_b", V.CLIENT_REFUSED), ("toolu_c", V.EXECUTION_FAILED)]
    twice = Answered(["toolu_a", "toolu_b", "toolu_a"], [("toolu_a", V.EXECUTION_FAILED, "Exit code 1")])
    assert sorted(outcome for _, outcome, _ in twice.outcomes()) == sorted([OK, OK, V.EXECUTION_FAILED])  # both kept
    fine = tool_results(A.Message(role="user", content=[A.ContentBlock(type="tool_result", tool_use_id="toolu_a")]))
    assert fine.ids == ["toolu_a"] and fine.others is None
    assert tool_results(A.Message(role="user", content=[A.ContentBlock(type="text", text="hi")])) is None


def test_ids_attributed_from_the_store_are_not_attributed_again() -> None:
    memory = ToolCallMemory(3)
    memory.remember(_remembered(1))
    memory.answered(["toolu_1_0"])
    assert memory.take(["toolu_1_0"]) is None


class Sink:
    def __init__(self) -> None:
        self.scored: list[AuditRecord] = []
        self.late: list[V.LateSignal] = []

    def verdicts(self, records: list[AuditRecord]) -> None:
        for record in records:
            self.verdict(record)

    def verdict(self, record: AuditRecord) -> None:
        self.scored.append(record)

    def late_signal(self, signal: V.LateSignal) -> None:
        self.late.append(signal)


def _answer(assessor: Assessor, request_id: str, tool_uses: list[tuple[str, str, dict]]):
    record = AuditRecord(time=1_800_000_000.0, request_id=request_id, route="r1", upstream_model="gpt-x",
                         shape="tools|8k|json|nothink")
    return record, assessed(assessor, record, json_evidence(MessageReply(text=None, tool_uses=tool_uses)))


def _next_turn(assessor: Assessor, request_id: str, results: list[dict]):
    req = request(messages=[{"role": "user", "content": "go"},
                            {"role": "assistant", "content": [{"type": "text", "text": "."}]},
                            {"role": "user", "content": results}])
    record = AuditRecord(time=1_800_000_001.0, request_id=request_id, route="r1")
    return record, assessed(assessor, record, json_evidence(MessageReply(text="done"), req))


def _result(tool_use_id: str, text: str, is_error: bool = True) -> dict:
    return {"type": "tool_result", "tool_use_id": tool_use_id, "content": text, "is_error": is_error}


REFUSED = "<tool_use_error>InputValidationError: Read failed due to the following issue:\nThe required parameter `file_path` is missing</tool_use_error>"


def test_a_refusal_in_the_next_turn_is_attributed_to_the_call_that_made_the_id() -> None:
    assessor, sink = Assessor(), Sink()
    assessor.add_sink(sink)
    first, _ = _answer(assessor, "req_1", [("toolu_a", "Read", {"file_path": "/x"}), ("toolu_b", "Bash", {"command": "false"})])
    assert (first.tool_calls, first.verdict) == (2, V.PASS)
    _, followups = _next_turn(assessor, "req_2", [_result("toolu_a", REFUSED), _result("toolu_b", "Exit code 1")])
    assert [(u.request_id, u.column, u.value) for u in followups.signals] == [("req_1", "next_turn", V.CLIENT_REFUSED)]
    # One signal about the call, its strongest outcome's, however many of its tool calls failed.
    assert [(s.request_id, s.kind, s.tool_name, s.route, s.model, s.shape) for s in sink.late] == [
        ("req_1", V.CLIENT_REFUSED, "Read", "r1", "gpt-x", "tools|8k|json|nothink")]
    assert [r.request_id for r in sink.scored] == ["req_1", "req_2"]


def test_a_refusal_drained_with_the_call_it_refuses_is_scored_after_that_calls_verdict() -> None:
    # The writer hands a whole drain over at once (assess_drain) and the sinks get its verdicts together; a next turn
    # drained with the call it answers must still find that call scored, or the refusal would be lost to the scores.
    from dragoman.config.loop import ShiftSettings
    from dragoman.loop.scores import Scoreboard

    assessor, board, sink = Assessor(), Scoreboard(), Sink()
    board.configure(ShiftSettings(), {}, frozenset())
    assessor.add_sink(board)
    assessor.add_sink(sink)
    call = AuditRecord(time=1.0, request_id="req_1", route="r1", upstream_model="gpt-x", shape="tools|8k|json|nothink")
    turn = AuditRecord(time=2.0, request_id="req_2", route="r1", upstream_model="gpt-x", shape="tools|8k|json|nothink")
    answer = json_evidence(MessageReply(text=None, tool_uses=[("toolu_a", "Read", {"file_path": "/x"})]))
    req = request(messages=[{"role": "user", "content": "go"},
                            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_a", "name": "Read",
                                                               "input": {"file_path": "/x"}}]},
                            {"role": "user", "content": [_result("toolu_a", REFUSED)]}])
    next_turn = json_evidence(MessageReply(text="done"), req)
    followups = assessor.assess_drain([(call, assessor.examine(call, answer)), (turn, assessor.examine(turn, next_turn))])
    # req_1 is in the drain, not written yet: its next_turn is set on it, and nothing is left to update after
    assert followups == [None, None] and call.next_turn == V.CLIENT_REFUSED
    assert [r.request_id for r in sink.scored] == ["req_1", "req_2"] and [s.kind for s in sink.late] == [V.CLIENT_REFUSED]
    [row] = board.rows()
    assert (row["calls"], row["passed"], row["score"]) == (2, 1, 0.5)  # req_1 refused, req_2 passed


def test_the_join_through_the_store_finds_another_workers_calls(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'audit.db'}")
    worker_a, worker_b = Assessor(), Assessor()
    worker_a.attach(store)
    worker_b.attach(store)
    record, followups = _answer(worker_a, "req_1", [("toolu_a", "Read", {"file_path": "/x"})])
    store.write([record], followups)  # as worker A's writer does: the record and its tool-call rows together
    _, followups = _next_turn(worker_b, "req_2", [_result("toolu_a", "Exit code 2")])
    store.write([], followups)
    [row] = store.query_requests({"request_id": "req_1"})
    assert row["next_turn"] == V.EXECUTION_FAILED
    # A weaker signal later never overwrites a stronger one; a stronger one does.
    from dragoman.observe.stores import SignalUpdate
    store.update_signal(SignalUpdate("req_1", "next_turn", OK))
    assert store.query_requests({"request_id": "req_1"})[0]["next_turn"] == V.EXECUTION_FAILED
    store.update_signal(SignalUpdate("req_1", "next_turn", V.CLIENT_REFUSED, (OK, V.EXECUTION_FAILED)))
    assert store.query_requests({"request_id": "req_1"})[0]["next_turn"] == V.CLIENT_REFUSED
    store.close()


class _CountingStore:
    """A store that only counts what the Assessor asks of it."""

    def __init__(self) -> None:
        self.lookups = 0

    def find_tool_calls(self, ids):
        self.lookups += 1
        return []


def test_a_lone_process_joins_in_memory_and_neither_writes_nor_looks_up_tool_call_rows() -> None:
    # One worker on SQLite: no other process can receive the next turn, so the store has nothing to add.
    store = _CountingStore()
    assessor = Assessor()
    assessor.attach(store, shared=False)
    first, followups = _answer(assessor, "req_1", [("toolu_a", "Read", {"file_path": "/x"})])
    assert followups is None  # no tool_calls rows to write beside the record
    _, followups = _next_turn(assessor, "req_2", [_result("toolu_a", REFUSED), _result("toolu_elsewhere", REFUSED)])
    assert [(u.request_id, u.value) for u in followups.signals] == [("req_1", V.CLIENT_REFUSED)]
    assert store.lookups == 0 and not assessor._waiting  # an id it never made is no one's here: not waited for


def test_a_process_sharing_its_store_writes_its_calls_and_looks_up_the_ids_it_did_not_make() -> None:
    store = _CountingStore()
    assessor = Assessor()
    assessor.attach(store)  # shared: a worker of --workers N, or on PostgreSQL
    _, followups = _answer(assessor, "req_1", [("toolu_a", "Read", {"file_path": "/x"})])
    assert [row.tool_use_id for row in followups.tool_calls] == ["toolu_a"]
    _next_turn(assessor, "req_2", [_result("toolu_elsewhere", REFUSED)])
    assert store.lookups == 1 and (None, "toolu_elsewhere") in assessor._waiting  # by (client key, id)


def test_a_result_whose_call_is_not_in_the_store_yet_waits_for_it_then_gives_up(tmp_path: Path) -> None:
    now = [1_800_000_000.0]
    store = open_store(f"sqlite:///{tmp_path / 'audit.db'}")
    worker_a, worker_b = Assessor(), Assessor(VerdictSettings(join_wait=5.0), clock=lambda: now[0])
    worker_a.attach(store)
    worker_b.attach(store)
    record, a_followups = _answer(worker_a, "req_1", [("toolu_a", "Read", {"file_path": "/x"})])
    _, b_followups = _next_turn(worker_b, "req_2", [_result("toolu_a", REFUSED), _result("toolu_never", REFUSED)])
    assert b_followups is None  # worker A's batch is not written yet: nothing to attribute
    store.write([record], a_followups)
    now[0] += 1.0
    later = worker_b.pending()
    # A refusal found through the store is claimed there at once (so that a retry reaching another worker is not
    # attributed again): the record holds it, and nothing is left for the batch.
    assert later is None or not later.signals
    assert store.query_requests({"request_id": "req_1"})[0]["next_turn"] == V.CLIENT_REFUSED
    now[0] += 10.0
    assert worker_b.pending() is None or not worker_b.pending().signals
    assert not worker_b._waiting  # the id nobody made was given up after join_wait
    store.close()


def test_late_signals_from_other_threads_reach_the_sinks_and_the_judge_column() -> None:
    assessor, sink = Assessor(), Sink()
    assessor.add_sink(sink)
    assessor.report_late(V.LateSignal(request_id="req_9", kind=V.JUDGE_FAIL, time=1.0, route="r1"))
    followups = assessor.pending()
    assert [(u.request_id, u.column, u.value) for u in followups.signals] == [("req_9", "judge", "fail")]
    assert [s.kind for s in sink.late] == [V.JUDGE_FAIL]


def test_a_failing_sink_costs_neither_the_other_sinks_nor_the_verdict() -> None:
    class Broken(Sink):
        def verdict(self, record: AuditRecord) -> None:
            raise RuntimeError("bug")

    assessor, good = Assessor(), Sink()
    assessor.add_sink(Broken())
    assessor.add_sink(good)
    record, _ = _answer(assessor, "req_1", [("toolu_a", "Nope", {})])
    assert record.verdict == V.FAIL and [r.request_id for r in good.scored] == ["req_1"]


@pytest.mark.parametrize(("store", "worker", "shares"), [
    ("sqlite:///./audit.db", False, False),  # one worker on SQLite: the embedded default, alone
    ("sqlite:///./audit.db", True, True),  # a worker of --workers N
    ("postgresql://gw@db:5432/dragoman", False, True),  # other instances
])
def test_a_gateway_shares_its_calls_through_the_store_when_another_process_may_get_the_next_turn(
        monkeypatch: pytest.MonkeyPatch, store: str, worker: bool, shares: bool) -> None:
    from dragoman.config.load import parse_config
    from dragoman.server import Gateway

    # The store as deploy/ sets it: from the environment, not the file.
    monkeypatch.setenv("DRAGOMAN_AUDIT_STORE", store)
    config = parse_config("routes: [{name: a, upstream: {provider: openai, model: x, "
                          "endpoint: 'http://127.0.0.1:9/v1/chat/completions'}}]\n", "gw.yaml", {})
    assert Gateway(config, worker=worker).shares_store() is shares


def _written_next_turns(tmp_path: Path, same_drain: bool) -> dict[str, str | None]:
    """req_1 makes two calls, req_2 answers them (one refused); both through a real AuditWriter into SQLite, either
    drained together or req_1 written before req_2 arrives."""
    from dragoman.observe.writer import AuditWriter
    from tests.waiting import wait_for

    store = open_store(f"sqlite:///{tmp_path / 'audit.db'}")
    assessor = Assessor()
    assessor.attach(store, shared=False)  # a lone process: the join is its memory's
    writer = AuditWriter(store, batch=2 if same_drain else 1, flush_interval=3600.0, assess=assessor.assess_drain,
                         assess_pending=assessor.pending)
    first, first_examined = _answer_examined(assessor, "req_1")
    writer.submit(first, first_examined)
    if not same_drain:
        wait_for(lambda: writer.written == 1, 10, "the answer's record written")
    second, second_examined = _next_turn_examined(assessor, "req_2", [_result("toolu_a", REFUSED),
                                                                      _result("toolu_b", "fine", is_error=False)])
    writer.submit(second, second_examined)
    assert writer.close()
    reopened = open_store(f"sqlite:///{tmp_path / 'audit.db'}")
    return {row["request_id"]: row["next_turn"] for row in reopened.query_requests({})}


def _answer_examined(assessor: Assessor, request_id: str):
    record = AuditRecord(time=1_800_000_000.0, request_id=request_id, route="r1", upstream_model="gpt-x",
                         shape="tools|8k|json|nothink")
    answer = MessageReply(text=None, tool_uses=[("toolu_a", "Read", {"file_path": "/x"}),
                                                ("toolu_b", "Read", {"file_path": "/y"})])
    return record, assessor.examine(record, json_evidence(answer))


def _next_turn_examined(assessor: Assessor, request_id: str, results: list[dict]):
    req = request(messages=[{"role": "user", "content": "go"},
                            {"role": "assistant", "content": [{"type": "text", "text": "."}]},
                            {"role": "user", "content": results}])
    record = AuditRecord(time=1_800_000_001.0, request_id=request_id, route="r1")
    return record, assessor.examine(record, json_evidence(MessageReply(text="done"), req))


@pytest.mark.parametrize("same_drain", [True, False], ids=["drained-together", "answer-written-first"])
def test_the_next_turns_outcome_reaches_the_stored_answer_whether_or_not_it_was_written_yet(
        tmp_path: Path, same_drain: bool) -> None:
    # Drained together, the answer's row is inserted with its next_turn set (no UPDATE after); written first, the
    # next turn's drain updates it. The store reads the same either way.
    assert _written_next_turns(tmp_path, same_drain) == {"req_1": V.CLIENT_REFUSED, "req_2": None}
