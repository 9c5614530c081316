"""Visitor activities exported as CRM tasks (``activity_tasks``): opt-in, filtered by type, once per
activity even across a crash between the CRM create and the bookkeeping, and waiting (with a sync
error) while the lead is deleted — through the CLI on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from renkei.connector import config as c
from renkei.connector.adapters.builtin import BuiltinCrmAdapter
from renkei.connector.service import SyncService
from renkei.core.activities import ActivityType, AssetKind
from renkei.core.sync.ports import WriteResult
from renkei.crm.service import CrmService
from renkei.marketing.activity_service import NewActivity, record_activities
from renkei.store.db import get_engine
from renkei.store.tables_sync import sync_activity_task, sync_audit, sync_watermark
from tests.cli_helpers import cli


def linked_lead(last: str, email: str) -> tuple[str, int]:
    """A CRM lead and the prospect the next cycle makes for it (linked)."""
    lead = cli("crm", "create", "Lead", "--set", f"LastName={last}", "--set", "Company=商事",
               "--set", f"Email={email}")["id"]  # fmt: skip
    cli("sync", "run")
    pid = next(p["id"] for p in cli("prospect", "list", "--limit", "1000") if p["email"] == email)
    return str(lead), int(pid)


def activities(pid: int, *items: tuple[ActivityType, AssetKind | None, str]) -> list[int]:
    with get_engine().begin() as conn:
        return record_activities(conn, [NewActivity(code, kind, prospect_id=pid, details=details)
                                        for code, kind, details in items], dt.datetime.now(dt.UTC))  # fmt: skip


def tasks() -> list[tuple[str, str]]:
    rows = cli("crm", "query", "SELECT Subject, WhoId FROM Task ORDER BY Subject")["records"]
    return [(r["Subject"], r["WhoId"]) for r in rows]


FORM = (ActivityType.SUCCESS, AssetKind.FORM, "資料請求フォーム")
PAGE = (ActivityType.VISIT, AssetKind.VISIT, "3 page views")
CLICK = (ActivityType.CLICK, AssetKind.EMAIL_TRACKER, "https://example.jp/seminar")
FILE = (ActivityType.VIEW, AssetKind.FILE, "catalog.pdf")


def test_enabled_new_activities_become_tasks_once(org: Path) -> None:
    lead, pid = linked_lead("佐藤", "sato@example.jp")
    activities(pid, FORM, PAGE, CLICK)
    cli("connector", "set", "activity_tasks.enabled", "true")
    first = cli("sync", "run")
    assert first["counts"]["tasks"] == {"created": 2, "adopted": 0, "failed": 0}
    assert tasks() == [("[MA] Click (Email Tracker): https://example.jp/seminar", lead),
                       ("[MA] Success (Form): 資料請求フォーム", lead)]  # fmt: skip
    task = cli("crm", "query", "SELECT Status, Priority, ActivityDate, OwnerId, Description, pi__activity_id__c "
               "FROM Task WHERE Subject LIKE '%Form%'")["records"][0]  # fmt: skip
    owner = cli("crm", "get", "Lead", lead)["OwnerId"]
    assert (task["Status"], task["Priority"], task["ActivityDate"], task["OwnerId"]) == (
        "Completed", "Normal", dt.datetime.now(ZoneInfo("Asia/Tokyo")).date().isoformat(), owner)  # fmt: skip
    assert task["Description"].startswith("Success (Form): 資料請求フォーム\n")
    assert f"of prospect {pid}" in task["Description"]
    # a second cycle creates nothing; a new activity makes one more
    assert cli("sync", "run")["counts"]["tasks"] == {"created": 0, "adopted": 0, "failed": 0}
    assert len(tasks()) == 2
    activities(pid, FILE)
    assert cli("sync", "run")["counts"]["tasks"]["created"] == 1
    assert len(tasks()) == 3
    with get_engine().connect() as conn:  # audited like every connector write
        audited = conn.execute(sa.select(sync_audit.c.run_id, sync_audit.c.action, sync_audit.c.reason).where(
            sync_audit.c.object == "Task").order_by(sync_audit.c.id)).all()  # fmt: skip
        assert [(r.run_id, r.action) for r in audited] == [(first["runId"], "create")] * 2 + [
            (first["runId"] + 2, "create")
        ]
        assert audited[-1].reason.endswith(": [MA] View (File): catalog.pdf")
        rows = conn.execute(sa.select(sync_activity_task.c.state, sa.func.count()).group_by(
            sync_activity_task.c.state)).all()  # fmt: skip
    assert rows == [("done", 3)]


def test_disabled_exports_nothing(org: Path) -> None:
    _, pid = linked_lead("鈴木", "suzuki@example.jp")
    activities(pid, FORM, CLICK)
    result = cli("sync", "run")
    assert "tasks" not in result["counts"]
    assert tasks() == []


def test_types_choose_which_activities(org: Path) -> None:
    lead, pid = linked_lead("高橋", "takahashi@example.jp")
    activities(pid, FORM, CLICK, FILE)
    cli("connector", "set", "activity_tasks.types", "[2/File]")
    cli("connector", "set", "activity_tasks.subject_prefix", "'MA: '")
    cli("connector", "set", "activity_tasks.enabled", "true")
    cli("sync", "run")
    assert tasks() == [("MA: View (File): catalog.pdf", lead)]


def test_activities_of_an_unlinked_prospect_wait_for_the_link(org: Path) -> None:
    cli("connector", "set", "activity_tasks.enabled", "true")
    pid = int(cli("prospect", "create", "--set", "email=ito@example.jp", "--set", "lastName=伊藤")["id"])
    activities(pid, FORM)
    cli("sync", "run")
    assert tasks() == []  # marketing-only prospect: nothing on the CRM side to hang it on
    lead = cli("crm", "create", "Lead", "--set", "LastName=伊藤", "--set", "Company=商事",
               "--set", "Email=ito@example.jp")["id"]  # fmt: skip
    run = cli("sync", "run")  # links the prospect by email, then brings its recent activities
    assert run["counts"]["tasks"]["created"] == 1
    assert tasks() == [("[MA] Success (Form): 資料請求フォーム", lead)]


class CrashAfterCreate(BuiltinCrmAdapter):
    """Creates the tasks in the CRM, then dies before the connector can remember them."""

    def create(self, object_name: str, records: Sequence[Mapping[str, Any]]) -> list[WriteResult]:
        results = super().create(object_name, records)
        if object_name == "Task":
            raise RuntimeError("killed between the CRM create and the bookkeeping")
        return results


class CrashBeforeCreate(BuiltinCrmAdapter):
    def create(self, object_name: str, records: Sequence[Mapping[str, Any]]) -> list[WriteResult]:
        if object_name == "Task":
            raise RuntimeError("the CRM went away before the create")
        return super().create(object_name, records)


@pytest.mark.parametrize("crash", [CrashAfterCreate, CrashBeforeCreate])
def test_a_crash_around_the_create_never_duplicates_nor_loses(
    org: Path, crash: type[BuiltinCrmAdapter]
) -> None:
    lead, pid = linked_lead("田中", "tanaka@example.jp")
    activities(pid, FORM, CLICK)
    cli("connector", "set", "activity_tasks.enabled", "true")
    engine = get_engine()
    cfg = c.load(org)
    with pytest.raises(RuntimeError):
        SyncService(engine, cfg, adapter=crash(CrmService(engine))).run()
    with engine.connect() as conn:
        assert conn.execute(sa.select(sync_activity_task.c.state)).scalars().all() == ["pending", "pending"]
    after = cli("sync", "run")["counts"]["tasks"]
    expected = {CrashAfterCreate: {"created": 0, "adopted": 2, "failed": 0},
                CrashBeforeCreate: {"created": 2, "adopted": 0, "failed": 0}}[crash]  # fmt: skip
    assert after == expected
    assert sorted(tasks()) == [("[MA] Click (Email Tracker): https://example.jp/seminar", lead),
                               ("[MA] Success (Form): 資料請求フォーム", lead)]  # fmt: skip
    assert cli("sync", "run")["counts"]["tasks"] == {"created": 0, "adopted": 0, "failed": 0}
    assert len(tasks()) == 2


def test_a_deleted_lead_records_an_error_and_the_activity_waits(org: Path) -> None:
    lead, pid = linked_lead("渡辺", "watanabe@example.jp")
    cli("connector", "set", "activity_tasks.enabled", "true")
    activities(pid, FORM)
    cli("crm", "delete", "Lead", lead)
    run = cli("sync", "run")  # the prospect goes to the recycle bin, its activity has no live lead
    assert run["counts"]["tasks"] == {"created": 0, "adopted": 0, "failed": 1}
    errors = [e for e in cli("sync", "errors") if e["object"] == "Task"]
    assert [(e["kind"], e["code"], e["record_id"], e["prospect_id"]) for e in errors] == [
        ("not_found", "ENTITY_IS_DELETED", lead, pid)]  # fmt: skip
    assert tasks() == []
    # not retried while its error is open; the lead undeleted and the error retried, it goes
    assert cli("sync", "run")["counts"]["tasks"]["failed"] == 0
    cli("crm", "undelete", "Lead", lead)
    cli("sync", "run")
    cli("sync", "retry", "--all")
    assert tasks() == [("[MA] Success (Form): 資料請求フォーム", lead)]
    assert [e for e in cli("sync", "errors") if e["object"] == "Task"] == []


def test_config_check_wants_the_task_key_field(
    cli_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "connector.yaml"
    monkeypatch.setenv("RENKEI_CONNECTOR_CONFIG", str(config))
    cli("connector", "init", "--no-install-package")
    cli("connector", "set", "activity_tasks.enabled", "true")
    checked = cli("config", "check", ok=False)  # exits 1 (errors) and says why
    assert checked["ok"] is False
    assert [e["code"] for e in checked["errors"] if "activity_tasks" in e["message"]] == ["UNKNOWN_CRM_FIELD"]
    run = cli("sync", "run")  # the export refuses to run without its key rather than risk duplicates
    assert run["counts"]["tasks"] == {"created": 0, "adopted": 0, "failed": 1}
    assert [e["code"] for e in run["errors"]] == ["INVALID_FIELD"]
    cli("connector", "install-package")
    after = cli("config", "check", ok=False)["errors"]
    assert [e for e in after if "activity_tasks" in e["message"]] == []


def test_an_activity_committed_after_a_later_one_is_not_skipped(org: Path) -> None:
    lead, pid = linked_lead("小林", "kobayashi@example.jp")
    cli("connector", "set", "activity_tasks.enabled", "true")
    late, seen = activities(pid, FORM, CLICK)
    with get_engine().begin() as conn:  # as if the run saw `seen` while `late` was still uncommitted
        conn.execute(sync_activity_task.insert().values(activity_id=seen, prospect_id=pid, who_id=lead, state="done",
                                                        attempts=1, updated_at=dt.datetime.now(dt.UTC)))  # fmt: skip
        conn.execute(sync_watermark.insert().values(source="ma:activity_task", modstamp=dt.datetime.now(dt.UTC),
                                                    record_id=str(seen)))  # fmt: skip
    assert cli("sync", "run")["counts"]["tasks"]["created"] == 1
    assert tasks() == [("[MA] Success (Form): 資料請求フォーム", lead)]
    assert cli("sync", "run")["counts"]["tasks"]["created"] == 0


def test_activity_date_is_the_orgs_day() -> None:
    """ActivityDate is the activity's date in the org's time zone: 2026-04-01 23:30 UTC is 1 April in
    UTC but 2 April in Tokyo; an 08:00 JST visit (23:00 UTC the day before) is that morning's."""
    import datetime as dt

    from renkei.connector.config import ActivityTasks
    from renkei.connector.tasks_export import task_values

    def day(at: dt.datetime, zone: str = "Asia/Tokyo") -> str:
        activity = {
            "id": 1,
            "prospectId": 1,
            "type": 4,
            "typeName": "Form",
            "details": "資料請求",
            "createdAt": at,
        }
        return str(
            task_values(activity, ActivityTasks(timezone=zone), "00Q5g0000000001EAA", None, None)[
                "ActivityDate"
            ]
        )

    assert day(dt.datetime(2026, 4, 1, 23, 30, tzinfo=dt.UTC)) == "2026-04-02"
    assert day(dt.datetime(2026, 4, 1, 23, 30, tzinfo=dt.UTC), "UTC") == "2026-04-01"
    assert day(dt.datetime(2026, 4, 1, 14, 59)) == "2026-04-01"  # naive = UTC (as stored): 23:59 in Tokyo
    with pytest.raises(ValueError, match="unknown time zone"):
        ActivityTasks(timezone="Tokyo/Japan")
