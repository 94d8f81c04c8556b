"""Prometheus metrics: one AuditRecord moves every metric; /metrics parses; labels stay bounded; several
worker processes add up in multiprocess mode, in a directory of the gateway's own."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from dragoman.observe import metrics as metrics_module
from dragoman.observe.metrics import Metrics
from dragoman.observe.record import AuditRecord, Candidate


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _fallback_record() -> AuditRecord:
    return AuditRecord(
        time=0.0, request_id="req_1", route="backup", provider="openai", status=200, stream=True,
        candidates=[Candidate(route="primary", upstream="azure", outcome="error", status=503),
                    Candidate(route="backup", upstream="openai", outcome="ok", status=200)],
        latency_total_ms=1200.0, ttfb_ms=300.0, overhead_ms=1.5, input_tokens=1000, output_tokens=200,
        cache_read_tokens=5000, reasoning_tokens=50, cost_usd=0.003875,
    )


def test_one_record_moves_every_metric() -> None:
    metrics = Metrics()
    metrics.observe_request(_fallback_record())
    metrics.observe_request(AuditRecord(time=0.0, request_id="req_2", route="backup", provider="openai", status=529,
                                        error_type="overloaded_error", latency_total_ms=50.0))
    metrics.set_breaker_state("azure", "open")
    metrics.audit_dropped(3)
    metrics.audit_queue_depth(17)
    s = _samples(metrics)
    req = "dragoman_requests_total"
    assert s[(req, (("error_type", "none"), ("route", "backup"), ("status", "200"), ("upstream", "openai")))] == 1
    assert s[(req, (("error_type", "overloaded_error"), ("route", "backup"), ("status", "529"), ("upstream", "openai")))] == 1
    assert s[("dragoman_errors_total", (("error_type", "overloaded_error"), ("route", "backup"), ("upstream", "openai")))] == 1
    assert s[("dragoman_fallbacks_total", (("from_route", "primary"), ("to_route", "backup")))] == 1
    assert s[("dragoman_upstream_attempts_total", (("outcome", "error"), ("route", "primary"), ("upstream", "azure")))] == 1
    assert s[("dragoman_tokens_total", (("kind", "input"), ("route", "backup")))] == 1000
    assert s[("dragoman_tokens_total", (("kind", "cache_read"), ("route", "backup")))] == 5000
    assert s[("dragoman_tokens_total", (("kind", "reasoning"), ("route", "backup")))] == 50
    assert abs(s[("dragoman_cost_usd_total", (("route", "backup"),))] - 0.003875) < 1e-12
    assert s[("dragoman_request_duration_seconds_count", (("route", "backup"),))] == 2
    assert s[("dragoman_request_duration_seconds_bucket", (("le", "1.0"), ("route", "backup")))] == 1
    assert s[("dragoman_time_to_first_byte_seconds_sum", (("route", "backup"),))] == 0.3
    assert s[("dragoman_overhead_seconds_bucket", (("le", "0.0025"), ("route", "backup")))] == 1
    assert s[("dragoman_breaker_state", (("upstream", "azure"),))] == 2
    assert s[("dragoman_audit_dropped_total", ())] == 3
    assert s[("dragoman_audit_queue_depth", ())] == 17


def test_labels_are_bounded_and_carry_no_ids() -> None:
    metrics = Metrics(max_label_values=3)
    for i in range(10):
        metrics.observe_request(AuditRecord(time=0.0, request_id=f"req_{i}", route=f"route-{i}", status=200))
    routes = {dict(labels)["route"] for (name, labels) in _samples(metrics) if name == "dragoman_requests_total"}
    assert routes == {"route-0", "route-1", "route-2", "other"}
    body = metrics.render()[0].decode()
    assert "req_" not in body


def test_verdicts_from_an_upstream_naming_a_new_model_each_answer_are_all_counted_in_bounded_memory() -> None:
    from dragoman.observe import metrics as M

    metrics = Metrics(max_label_values=3)
    n = M._CHILDREN_KEPT + 500
    for i in range(n):
        metrics.observe_request(AuditRecord(time=0.0, request_id=f"req_{i}", route="r", status=200,
                                            upstream_model=f"model-{i}", verdict="pass", verdict_kinds=[]))
    counted = {labels: value for (name, labels), value in _samples(metrics).items()
               if name == "dragoman_verdicts_total"}
    assert sum(counted.values()) == n  # every verdict counted, also those resolved again after a clear
    assert {dict(labels)["model"] for labels in counted} == {"model-0", "model-1", "model-2", "other"}
    # the resolved children are kept by the raw model name: bounded, not one per name ever seen
    assert len(metrics._verdicts) <= M._CHILDREN_KEPT and len(metrics._loop["children"]) <= M._CHILDREN_KEPT


def test_loop_model_labels_do_not_crowd_upstream_names_out() -> None:
    """Model names come from upstream answers or clients' requests: however many the loop scores, an upstream
    first seen after them keeps its own label on the breaker and attempt metrics."""
    metrics = Metrics(max_label_values=3)
    for i in range(5):
        metrics.loop_score("passthrough", f"client-model-{i}", "tools|8k|json|nothink", 1.0)
    metrics.set_breaker_state("gpt-5-main", "open")
    s = _samples(metrics)
    assert s[("dragoman_breaker_state", (("upstream", "gpt-5-main"),))] == 2
    models = {dict(labels)["model"] for (name, labels) in s if name == "dragoman_loop_score"}
    assert models == {"client-model-0", "client-model-1", "client-model-2", "other"}


def test_two_registries_do_not_collide() -> None:
    Metrics().observe_request(_fallback_record())
    assert _samples(Metrics()).get(("dragoman_audit_dropped_total", ())) == 0


_WORKER = textwrap.dedent("""
    import sys
    from dragoman.observe.metrics import Metrics
    from dragoman.observe.record import AuditRecord
    m = Metrics()
    assert m.multiprocess
    for i in range(int(sys.argv[1])):
        m.observe_request(AuditRecord(time=0.0, request_id="r", route="r1", status=200, output_tokens=10))
    m.flush()  # what the audit writer does after each batch
    m.audit_dropped(1)
    if sys.argv[2] == "render":
        sys.stdout.write(m.render()[0].decode())
""")


def test_multiprocess_mode_sums_worker_processes(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prom"))
    metrics_module.claim_multiprocess_dir(3)
    env = dict(os.environ)
    for n in (2, 3):
        subprocess.run([sys.executable, "-c", _WORKER, str(n), "quiet"], env=env, check=True, timeout=60)
    out = subprocess.run([sys.executable, "-c", _WORKER, "4", "render"], env=env, check=True, timeout=60,
                         capture_output=True, text=True).stdout
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(out) for s in f.samples}
    key = ("dragoman_requests_total", (("error_type", "none"), ("route", "r1"), ("status", "200"), ("upstream", "none")))
    assert samples[key] == 9
    assert samples[("dragoman_tokens_total", (("kind", "output"), ("route", "r1")))] == 90
    assert samples[("dragoman_audit_dropped_total", ())] == 3


_SCORING_WORKER = textwrap.dedent("""
    import sys
    from dragoman.observe.metrics import Metrics
    m = Metrics()
    if sys.argv[1] == "render":
        sys.stdout.write(m.render()[0].decode())
    else:  # a live worker: its score counts until it exits (its live gauges go with it)
        m.loop_score("w", "gpt-5", "tools|8k|json|nothink", float(sys.argv[1]))
        print("scored", flush=True)
        sys.stdin.read()
""")


def test_with_several_workers_the_loop_score_is_the_lowest_workers(tmp_path, monkeypatch) -> None:
    """A regression one worker's window sees already is not hidden behind the others' good scores: an alert on
    `dragoman_loop_score < x` fires when any worker scores below x."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prom"))
    metrics_module.claim_multiprocess_dir(3)
    env = dict(os.environ)
    workers = [subprocess.Popen([sys.executable, "-c", _SCORING_WORKER, score], env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True) for score in ("0.95", "0.4", "0.9")]
    try:
        for worker in workers:
            assert worker.stdout is not None and worker.stdout.readline() == "scored\n"
        out = subprocess.run([sys.executable, "-c", _SCORING_WORKER, "render"], env=env, check=True, timeout=60,
                             capture_output=True, text=True).stdout
    finally:
        for worker in workers:
            worker.communicate(timeout=60)
    scores = [s.value for f in text_string_to_metric_families(out) for s in f.samples if s.name == "dragoman_loop_score"]
    assert scores == [0.4]


def test_single_worker_needs_no_multiprocess_dir(monkeypatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv("prometheus_multiproc_dir", raising=False)
    assert metrics_module.claim_multiprocess_dir(1) is None


def test_each_gateway_claims_a_fresh_directory_inside_the_operators_and_touches_nothing_else(tmp_path,
                                                                                              monkeypatch) -> None:
    base = tmp_path / "prom"
    (base / "another-gateway").mkdir(parents=True)
    foreign = [base / "counter_1.db", base / "another-gateway" / "counter_2.db"]
    for path in foreign:
        path.write_bytes(b"live values of someone else")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(base))
    first = metrics_module.claim_multiprocess_dir(1)  # one process too: the variable is set, so it is shared
    assert first is not None and Path(first).parent == base and os.listdir(first) == []
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == first
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(base))  # a second gateway, started with the same variable
    second = metrics_module.claim_multiprocess_dir(3)
    assert second is not None and Path(second).parent == base and second != first
    metrics_module.release_multiprocess_dir(first)
    assert not Path(first).exists() and Path(second).is_dir()
    assert all(path.read_bytes() == b"live values of someone else" for path in foreign)


def test_values_another_gateway_wrote_are_not_summed(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prom"))
    metrics_module.claim_multiprocess_dir(2)
    subprocess.run([sys.executable, "-c", _WORKER, "3", "quiet"], env=dict(os.environ), check=True, timeout=60)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prom"))
    metrics_module.claim_multiprocess_dir(2)  # the second gateway
    out = subprocess.run([sys.executable, "-c", _WORKER, "0", "render"], env=dict(os.environ), check=True, timeout=60,
                         capture_output=True, text=True).stdout
    names = {s.name for f in text_string_to_metric_families(out) for s in f.samples if s.value}
    assert "dragoman_requests_total" not in names and "dragoman_audit_dropped_total" in names


def test_the_old_lower_case_variable_is_the_operators_directory_too(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.setenv("prometheus_multiproc_dir", str(tmp_path / "old"))
    path = metrics_module.claim_multiprocess_dir(2)
    assert path is not None and Path(path).parent == tmp_path / "old"
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == path


def test_workers_without_the_variable_get_a_temp_directory_that_release_removes(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv("prometheus_multiproc_dir", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    path = metrics_module.claim_multiprocess_dir(2)
    assert path is not None and Path(path).parent == tmp_path
    (Path(path) / "counter_7.db").write_bytes(b"x")
    metrics_module.release_multiprocess_dir(path)
    assert list(tmp_path.iterdir()) == []


_DYING_WORKER = textwrap.dedent("""
    import os
    from dragoman.observe.metrics import Metrics
    from dragoman.observe.record import AuditRecord
    m = Metrics()
    m.observe_request(AuditRecord(time=0.0, request_id="r", route="r1", status=200))
    m.flush()
    m.loop_score("w", "gpt-5", "tools|8k|json|nothink", 0.1)
    m.set_breaker_state("openai-prod", "open")
    m.audit_queue_depth(5000)
    print(os.getpid(), flush=True)
    os._exit(0)  # no exit hooks: a worker killed, or stopped by the signal uvicorn re-raises
""")


def test_forgetting_a_dead_worker_drops_its_live_gauges_and_keeps_its_counts(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prom"))
    metrics_module.claim_multiprocess_dir(2)
    env = dict(os.environ)
    pid = int(subprocess.run([sys.executable, "-c", _DYING_WORKER], env=env, check=True, timeout=60,
                             capture_output=True, text=True).stdout)

    def scrape() -> dict[str, float]:
        out = subprocess.run([sys.executable, "-c", _SCORING_WORKER, "render"], env=env, check=True, timeout=60,
                             capture_output=True, text=True).stdout
        return {s.name: s.value for f in text_string_to_metric_families(out) for s in f.samples}

    before = scrape()
    assert before["dragoman_loop_score"] == 0.1 and before["dragoman_breaker_state"] == 2
    metrics_module.forget_worker(pid)
    after = scrape()
    assert "dragoman_loop_score" not in after and "dragoman_breaker_state" not in after
    assert after.get("dragoman_audit_queue_depth", 0) == 0
    assert after["dragoman_requests_total"] == 1


PASTED_KEY = "sk-ant-api03-PastedKeyAbCdEf0123456789"


def _verdict(metrics: Metrics, model: str | None, route: str = "r") -> None:
    metrics.observe_request(AuditRecord(time=0.0, request_id="req_v", route=route, status=200,
                                        upstream_model=model, verdict="pass", verdict_kinds=[]))


def _model_labels(metrics: Metrics, family: str = "dragoman_verdicts_total") -> set[str]:
    return {dict(labels)["model"] for (name, labels) in _samples(metrics) if name == family}


def test_a_model_name_holding_a_key_is_never_a_label() -> None:
    metrics = Metrics()
    _verdict(metrics, PASTED_KEY)
    metrics.observe_late_signal("r", f"my-{PASTED_KEY}", "execution_failed")
    metrics.loop_score("r", PASTED_KEY, "tools", 0.5)
    assert PASTED_KEY not in metrics.render()[0].decode()
    assert _model_labels(metrics) == _model_labels(metrics, "dragoman_late_signals_total") == {"other"}
    assert _model_labels(metrics, "dragoman_loop_score") == {"other"}


def test_an_overlong_model_name_reads_other() -> None:
    metrics = Metrics()
    _verdict(metrics, "m" * 129)
    _verdict(metrics, "m" * 128)
    assert _model_labels(metrics) == {"other", "m" * 128}


def test_junk_model_names_never_take_the_label_of_a_configured_or_priced_model() -> None:
    """A client on a route without `model:` sends a new name each request: once the shared slots are full,
    a model the config names and one the price table knows still have labels of their own."""
    metrics = Metrics(max_label_values=3)
    metrics.configure_models(["qwen3-coder", None])
    for i in range(10):
        _verdict(metrics, f"junk-{i}")
    _verdict(metrics, "qwen3-coder")
    _verdict(metrics, "gpt-5-2025-08-07")  # the upstream's echo of a configured gpt-5: priced
    _verdict(metrics, "junk-late")
    assert _model_labels(metrics) == {"junk-0", "junk-1", "junk-2", "other", "qwen3-coder", "gpt-5-2025-08-07"}


def test_a_model_configured_by_a_reload_gets_its_own_label() -> None:
    metrics = Metrics(max_label_values=1)
    _verdict(metrics, "first-junk")
    _verdict(metrics, "local-llama")  # not configured yet, and the one slot is taken
    assert _model_labels(metrics) == {"first-junk", "other"}
    metrics.configure_models(["local-llama"])
    _verdict(metrics, "local-llama")
    assert _model_labels(metrics) == {"first-junk", "other", "local-llama"}


def test_model_label_decisions_are_kept_in_bounded_memory() -> None:
    from dragoman.observe import metrics as M

    metrics = Metrics(max_label_values=3)
    for i in range(M._MODEL_DECISIONS_KEPT + 100):
        _verdict(metrics, f"name-{i}")
    _verdict(metrics, "name-1")  # decided again after a clear: the same label
    assert len(metrics._model.decided) <= M._MODEL_DECISIONS_KEPT
    assert _model_labels(metrics) == {"name-0", "name-1", "name-2", "other"}
