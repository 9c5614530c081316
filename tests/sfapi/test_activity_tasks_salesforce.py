"""The task export against a Salesforce org (another renkei's REST API over TLS): the same Task
records, written through the Salesforce adapter, found by ``pi__activity_id__c`` after a crash."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from renkei.cli.cmd_sync import _install
from renkei.clock import SystemClock
from renkei.connector import config as c
from renkei.connector import settings
from renkei.connector.service import SyncService
from renkei.core.activities import ActivityType, AssetKind
from renkei.core.sync.ports import WriteResult
from renkei.crm.service import CrmService
from renkei.marketing.activity_service import NewActivity, record_activities
from renkei.store.db import get_engine
from tests.cli_helpers import cli

from .conftest import Server
from .test_cli_salesforce_crm import connector_yaml  # noqa: F401  (the fixture)


def test_activities_become_tasks_in_the_org_once(connector_yaml: Path, sqlite_server: Server) -> None:  # noqa: F811
    org = CrmService(sqlite_server.engine)
    _install(sqlite_server.engine)  # the org has the package's fields, Task.pi__activity_id__c included
    lead = org.create("Lead", {"LastName": "田中", "Company": "田中商事", "Email": "tanaka@example.jp"})
    cli("sync", "run")
    pid = int(cli("prospect", "get", "tanaka@example.jp")["id"])
    with get_engine().begin() as conn:
        record_activities(conn, [NewActivity(ActivityType.SUCCESS, AssetKind.FORM, prospect_id=pid, details="資料請求"),
                                 NewActivity(ActivityType.CLICK, AssetKind.EMAIL_TRACKER, prospect_id=pid,
                                             details="https://example.jp/a")], dt.datetime.now(dt.UTC))  # fmt: skip
    cli("connector", "set", "activity_tasks.enabled", "true")
    adapter = _CrashAfterCreate(settings.adapter_for(c.load(connector_yaml), SystemClock()))
    with pytest.raises(RuntimeError):
        SyncService(get_engine(), c.load(connector_yaml), adapter=adapter).run()
    assert cli("sync", "run")["counts"]["tasks"] == {"created": 0, "adopted": 2, "failed": 0}
    assert cli("sync", "run")["counts"]["tasks"] == {"created": 0, "adopted": 0, "failed": 0}
    rows = org.query("SELECT Subject, WhoId FROM Task ORDER BY Subject")["records"]
    assert [(r["Subject"], r["WhoId"]) for r in rows] == [
        ("[MA] Click (Email Tracker): https://example.jp/a", lead), ("[MA] Success (Form): 資料請求", lead)]  # fmt: skip


class _CrashAfterCreate:
    """The org's adapter, dying after the org created the tasks and before the connector remembers them."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def create(self, object_name: str, records: Sequence[Mapping[str, Any]]) -> list[WriteResult]:
        results: list[WriteResult] = self.inner.create(object_name, records)
        if object_name == "Task":
            raise RuntimeError("killed between the CRM create and the bookkeeping")
        return results
