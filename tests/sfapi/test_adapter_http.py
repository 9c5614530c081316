"""The Salesforce adapter's client against ``renkei serve`` over TLS, counted from the server's
request log, with and without injected faults."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest

from renkei.connector.adapters.salesforce import (
    SalesforceClient,
    SalesforceConfig,
    check_connection,
    parse_sf_datetime,
)
from renkei.sfapi.usage import ApiUsage
from renkei.testing.faults import Fault, FaultInjectingTransport, FaultKind

from .conftest import Server


def make_client(
    server: Server, monkeypatch: pytest.MonkeyPatch, transport: httpx.BaseTransport | None = None
) -> SalesforceClient:  # noqa: E501
    monkeypatch.setenv("RENKEI_TEST_TOKEN", server.token)
    config = SalesforceConfig(
        instance_url=server.base,
        token={"env": "RENKEI_TEST_TOKEN"},
        ca_file=server.ca,
        backoff_seconds=0.0,  # type: ignore[arg-type]
    )
    return SalesforceClient(config, transport=transport, sleep=lambda _s: None)


def composite_calls(server: Server) -> list[tuple[str, int]]:
    return [(e.method, e.records) for e in ApiUsage(server.engine).log() if "composite/sobjects" in e.path]


def test_writes_in_batches_of_200_and_reads_changes_by_watermark(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client(server, monkeypatch)
    rows = [{"LastName": f"W{i:03d}", "Company": "Batch"} for i in range(450)]
    results = client.create_many("Lead", rows)
    assert [r["success"] for r in results] == [True] * 450
    assert composite_calls(server) == [("POST", 200), ("POST", 200), ("POST", 50)]

    first, done = client.changes_since("Lead", ["LastName"], None, limit=5000)
    assert done and sorted(r["LastName"] for r in first) == [f"W{i:03d}" for i in range(450)]
    last = first[-1]
    watermark = (parse_sf_datetime(last["SystemModstamp"]), last["Id"])
    ids = [r["id"] for r in results]
    server.clock.advance(seconds=1)
    client.update_many("Lead", [{"Id": i, "Title": "Updated"} for i in ids[:10]])
    client.delete_many(ids[10:15])
    changed, done = client.changes_since("Lead", ["LastName", "Title"], watermark)
    assert done
    edited = {r["Id"]: (r["Title"], r["IsDeleted"]) for r in changed if r["Id"] in ids[:15]}
    assert edited == {i: ("Updated", False) for i in ids[:10]} | {i: (None, True) for i in ids[10:15]}
    # The others come again only because they share the watermark's millisecond (at-least-once).
    again = [r for r in changed if r["Id"] not in ids[:15]]
    assert {(parse_sf_datetime(r["SystemModstamp"]), r["Title"]) for r in again} <= {(watermark[0], None)}
    assert client.budget is not None and client.budget.used == len(ApiUsage(server.engine).log())


def test_faults_are_retried_and_every_record_lands_once(
    sqlite_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    inner = httpx.HTTPTransport(verify=ssl.create_default_context(cafile=sqlite_server.ca))
    faults = FaultInjectingTransport(
        inner,
        [  # composite calls: 1 partial, 2-3 retries of its lock failures fail again, 5 and 7 fail
            Fault(FaultKind.PARTIAL_COLLECTION, "composite/sobjects", at=frozenset({1})),
            Fault(FaultKind.UNAVAILABLE, "composite/sobjects", at=frozenset({2, 5})),
            Fault(FaultKind.TIMEOUT, "composite/sobjects", at=frozenset({3})),
            Fault(FaultKind.LOCK, "composite/sobjects", at=frozenset({7})),
            Fault(FaultKind.TOO_MANY_REQUESTS, "/query", at=frozenset({1})),
            Fault(FaultKind.REQUEST_LIMIT, "/sobjects/Lead/describe", at=frozenset({1})),
        ],
    )
    client = make_client(sqlite_server, monkeypatch, transport=faults)
    rows = [{"LastName": f"F{i:03d}", "Company": "Faults"} for i in range(430)]
    results = client.create_many("Lead", rows)
    assert all(r["success"] for r in results) and len({r["id"] for r in results}) == 430
    assert client.describe("Lead")["name"] == "Lead"
    records = client.query("SELECT Id, LastName FROM Lead WHERE Company = 'Faults'")
    assert sorted(r["LastName"] for r in records) == [f"F{i:03d}" for i in range(430)]
    kinds = {k for k, _, _ in faults.injected}
    assert kinds == set(FaultKind) - {FaultKind.SERVER_ERROR}
    # The server saw each record created exactly once, whatever was retried.
    assert sum(n for m, n in composite_calls(sqlite_server) if m == "POST") == 430


def test_connection_check_reports_access_and_budget(
    sqlite_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client(sqlite_server, monkeypatch)
    checks = check_connection(client, {"Lead": ["Email", "Company", "Score__c"], "Contact": ["Email"]})
    assert [(c.name, c.ok) for c in checks] == [
        ("credentials", True), ("api_version", True), ("object:Lead", False), ("object:Contact", True), ("api_budget", True),
    ]  # fmt: skip
    assert checks[2].message == "Lead: missing fields Score__c"
    assert checks[4].message == "14999 of 15000 daily API requests remain (reserve 0)"
    monkeypatch.setenv("RENKEI_TEST_TOKEN", "wrong")
    bad = SalesforceClient(client.config)
    assert [(c.name, c.ok) for c in check_connection(bad, {})] == [("credentials", False)]


def test_connector_test_command_against_renkei_serve(
    sqlite_server: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import json

    from typer.testing import CliRunner

    from renkei.cli import app

    monkeypatch.setenv("RENKEI_TEST_TOKEN", sqlite_server.token)
    monkeypatch.setenv("RENKEI_CONNECTOR_CONFIG", str(tmp_path / "connector.yaml"))  # absent: the defaults
    cfg = tmp_path / "salesforce.yaml"
    cfg.write_text(
        f"instance_url: {sqlite_server.base}\nflow: token\ntoken: {{env: RENKEI_TEST_TOKEN}}\nca_file: {sqlite_server.ca}\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["connector", "test", "--salesforce", str(cfg), "--json"])
    data = json.loads(result.output)
    # The default mappings include AE's package fields (pi__…), which the bare org lacks.
    assert [(ch["name"], ch["ok"]) for ch in data["checks"]][:2] == [
        ("credentials", True),
        ("api_version", True),
    ]
    assert result.exit_code == (0 if data["ok"] else 1)
    assert sqlite_server.token not in result.output
    missing = CliRunner().invoke(app, ["connector", "test", "--salesforce", str(tmp_path / "none.yaml")])
    assert missing.exit_code == 1


def test_changes_many_and_read_many_equal_the_per_object_calls_in_one_call_each(
    sqlite_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from renkei.connector.adapters.salesforce import SalesforceAdapter
    from renkei.core.sync.ports import Cursor

    client = make_client(sqlite_server, monkeypatch)
    adapter = SalesforceAdapter(client)
    leads = client.create_many("Lead", [{"LastName": f"M{i}", "Company": "Many"} for i in range(30)])
    contacts = client.create_many("Contact", [{"LastName": f"C{i}"} for i in range(20)])
    cursors: dict[str, Cursor | None] = {"Lead": None, "Contact": None, "Account": None}
    singly = {obj: adapter.changes(obj, cursor, limit=10) for obj, cursor in cursors.items()}
    before = len(ApiUsage(sqlite_server.engine).log())
    together = adapter.changes_many(cursors, limit=10)
    lead_ids = [str(r["id"]) for r in leads[:25]]
    contact_ids = [str(r["id"]) for r in contacts]
    read_together = adapter.read_many({"Lead": lead_ids, "Contact": contact_ids})
    log = ApiUsage(sqlite_server.engine).log()[before:]
    assert together == singly
    assert [len(together[o].records) for o in cursors] == [30, 20, 0]  # one write = one stamp: never cut
    assert read_together == {
        "Lead": adapter.read("Lead", lead_ids),
        "Contact": adapter.read("Contact", contact_ids),
    }
    assert [e.path.split("?")[0].rsplit("/", 1)[-1] for e in log[:2]] == ["composite", "composite"]
    client.close()


def test_query_many_answers_each_query_five_to_a_composite_call(
    sqlite_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from renkei.connector.adapters.salesforce import SalesforceAdapter

    client = make_client(sqlite_server, monkeypatch)
    adapter = SalesforceAdapter(client)
    client.create_many("Lead", [{"LastName": f"Q{i}", "Company": f"Q{i % 7}社", "Email": f"q{i}@example.jp"}
                                for i in range(40)])  # fmt: skip
    soqls = [f"SELECT Id, Email FROM Lead WHERE Company = 'Q{k}社' ORDER BY Id" for k in range(7)]
    singly = [adapter.query(s) for s in soqls]
    before = len(ApiUsage(sqlite_server.engine).log())
    together = adapter.query_many(soqls)
    log = ApiUsage(sqlite_server.engine).log()[before:]
    assert together == singly and sum(len(r) for r in together) == 40
    assert [e.path.split("?")[0].rsplit("/", 1)[-1] for e in log] == ["composite", "composite"]  # 5 + 2
    client.close()
