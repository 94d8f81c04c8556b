"""`dragoman logs` / `dragoman costs`: time parsing, table/CSV/JSON output, follow mode, the CLI entry and the
admin JSON API over the same store."""

from __future__ import annotations

import argparse
import csv
import io
import json

import msgspec
import pytest

from dragoman import admin_api, reports
from dragoman.config.observe import AuditSettings, ObserveSettings, TracingSettings
from dragoman.observe.record import AuditRecord
from dragoman.observe.stores import open_store

NOW = 1_795_000_000.0  # 2026-11-18T11:06:40Z


def _record(i: int, **fields) -> AuditRecord:
    base = {"time": NOW - 3600 + i, "request_id": f"req_{i:04d}", "developer": "alice", "repo": "shop", "route": "gpt5",
                "upstream_model": "gpt-5", "status": 200, "latency_total_ms": 1234.6, "ttfb_ms": 210.2, "input_tokens": 1000,
                "output_tokens": 100, "cost_usd": 0.00225}
    base.update(fields)
    return AuditRecord(**base)


@pytest.fixture
def store(tmp_path):
    s = open_store(f"sqlite:///{tmp_path}/r.db")
    s.write([_record(0), _record(1, developer="bob", repo="api", status=529, error_type="overloaded_error",
                                 cost_usd=None, output_tokens=0, input_tokens=0)])
    yield s
    s.close()


def test_parse_time_relative_and_absolute() -> None:
    assert reports.parse_time("7d", now=NOW) == NOW - 7 * 86400
    assert reports.parse_time("24h", now=NOW) == NOW - 86400
    assert reports.parse_time("30m", now=NOW) == NOW - 1800
    assert reports.parse_time("2026-11-01") == 1_793_491_200.0
    assert reports.parse_time("2026-11-01T10:00") == 1_793_491_200.0 + 36000
    assert reports.parse_time("2026-11-01T10:00+02:00") == 1_793_491_200.0 + 28800
    assert reports.parse_time(None) is None
    with pytest.raises(reports.ReportError, match="7d, 24h"):
        reports.parse_time("last tuesday")


def test_table_is_aligned_with_numbers_right() -> None:
    rows = [{"developer": "alice", "requests": 3, "cost_usd": 0.00875},
            {"developer": "bartholomew", "requests": 12, "cost_usd": None}]
    text = reports.format_table(rows, ("developer", "requests", "cost_usd"))
    assert text == (
        "developer    requests  cost_usd\n"
        "alice               3  0.008750\n"
        "bartholomew        12         -\n"
    )


def test_logs_table_csv_and_json(store) -> None:
    out = io.StringIO()
    assert reports.logs(store, out, since=NOW - 7200) == 2
    lines = out.getvalue().splitlines()
    assert lines[0].split()[:4] == ["time", "(UTC)", "developer", "repo"]
    assert "2026-11-18 10:06:40" in lines[1] and "alice" in lines[1] and "1235" in lines[1]  # oldest first
    assert "overloaded_error" in lines[2]

    out = io.StringIO()
    reports.logs(store, out, filters={"status": "5xx"}, fmt="csv")
    parsed = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [(r["developer"], r["status"], r["cost_usd"]) for r in parsed] == [("bob", "529", "")]

    out = io.StringIO()
    reports.logs(store, out, filters={"developer": "alice"}, fmt="json")
    [row] = json.loads(out.getvalue())
    assert row["request_id"] == "req_0000" and row["candidates"] == [] and row["stream"] is False


def test_costs_table_has_a_total_and_json_has_none(store) -> None:
    out = io.StringIO()
    reports.costs(store, out, by="developer", since=NOW - 86400)
    lines = out.getvalue().splitlines()
    assert lines[0].split()[:3] == ["developer", "requests", "errors"]
    assert lines[-1].split()[:3] == ["TOTAL", "2", "1"]
    out = io.StringIO()
    rows = reports.costs(store, out, by="repo", fmt="json")
    assert json.loads(out.getvalue()) == rows and {r["repo"] for r in rows} == {"shop", "api"}
    with pytest.raises(reports.ReportError):
        reports.costs(store, out, by="password")


def test_follow_prints_backlog_then_new_rows(store) -> None:
    out = io.StringIO()
    polls = iter([True, True, False])
    new_ids = iter([10, 11])

    def sleep(_: float) -> None:
        store.write([_record(next(new_ids), developer="carol")])

    printed = reports.follow(store, out, fmt="json", keep_going=lambda: next(polls), sleep=sleep)
    ids = [json.loads(line)["request_id"] for line in out.getvalue().splitlines()]
    assert ids == ["req_0000", "req_0001", "req_0010", "req_0011"] and printed == 4  # two writes, two rows


def test_cli_run_reads_the_store_from_flags(store, tmp_path) -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    reports.add_commands(sub)
    url = f"sqlite:///{tmp_path}/r.db"
    out = io.StringIO()
    args = parser.parse_args(["costs", "--store", url, "--by", "developer", "--since", "100000d", "--format", "csv"])
    assert reports.run(args, out) == 0
    assert out.getvalue().splitlines()[0] == "developer,requests,errors,cancelled,input_tokens,output_tokens,cache_read_tokens,reasoning_tokens,cost_usd,unpriced"
    out = io.StringIO()
    args = parser.parse_args(["logs", "--store", url, "--developer", "bob", "--format", "json"])
    assert reports.run(args, out) == 0
    assert [r["developer"] for r in json.loads(out.getvalue())] == ["bob"]
    assert reports.run(parser.parse_args(["logs", "--store", url, "--since", "someday"]), out) == 2


def test_store_url_precedence(tmp_path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text("audit:\n  store: postgresql://audit@db/dragoman\n"
                      "routes:\n  - {name: gpt5, upstream: {provider: openai, model: gpt-5, api_key_ref: openai}}\n")
    assert reports.store_url("sqlite:///x.db", str(config), {}) == "sqlite:///x.db"
    assert reports.store_url(None, str(config), {"DRAGOMAN_AUDIT_STORE": "sqlite:///env.db"}) == "sqlite:///env.db"
    assert reports.store_url(None, str(config), {}) == "postgresql://audit@db/dragoman"
    assert reports.store_url(None, None, {"XDG_DATA_HOME": "/data"}) == "sqlite:////data/dragoman/dragoman.db"
    home = {"HOME": "/home/ana", "XDG_DATA_HOME": "relative/is/ignored"}  # as the XDG Base Directory spec says
    assert reports.store_url(None, None, home) == "sqlite:////home/ana/.local/share/dragoman/dragoman.db"


def _api(store, admin_keys):  # noqa: ANN001, ANN202
    return admin_api.AdminApi(admin_api.Services(audit=store), admin_keys)


def test_admin_api_needs_an_admin_key(store) -> None:
    assert _api(store, []).handle("GET", "/api/requests", b"", [])[0] == 403
    assert _api(store, ["adm-1"]).handle("GET", "/api/requests", b"", [])[0] == 401
    assert _api(store, ["adm-1"]).handle("GET", "/api/requests", b"", [(b"x-api-key", b"adm-2")])[0] == 401
    status, body = _api(store, ["adm-1"]).handle("GET", "/api/requests", b"developer=bob",
                                                 [(b"authorization", b"Bearer adm-1")])
    assert status == 200 and [r["developer"] for r in msgspec.json.decode(body)["data"]] == ["bob"]


def test_admin_api_costs_and_bad_input(store) -> None:
    key = [(b"x-api-key", b"adm-1")]
    api = _api(store, ["adm-1"])
    status, body = api.handle("GET", "/api/costs", b"by=repo&since=100000d", key)
    assert status == 200 and {r["repo"] for r in msgspec.json.decode(body)["data"]} == {"shop", "api"}
    status, body = api.handle("GET", "/api/costs", b"by=nope", key)
    assert status == 400 and msgspec.json.decode(body)["error"]["type"] == "invalid_request_error"
    assert api.handle("GET", "/api/requests", b"limit=ten", key)[0] == 400
    assert api.handle("GET", "/api/other", b"", key)[0] == 404


def test_settings_defaults_and_strictness() -> None:
    settings = msgspec.convert({}, ObserveSettings)
    assert settings.audit.store is None and settings.metrics.enabled  # None: the user's data directory
    assert not settings.tracing.enabled and settings.admin.keys == ()
    with pytest.raises(msgspec.ValidationError, match="flush"):
        msgspec.convert({"audit": {"flush": 1}}, ObserveSettings)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"queue_size": 0}, AuditSettings)
    env = {"DRAGOMAN_AUDIT_STORE": "postgresql://x/y", "DRAGOMAN_ADMIN_KEYS": "a, b"}
    applied = msgspec.convert({"admin": {"keys": ["a"]}}, ObserveSettings).with_env(env)
    assert applied.audit.store == "postgresql://x/y" and applied.admin.keys == ("a", "b")
    assert "a" not in repr(applied.admin).replace("AdminSettings", "")
    assert msgspec.convert({"enabled": True, "otlp_endpoint": "http://c:4318"}, TracingSettings).enabled
