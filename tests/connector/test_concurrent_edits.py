"""Edits made by users while a cycle runs are not lost: the marketing watermark never passes an
edit the cycle did not read."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.engine import Engine

from renkei.clock import FixedClock
from renkei.connector import config as c
from renkei.connector.service import SyncService
from renkei.crm.service import CrmService
from renkei.marketing.service import ProspectService


def test_a_marketing_edit_during_a_cycle_syncs_in_the_next(engine: Engine) -> None:
    clock = FixedClock(dt.datetime(2026, 4, 1, 9, tzinfo=dt.UTC))
    crm, ma = CrmService(engine, clock=clock), ProspectService(engine, clock=clock)
    cfg = c.parse(c.DEFAULT_YAML)
    lead = crm.create("Lead", {"LastName": "並行", "Company": "並行商事", "Email": "heikou@example.jp"})
    SyncService(engine, cfg, clock=clock).run()
    pid = ma.find_by_email("heikou@example.jp")[0]["id"]
    clock.advance(seconds=1)

    svc = SyncService(engine, cfg, clock=clock)
    planned = svc._queue_overflow

    def user_edits_while_the_cycle_runs(ops: Any) -> Any:
        clock.advance(seconds=1)
        ma.update(pid, {"comments": "見積依頼"})  # comments → Description: marketing wins
        clock.advance(seconds=1)
        return planned(ops)

    svc._queue_overflow = user_edits_while_the_cycle_runs  # type: ignore[method-assign]
    svc.run()
    for _ in range(2):
        clock.advance(seconds=1)
        SyncService(engine, cfg, clock=clock).run()
    assert crm.get("Lead", lead, ["Description"])["Description"] == "見積依頼"


def test_a_marketing_edit_made_while_the_cycle_writes_that_prospect_is_not_lost(engine: Engine) -> None:
    """The cycle plans a CRM → prospect write; before it lands, a user edits the same prospect: the
    field being written (``website``, most_recent) and another (``comments``, marketing wins). The
    write must neither overwrite the edit nor pass it off as the connector's own: the next cycles
    judge both edits (the user's, made later, wins) and send the comment to the CRM."""
    clock = FixedClock(dt.datetime(2026, 4, 1, 9, tzinfo=dt.UTC))
    crm, ma = CrmService(engine, clock=clock), ProspectService(engine, clock=clock)
    cfg = c.parse(c.DEFAULT_YAML)
    assert cfg.rule_for("website").value == "most_recent"
    lead = crm.create("Lead", {"LastName": "競合", "Company": "競合商事", "Email": "kyougou@example.jp",
                               "Website": "https://old.example.jp"})  # fmt: skip
    SyncService(engine, cfg, clock=clock).run()
    pid = ma.find_by_email("kyougou@example.jp")[0]["id"]
    clock.advance(seconds=1)
    crm.update(
        "Lead", lead, {"Website": "https://crm.example.jp"}
    )  # the next cycle writes it to the prospect
    clock.advance(seconds=1)

    svc = SyncService(engine, cfg, clock=clock)
    planned = svc._queue_overflow

    def user_edits_while_the_cycle_runs(ops: Any) -> Any:
        assert any(w.ma_field == "website" for op in ops for w in op.writes)  # the write is planned
        clock.advance(seconds=1)
        ma.update(pid, {"website": "https://ma.example.jp", "comments": "見積依頼"})
        clock.advance(seconds=1)
        return planned(ops)

    svc._queue_overflow = user_edits_while_the_cycle_runs  # type: ignore[method-assign]
    out = svc.run()
    assert ma.get(pid)["website"] == "https://ma.example.jp"  # not overwritten by the older CRM value
    assert (
        out["counts"]["ma"]["update"] == 0 and out["counts"]["skip"] == 1
    )  # left for the next cycle, counted
    for _ in range(3):
        clock.advance(seconds=1)
        SyncService(engine, cfg, clock=clock).run()
    assert ma.get(pid)["website"] == "https://ma.example.jp"
    got = crm.get("Lead", lead, ["Website", "Description"])
    assert (got["Website"], got["Description"]) == ("https://ma.example.jp", "見積依頼")


def test_a_stamp_stored_in_another_spelling_is_not_taken_for_an_edit(sqlite_engine: Engine) -> None:
    """The guard compares the stored ``updatedAt`` with what the cycle read; a stamp another tool
    wrote as other text for the same instant is no edit: the write goes ahead in the same cycle."""
    import sqlalchemy as sa

    engine = sqlite_engine
    clock = FixedClock(dt.datetime(2026, 4, 1, 9, tzinfo=dt.UTC))
    crm, ma = CrmService(engine, clock=clock), ProspectService(engine, clock=clock)
    cfg = c.parse(c.DEFAULT_YAML)
    lead = crm.create("Lead", {"LastName": "表記", "Company": "表記商事", "Email": "hyouki@example.jp"})
    SyncService(engine, cfg, clock=clock).run()
    pid = ma.find_by_email("hyouki@example.jp")[0]["id"]
    with engine.begin() as conn:
        stored = conn.execute(
            sa.text('SELECT "updatedAt" FROM prospect WHERE id = :i'), {"i": pid}
        ).scalar_one()
        assert stored.endswith(".000000")
        conn.execute(
            sa.text('UPDATE prospect SET "updatedAt" = :t WHERE id = :i'), {"t": stored[:19], "i": pid}
        )
    clock.advance(seconds=1)
    crm.update("Lead", lead, {"Title": "部長"})
    clock.advance(seconds=1)
    out = SyncService(engine, cfg, clock=clock).run()
    assert out["counts"]["ma"]["update"] == 1 and out["counts"]["skip"] == 0
    assert ma.get(pid)["jobTitle"] == "部長"
