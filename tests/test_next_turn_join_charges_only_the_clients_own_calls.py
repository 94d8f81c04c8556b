"""The next-turn join charges a refusal to the call that made the refused id, once, and to no other: results whose
ids the answer did not make charge no one; an answer refused in several results is one signal; a turn from another
client key is not joined to the call; a retried next turn that reaches another worker (through the shared store)
is not attributed again; and a turn full of made-up ids costs one store query and cannot push other turns' waiting
ids out. Against the Assessor and a real SQLite store, as the writer threads of two workers run them."""

from __future__ import annotations

from pathlib import Path

import pytest

from dragoman.config.loop import VerdictSettings
from dragoman.loop import verdict as V
from dragoman.loop.assess import MAX_LOOKED_UP, WAIT_PER_REQUEST, Assessor, Examined
from dragoman.loop.next_turn import OK, Answered, Remembered
from dragoman.observe.record import AuditRecord
from dragoman.observe.stores import AuditStore, open_store

REFUSED = "<tool_use_error>InputValidationError: Read failed</tool_use_error>"


class Sink:
    def __init__(self) -> None:
        self.late: list[tuple[str, str, str | None]] = []

    def verdicts(self, records: list[AuditRecord]) -> None:
        pass

    def late_signal(self, signal: V.LateSignal) -> None:
        self.late.append((signal.request_id, signal.kind, signal.tool_name))


def _worker(store: AuditStore | None = None, **settings: float) -> tuple[Assessor, Sink]:
    assessor, sink = Assessor(VerdictSettings(**settings)), Sink()
    if store is not None:
        assessor.attach(store)  # shared: a worker of --workers N
    assessor.add_sink(sink)
    return assessor, sink


def _answer(request_id: str, ids: list[str], key: str | None = None) -> tuple[AuditRecord, Examined]:
    record = AuditRecord(time=1_800_000_000.0, request_id=request_id, key_id=key, route="r1", verdict=V.PASS)
    names = ["Read", "Bash", "Edit"][: len(ids)]
    return record, Examined(None, Remembered(request_id, record.time, "r1", "m", "s", None, "v1", ids, names, key))


def _turn(request_id: str, results: list[tuple[str, str | None]], key: str | None = None
          ) -> tuple[AuditRecord, Examined]:
    """A next turn: (tool_use_id, outcome) per result, OK for a plain success."""
    others = [(i, outcome, REFUSED if outcome == V.CLIENT_REFUSED else "Exit code 1")
              for i, outcome in results if outcome != OK]
    answered = Answered([i for i, _ in results], others or None)
    return AuditRecord(time=1_800_000_001.0, request_id=request_id, key_id=key), Examined(answered, None)


def _run(assessor: Assessor, item: tuple[AuditRecord, Examined], store: AuditStore | None = None):
    (followups,) = assessor.assess_drain([item])
    if store is not None:
        store.write([item[0]], followups)  # as the worker's writer does, after the drain is assessed
    return followups


@pytest.fixture
def store(tmp_path: Path):
    opened = open_store(f"sqlite:///{tmp_path / 'audit.db'}")
    yield opened
    opened.close()


def _next_turn_of(store: AuditStore, request_id: str) -> str | None:
    return store.query_requests({"request_id": request_id})[0]["next_turn"]


def test_results_whose_ids_the_answer_did_not_make_charge_no_one() -> None:
    assessor, sink = _worker()
    _run(assessor, _answer("req_1", ["toolu_mine"]))
    made_up = [(f"toolu_x{i}", V.CLIENT_REFUSED) for i in range(200)]
    followups = _run(assessor, _turn("req_2", [("toolu_mine", OK), *made_up]))
    assert sink.late == []
    assert [(u.request_id, u.value) for u in followups.signals] == [("req_1", OK)]


def test_an_answer_refused_in_several_results_is_one_signal_about_its_call() -> None:
    assessor, sink = _worker()
    _run(assessor, _answer("req_1", ["toolu_a", "toolu_b", "toolu_c"]))
    _run(assessor, _turn("req_2", [("toolu_a", V.EXECUTION_FAILED), ("toolu_b", V.CLIENT_REFUSED),
                                   ("toolu_c", V.CLIENT_REFUSED), ("toolu_b", V.CLIENT_REFUSED)]))
    assert sink.late == [("req_1", V.CLIENT_REFUSED, "Bash")]  # the strongest outcome, its first result's tool


def test_a_turn_from_another_client_key_is_not_joined_to_the_call() -> None:
    assessor, sink = _worker()
    _run(assessor, _answer("req_a", ["toolu_a"], key="key_a"))
    _run(assessor, _turn("req_b2", [("toolu_a", V.CLIENT_REFUSED)], key="key_b"))
    assert sink.late == []  # another client's turn charges nothing, and does not use up the join
    _run(assessor, _turn("req_a2", [("toolu_a", V.CLIENT_REFUSED)], key="key_a"))
    assert sink.late == [("req_a", V.CLIENT_REFUSED, "Read")]


def test_a_turn_from_another_client_key_is_not_joined_through_the_store(store: AuditStore) -> None:
    worker_1, sink_1 = _worker(store)
    worker_2, sink_2 = _worker(store)
    _run(worker_1, _answer("req_a", ["toolu_a"], key="key_a"), store)
    _run(worker_2, _turn("req_b2", [("toolu_a", V.CLIENT_REFUSED)], key="key_b"), store)
    assert sink_2.late == [] and _next_turn_of(store, "req_a") is None
    _run(worker_2, _turn("req_a2", [("toolu_a", V.CLIENT_REFUSED)], key="key_a"), store)
    assert sink_2.late == [("req_a", V.CLIENT_REFUSED, "Read")] and sink_1.late == []
    assert _next_turn_of(store, "req_a") == V.CLIENT_REFUSED


@pytest.mark.parametrize("first", ["through the store", "from memory"])
def test_a_retried_next_turn_reaching_the_other_worker_is_attributed_once(store: AuditStore, first: str) -> None:
    worker_1, sink_1 = _worker(store)  # gave the answer: joins from memory
    worker_2, sink_2 = _worker(store)  # did not: joins through the store
    _run(worker_1, _answer("req_1", ["toolu_a", "toolu_b"]), store)
    turn = [("toolu_a", V.CLIENT_REFUSED), ("toolu_b", OK)]
    order = [worker_2, worker_1] if first == "through the store" else [worker_1, worker_2]
    for n, worker in enumerate(order):
        _run(worker, _turn(f"req_2_try{n}", turn), store)  # the client's retry of the same request
    assert sink_1.late + sink_2.late == [("req_1", V.CLIENT_REFUSED, "Read")]
    assert _next_turn_of(store, "req_1") == V.CLIENT_REFUSED


class _Counting:
    """The real store, counting the look-ups of tool-call rows."""

    def __init__(self, store: AuditStore) -> None:
        self.store, self.lookups = store, 0

    def find_tool_calls(self, ids):
        self.lookups += 1
        return self.store.find_tool_calls(ids)

    def __getattr__(self, name: str):
        return getattr(self.store, name)


def test_a_turn_of_made_up_ids_costs_one_query_and_keeps_other_turns_waiting(store: AuditStore) -> None:
    now = [1_800_000_000.0]
    counting = _Counting(store)
    worker_1, _ = _worker(store)
    worker_2, sink_2 = Assessor(clock=lambda: now[0]), Sink()
    worker_2.attach(counting)  # type: ignore[arg-type]
    worker_2.add_sink(sink_2)
    record, examined = _answer("req_1", ["toolu_a"])
    (rows_of_req_1,) = worker_1.assess_drain([(record, examined)])  # worker 1's batch: not written yet
    _run(worker_2, _turn("req_2", [("toolu_a", V.CLIENT_REFUSED)]))  # comes first: waits for the rows
    flood = [(f"toolu_made_up_{i}", V.CLIENT_REFUSED) for i in range(20 * MAX_LOOKED_UP)]
    for n in range(3):
        counting.lookups = 0
        _run(worker_2, _turn(f"req_flood_{n}", flood))
        assert counting.lookups == 1
    assert len(worker_2._waiting) == 1 + 3 * WAIT_PER_REQUEST and (None, "toolu_a") in worker_2._waiting
    store.write([record], rows_of_req_1)
    now[0] += 1.0
    worker_2.pending()
    assert sink_2.late == [("req_1", V.CLIENT_REFUSED, "Read")]
