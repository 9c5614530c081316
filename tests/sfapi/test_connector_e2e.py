"""The connector syncs the small demo org through the Salesforce adapter over HTTP (TLS, on
127.0.0.1), and its API calls for N changed records stay within ⌈N/200⌉ + 3 per direction,
counted from the server's request log."""

from __future__ import annotations

import math
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from renkei.connector import config as connector_config
from renkei.connector.adapters.salesforce import SalesforceAdapter
from renkei.connector.service import SyncService
from renkei.crm.service import CrmService
from renkei.marketing.demo import load_demo
from renkei.marketing.service import ProspectService
from renkei.sfapi.usage import ApiUsage, LoggedRequest
from renkei.store import tables as t

from .conftest import Server
from .test_contract import salesforce_client


def calls_since(server: Server, before: int) -> list[LoggedRequest]:
    return ApiUsage(server.engine).log()[before:]


def is_read(entry: LoggedRequest) -> bool:
    # The adapter's Composite calls carry only GET subrequests (change reads, describes).
    return entry.method == "GET" or entry.path.split("?")[0].endswith("/composite")


def reads(log: list[LoggedRequest]) -> list[LoggedRequest]:
    return [e for e in log if is_read(e)]


def writes(log: list[LoggedRequest]) -> list[LoggedRequest]:
    return [e for e in log if not is_read(e)]


def budget(n: int) -> int:
    """The issue's budget: API calls for N changed records, per direction."""
    return math.ceil(n / 200) + 3


def test_demo_org_syncs_over_http_within_the_call_budget(
    marketing_engine: Engine, sqlite_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = sqlite_server.engine
    load_demo(org, "small", clock=sqlite_server.clock)  # the org behind renkei serve
    engine = marketing_engine
    load_demo(engine, "small", clock=sqlite_server.clock)  # the same demo: its prospects are ours
    client = salesforce_client(sqlite_server, monkeypatch)
    config = connector_config.parse(connector_config.DEFAULT_YAML)
    sync = SyncService(engine, config, clock=sqlite_server.clock, adapter=SalesforceAdapter(client))

    first = sync.run()
    assert first["status"] == "done", first
    with engine.connect() as conn:
        linked = conn.execute(
            sa.select(sa.func.count()).where(t.prospect.c.salesforceId.is_not(None))
        ).scalar_one()
    assert linked > 0

    # A quiet cycle: nothing changed, so one call (the change reads of all five objects in one
    # Composite request) and no writes.
    sqlite_server.clock.advance(seconds=5)
    before = len(ApiUsage(org).log())
    quiet = sync.run()
    log = calls_since(sqlite_server, before)
    assert [(e.method, e.path) for e in log] == [("POST", "/services/data/v60.0/composite")]
    assert quiet["counts"]["crm"] == {"create": 0, "update": 0, "delete": 0}

    # CRM → marketing: N leads change in the CRM.
    sqlite_server.clock.advance(seconds=5)
    crm = CrmService(org, clock=sqlite_server.clock)
    lead_ids = [r["Id"] for r in crm.query("SELECT Id FROM Lead ORDER BY Id LIMIT 250")["records"]]
    crm.update_many("Lead", [{"Id": i, "Title": "営業部長"} for i in lead_ids])
    before = len(ApiUsage(org).log())
    pulled = sync.run()
    log = calls_since(sqlite_server, before)
    n = len(lead_ids)
    report: dict[str, Any] = {
        "calls": [(e.method, e.path.split("?")[0], e.records) for e in log],
        "run": pulled,
    }
    assert pulled["counts"]["ma"]["update"] > 0, report
    assert writes(log) == [], report
    assert len(log) <= budget(n), report

    # marketing → CRM: N linked prospects change in renkei.
    sqlite_server.clock.advance(seconds=5)
    prospects = ProspectService(engine, clock=sqlite_server.clock)
    with engine.connect() as conn:
        pids = [int(i) for i in conn.execute(
            sa.select(t.prospect.c.id).where(t.prospect.c.salesforceId.is_not(None)).order_by(t.prospect.c.id).limit(250)
        ).scalars()]  # fmt: skip
    for pid in pids:
        prospects.update(pid, {"comments": "展示会で名刺交換"})  # comments → Description: ma_wins
    sqlite_server.clock.advance(seconds=5)
    before = len(ApiUsage(org).log())
    pushed = sync.run()
    log = calls_since(sqlite_server, before)
    report = {"calls": [(e.method, e.path.split("?")[0], e.records) for e in log], "run": pushed}
    assert pushed["counts"]["crm"]["update"] == len(pids), report
    assert len(log) <= budget(len(pids)), report

    # marketing → CRM creations: N new prospects assigned to a user linked to a CRM user become
    # leads (create_in_crm: on_assignment). Reads: the change reads, the email look-ups (is the
    # person already a lead or contact?) five queries to a Composite call, the created leads read
    # back; writes: the creates, 200 a call.
    sqlite_server.clock.advance(seconds=5)
    with engine.connect() as conn:
        owner = conn.execute(
            sa.select(t.ma_user.c.id)
            .where(t.ma_user.c.salesforceId.is_not(None))
            .order_by(t.ma_user.c.id)
            .limit(1)
        ).scalar_one()
    new = 450
    for i in range(new):
        prospects.create({"email": f"newlead{i}@example.jp", "lastName": f"新規{i}", "company": "新規商事",
                          "assignedToId": owner})  # fmt: skip
    sqlite_server.clock.advance(seconds=5)
    before = len(ApiUsage(org).log())
    created = sync.run()
    log = calls_since(sqlite_server, before)
    report = {"calls": [(e.method, e.path.split("?")[0], e.records) for e in log], "run": created}
    assert created["counts"]["crm"]["create"] == new, report
    assert len(reads(log)) <= budget(new), report
    assert len(writes(log)) <= budget(new), report
