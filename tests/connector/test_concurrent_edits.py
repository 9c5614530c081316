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
