"""Edits made by users while a cycle runs are not lost: the marketing watermark never passes an
edit the cycle did not read, and a cycle writes a prospect only if it is still as the cycle read it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from renkei.clock import FixedClock
from renkei.connector import config as c
from renkei.connector.service import SyncService
from renkei.crm.service import CrmService
from renkei.marketing.service import ProspectService


@dataclass
class _Synced:
    """One lead synced to its prospect, with the services and the clock that did it."""

    engine: Engine
    clock: FixedClock
    crm: CrmService
    ma: ProspectService
    cfg: c.ConnectorConfig
    lead: str
    pid: int

    def cycle(self) -> SyncService:
        return SyncService(self.engine, self.cfg, clock=self.clock)

    def run_with_edit_during(self, edit: Callable[[list[Any]], object]) -> dict[str, Any]:
        """One cycle in which ``edit`` (given the planned ops) runs after planning, before the writes."""
        svc = self.cycle()
        planned = svc._queue_overflow

        def user_edits_while_the_cycle_runs(ops: Any) -> Any:
            self.clock.advance(seconds=1)
            edit(ops)
            self.clock.advance(seconds=1)
            return planned(ops)

        svc._queue_overflow = user_edits_while_the_cycle_runs  # type: ignore[method-assign]
        return svc.run()

    def settle(self, cycles: int) -> None:
        for _ in range(cycles):
            self.clock.advance(seconds=1)
            self.cycle().run()


def _synced(engine: Engine, name: str, email: str, **fields: Any) -> _Synced:
    clock = FixedClock(dt.datetime(2026, 4, 1, 9, tzinfo=dt.UTC))
    crm, ma = CrmService(engine, clock=clock), ProspectService(engine, clock=clock)
    cfg = c.parse(c.DEFAULT_YAML)
    lead = crm.create("Lead", {"LastName": name, "Company": f"{name}商事", "Email": email, **fields})
    SyncService(engine, cfg, clock=clock).run()
    pid = ma.find_by_email(email)[0]["id"]
    clock.advance(seconds=1)
    return _Synced(engine, clock, crm, ma, cfg, lead, pid)


def test_a_marketing_edit_during_a_cycle_syncs_in_the_next(engine: Engine) -> None:
    s = _synced(engine, "並行", "heikou@example.jp")
    # comments → Description: marketing wins
    s.run_with_edit_during(lambda ops: s.ma.update(s.pid, {"comments": "見積依頼"}))
    s.settle(2)
    assert s.crm.get("Lead", s.lead, ["Description"])["Description"] == "見積依頼"


def test_a_marketing_edit_made_while_the_cycle_writes_that_prospect_is_not_lost(engine: Engine) -> None:
    """The cycle plans a CRM → prospect write; before it lands, a user edits the same prospect: the
    field being written (``website``, most_recent) and another (``comments``, marketing wins). The
    write must neither overwrite the edit nor pass it off as the connector's own: the next cycles
    judge both edits (the user's, made later, wins) and send the comment to the CRM."""
    s = _synced(engine, "競合", "kyougou@example.jp", Website="https://old.example.jp")
    assert s.cfg.rule_for("website").value == "most_recent"
    s.crm.update(
        "Lead", s.lead, {"Website": "https://crm.example.jp"}
    )  # the next cycle writes it to the prospect
    s.clock.advance(seconds=1)

    def user_edit(ops: list[Any]) -> None:
        assert any(w.ma_field == "website" for op in ops for w in op.writes)  # the write is planned
        s.ma.update(s.pid, {"website": "https://ma.example.jp", "comments": "見積依頼"})

    out = s.run_with_edit_during(user_edit)
    assert s.ma.get(s.pid)["website"] == "https://ma.example.jp"  # not overwritten by the older CRM value
    assert (
        out["counts"]["ma"]["update"] == 0 and out["counts"]["skip"] == 1
    )  # left for the next cycle, counted
    s.settle(3)
    assert s.ma.get(s.pid)["website"] == "https://ma.example.jp"
    got = s.crm.get("Lead", s.lead, ["Website", "Description"])
    assert (got["Website"], got["Description"]) == ("https://ma.example.jp", "見積依頼")


def test_a_stamp_stored_in_another_spelling_is_not_taken_for_an_edit(sqlite_engine: Engine) -> None:
    """The guard compares the stored ``updatedAt`` with what the cycle read; a stamp another tool
    wrote as other text for the same instant is no edit: the write goes ahead in the same cycle."""
    s = _synced(sqlite_engine, "表記", "hyouki@example.jp")
    with sqlite_engine.begin() as conn:
        stored = conn.execute(
            sa.text('SELECT "updatedAt" FROM prospect WHERE id = :i'), {"i": s.pid}
        ).scalar_one()
        assert stored.endswith(".000000")
        conn.execute(
            sa.text('UPDATE prospect SET "updatedAt" = :t WHERE id = :i'), {"t": stored[:19], "i": s.pid}
        )
    s.crm.update("Lead", s.lead, {"Title": "部長"})
    s.clock.advance(seconds=1)
    out = s.cycle().run()
    assert out["counts"]["ma"]["update"] == 1 and out["counts"]["skip"] == 0
    assert s.ma.get(s.pid)["jobTitle"] == "部長"
