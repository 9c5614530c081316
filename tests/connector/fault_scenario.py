"""One scenario for the connector under injected faults, run with any adapter: the demo org synced,
then edits on both sides and new prospects to create in the CRM, then sync cycles while faults hit
(whole calls failing, lock errors, partial collection failures). A cycle that fails as a whole is
run again (as the daemon does); once one completes, every edited record is synced or has an open
error of a typed kind, and after the faults stop ``retry()`` converges with no open error."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from renkei.clock import Clock
from renkei.connector.service import SyncService
from renkei.crm.service import CrmService
from renkei.errors import RetriableError
from renkei.marketing.service import ProspectService
from renkei.store import tables as t
from renkei.store.tables_sync import sync_link

#: Error kinds a retriable fault may leave (renkei.connector.service._kind).
RETRIABLE_KINDS = {"unavailable"}


@dataclass(frozen=True)
class Edits:
    crm_titles: dict[str, str]  # lead id → Title set in the CRM (crm_wins → prospect jobTitle)
    ma_comments: dict[int, str]  # prospect id → comments set in renkei (ma_wins → Description)
    new_prospects: dict[int, str]  # prospect id → email, assigned: each creates a lead


def make_edits(org: Engine, ma: Engine, clock: Clock, *, crm_edits: int, ma_edits: int, new: int) -> Edits:
    with ma.connect() as conn:
        leads = [r.crm_id for r in conn.execute(
            sa.select(sync_link.c.crm_id).where(sync_link.c.crm_object == "Lead").order_by(sync_link.c.crm_id)
            .limit(crm_edits))]  # fmt: skip
        others = [int(r.prospect_id) for r in conn.execute(
            sa.select(sync_link.c.prospect_id).where(sync_link.c.crm_id.not_in(leads)).order_by(sync_link.c.prospect_id)
            .limit(ma_edits))]  # fmt: skip
        user = conn.execute(sa.select(t.ma_user.c.id).order_by(t.ma_user.c.id).limit(1)).scalar_one()
    titles = {lead: f"部長{i}" for i, lead in enumerate(leads)}
    CrmService(org, clock=clock).update_many("Lead", [{"Id": k, "Title": v} for k, v in titles.items()])
    prospects = ProspectService(ma, clock=clock)
    comments = {pid: f"展示会メモ{pid}" for pid in others}
    for pid, text in comments.items():
        prospects.update(pid, {"comments": text})
    created = {}
    for i in range(new):
        email = f"fault-new{i}@example.jp"
        row = prospects.create({"email": email, "lastName": f"新規{i}", "company": "障害試験株式会社",
                                "assignedToId": user})  # fmt: skip
        created[int(row["id"])] = email
    return Edits(titles, comments, created)


def unsynced(org: Engine, ma: Engine, edits: Edits) -> set[int]:
    """Prospects whose edit has not reached the other side (by prospect id)."""
    crm = CrmService(org)
    with ma.connect() as conn:
        links = {int(r.prospect_id): (r.crm_object, r.crm_id) for r in conn.execute(sa.select(sync_link))}
        by_crm = {crm_id: pid for pid, (_, crm_id) in links.items()}
        rows = {int(r["id"]): r for r in conn.execute(sa.select(t.prospect)).mappings()}
    out: set[int] = set()
    for lead, title in edits.crm_titles.items():
        pid = by_crm[lead]
        if rows[pid]["jobTitle"] != title:
            out.add(pid)
    for pid, text in edits.ma_comments.items():
        obj, crm_id = links[pid]
        if crm.get(obj, crm_id).get("Description") != text:
            out.add(pid)
    for pid, email in edits.new_prospects.items():
        link = links.get(pid)
        if link is None or (crm.get(link[0], link[1]).get("Email") or "").lower() != email:
            out.add(pid)
    return out


def errored(ma: Engine, errors: list[dict[str, Any]]) -> set[int]:
    """The prospects the open errors name (directly or through their CRM record's link)."""
    with ma.connect() as conn:
        by_crm = {r.crm_id: int(r.prospect_id) for r in conn.execute(sa.select(sync_link))}
    out = {int(e["prospect_id"]) for e in errors if e.get("prospect_id") is not None}
    return out | {by_crm[e["record_id"]] for e in errors if e.get("record_id") in by_crm}


def run_until_a_cycle_completes(sync: SyncService, *, attempts: int = 10) -> tuple[dict[str, Any], int]:
    """Cycles until one completes; returns it and how many failed as a whole before it."""
    failed = 0
    for _ in range(attempts):
        try:
            return sync.run(), failed
        except RetriableError:
            failed += 1
    raise AssertionError(f"no cycle completed in {attempts} attempts")


def check_faulty_then_converged(
    sync: SyncService, org: Engine, ma: Engine, edits: Edits, *, faults_off: Callable[[], None],
    advance: Callable[[], None],
) -> dict[str, Any]:  # fmt: skip
    """The scenario's assertions; returns figures for the caller to check further."""
    completed, failed_cycles = run_until_a_cycle_completes(sync)
    assert completed["status"] == "done", completed
    pending = unsynced(org, ma, edits)
    errors = sync.errors()
    assert pending, "the faults changed nothing: the scenario tests nothing"
    assert pending <= errored(ma, errors), {
        "unsynced, not in the error queue": sorted(pending - errored(ma, errors))
    }
    assert {e["kind"] for e in errors} <= RETRIABLE_KINDS, errors
    assert all(e["retriable"] for e in errors), errors
    faults_off()
    advance()
    sync.retry()
    advance()
    settle = sync.run()
    assert unsynced(org, ma, edits) == set()
    assert sync.errors() == []
    assert settle["counts"]["crm"] == {"create": 0, "update": 0, "delete": 0}, settle
    return {"failed_cycles": failed_cycles, "unsynced_under_faults": len(pending), "errors": len(errors)}


class Switch(Protocol):
    """What turns the faults on and off (a ``FaultyAdapter`` or a ``FaultInjectingTransport``)."""

    enabled: bool


def run_scenario(
    sync: SyncService, org: Engine, ma: Engine, clock: Clock, *, switch: Switch, advance: Callable[[], None]
) -> dict[str, Any]:
    """The whole scenario: an initial sync without faults, edits on both sides, the faults switched
    on for the cycles and off for the retry; returns ``check_faulty_then_converged``'s figures."""
    assert sync.run()["status"] == "done"  # the initial sync, without faults
    advance()
    edits = make_edits(org, ma, clock, crm_edits=40, ma_edits=40, new=10)
    advance()
    switch.enabled = True

    def off() -> None:
        switch.enabled = False

    return check_faulty_then_converged(sync, org, ma, edits, faults_off=off, advance=advance)
