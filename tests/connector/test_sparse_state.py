"""Agreed values leave out the fields both sides leave empty (``sync_state.sparse``, sync_0004): such
a field reads as agreed empty ([None, None]) — not as never synced — in the judge, in
``sync explain``'s next cycle and in a rollback; a row that is not sparse (a link move's, a
rollback's, or one written before sync_0004) keeps "not there" as "never synced". Both the
per-record path and the bulk path write sparse rows. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from renkei.clock import FixedClock
from renkei.connector import config as c
from renkei.connector.service import SyncService, read_states
from renkei.crm.service import CrmService
from renkei.marketing.service import ProspectService
from renkei.store.tables_sync import sync_state

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)


def _config(threshold: int) -> c.ConnectorConfig:
    return c.parse(c.DEFAULT_YAML).model_copy(update={"bulk_create_threshold": threshold})


def _state(engine: Engine, pid: int) -> tuple[dict[str, Any], bool]:
    with engine.connect() as conn:
        values, _, sparse = read_states(conn, [pid])[pid]
    return values, sparse


def _synced_lead(engine: Engine, threshold: int) -> tuple[FixedClock, str, int]:
    """A lead without an industry (a most_recent field) synced into a new prospect."""
    clock = FixedClock(T0)
    crm = CrmService(engine, clock=clock)
    lid = crm.create("Lead", {"LastName": "伊藤", "Company": "伊藤商事", "Email": "ito@example.jp"})
    clock.advance(seconds=5)
    SyncService(engine, _config(threshold), clock=clock).run()
    [prospect] = ProspectService(engine, clock=clock).find_by_email("ito@example.jp")
    return clock, lid, int(prospect["id"])


def _marketing_then_crm_edit(engine: Engine, clock: FixedClock, lid: str, pid: int) -> CrmService:
    """Marketing fills the empty industry, then an unrelated and later edit of the CRM record."""
    clock.advance(seconds=5)
    ProspectService(engine, clock=clock).update(pid, {"industry": "製造"})
    clock.advance(seconds=5)
    crm = CrmService(engine, clock=clock)
    crm.update("Lead", lid, {"Phone": "03-0000-0000"})
    clock.advance(seconds=5)
    return crm


@pytest.mark.parametrize("threshold", [0, 1000], ids=["bulk", "per-record"])
def test_a_field_both_sides_leave_empty_is_stored_as_nothing_and_judged_as_agreed_empty(
    engine: Engine, threshold: int
) -> None:
    clock, lid, pid = _synced_lead(engine, threshold)
    values, sparse = _state(engine, pid)
    assert sparse and "industry" not in values and "fax" not in values and values["lastName"] == "伊藤"
    # only the marketing side changed the field since it was agreed empty, so its value goes to the
    # CRM (were the field taken as never synced, the newer CRM record's blank would win: no write)
    crm = _marketing_then_crm_edit(engine, clock, lid, pid)
    svc = SyncService(engine, _config(threshold), clock=clock)
    plan = svc.plan()
    [write] = [w for o in plan["operations"] for w in o.get("fields", []) if w["field"] == "industry"]
    assert (write["to"], write["evidence"]) == ("crm", "only_one_side_changed")
    svc.run()
    assert crm.get("Lead", lid)["Industry"] == "製造"
    values, sparse = _state(engine, pid)
    assert sparse and values["industry"] == "製造" and values["phone"] == "03-0000-0000"


def test_a_row_that_is_not_sparse_keeps_a_missing_field_as_never_synced(engine: Engine) -> None:
    clock, lid, pid = _synced_lead(engine, 1000)
    with engine.begin() as conn:  # as a link move or an older version leaves it
        conn.execute(sync_state.update().where(sync_state.c.prospect_id == pid).values(sparse=False))
    crm = _marketing_then_crm_edit(engine, clock, lid, pid)
    SyncService(engine, _config(1000), clock=clock).run()
    # first sync of the field: the CRM record changed last and its blank does not overwrite
    assert crm.get("Lead", lid)["Industry"] is None
    assert ProspectService(engine, clock=clock).get(pid)["industry"] == "製造"


def test_a_rollback_spells_the_empty_fields_out_and_forgets_only_what_it_restored(engine: Engine) -> None:
    clock, lid, pid = _synced_lead(engine, 1000)
    clock.advance(seconds=5)
    CrmService(engine, clock=clock).update("Lead", lid, {"Title": "部長"})  # crm_wins: written to marketing
    clock.advance(seconds=5)
    svc = SyncService(engine, _config(1000), clock=clock)
    run = svc.run()  # also the prospect's source "CRM" to the blank LeadSource (crm_wins_unless_blank)
    assert ProspectService(engine, clock=clock).get(pid)["jobTitle"] == "部長"
    assert svc.rollback(run["runId"])["restored"] == 2
    values, sparse = _state(engine, pid)
    assert (
        not sparse and "jobTitle" not in values and "source" not in values
    )  # never synced: first-sync rules
    assert "industry" in values and values["industry"] is None  # still agreed empty
    assert values["lastName"] == "伊藤"
