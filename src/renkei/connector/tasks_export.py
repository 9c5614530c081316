"""Visitor activities → completed CRM ``Task`` records, so sales sees the engagement history on the
lead or contact (``activity_tasks`` in connector.yaml, off by default). Run at the end of a cycle.

What goes: activities of the configured types whose prospect is linked to a lead or contact — the
new ones past the watermark (the last ``visitor_activity`` id seen, looking again at the last
``LATE_COMMIT_IDS`` ids below it for ones committed late), and, when a run links a
prospect, its activities of the last ``backfill_days``. Activities of unlinked prospects wait for
the link; those older than ``backfill_days`` when it comes are not exported.

Never twice: each exported activity has a ``sync_activity_task`` row, committed as ``pending``
before the CRM create and turned ``done`` (with the Task id) after it. The Task carries the activity
id in ``pi__activity_id__c``, so a row still ``pending`` on a later run — the process died between
the create and the bookkeeping — is settled by looking the Task up by that key: found, it is
adopted; not found, it is created then. Failures are sync errors: a retriable one is retried after
its backoff, the others once ``renkei sync retry`` resolves the error or the prospect is linked
again. The row stays ``failed`` meanwhile, so nothing is lost.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from renkei.clock import ensure_utc
from renkei.connector.config import TASK_KEY_FIELD, ActivityTasks
from renkei.connector.service import SyncService
from renkei.connector.service import _kind as error_kind
from renkei.core.activities import type_label
from renkei.core.sync.ports import MAX_BATCH
from renkei.marketing.activity_service import REFERENCE_COLUMNS
from renkei.store import tables as t
from renkei.store.tables_sync import sync_activity_task, sync_error, sync_link, sync_watermark

#: ``sync_watermark`` sources: the last activity id seen, and the last run whose links were backfilled.
ACTIVITY_MARK = "ma:activity_task"
LINK_MARK = "ma:activity_task_link"
_CHUNK = 500
#: Activity ids are handed out before their transaction commits, so one can appear below the mark
#: after the mark passed it; each run looks again this far below the mark for activities never seen.
LATE_COMMIT_IDS = 1000
_ROW = sync_activity_task.c


@dataclass(frozen=True, slots=True)
class TaskExportResult:
    created: int = 0
    adopted: int = 0  # found in the CRM by key after an interrupted run
    failed: int = 0
    errors: tuple[dict[str, Any], ...] = field(default=())

    def counts(self) -> dict[str, int]:
        return {"created": self.created, "adopted": self.adopted, "failed": self.failed}


def task_values(activity: Mapping[str, Any], cfg: ActivityTasks, who_id: str, owner_id: str | None,
                campaign: str | None) -> dict[str, Any]:  # fmt: skip
    """The Task a visitor activity becomes (pure): subject = prefix + type + asset, the details below."""
    label = type_label(int(activity["type"]))
    kind = f" ({activity['typeName']})" if activity.get("typeName") else ""
    details = activity.get("details") or ""
    at: dt.datetime = activity["createdAt"]
    lines = [f"{label}{kind}" + (f": {details}" if details else "")]
    lines += [f"{col}: {activity[col]}" for col in REFERENCE_COLUMNS if activity.get(col) is not None]
    if campaign:
        lines.append(f"campaign: {campaign}")
    lines.append(
        f"marketing activity {activity['id']} of prospect {activity['prospectId']} at {at.isoformat()}"
    )
    values: dict[str, Any] = {
        "WhoId": who_id,
        "Subject": f"{cfg.subject_prefix}{label}{kind}" + (f": {details}" if details else ""),
        "ActivityDate": ensure_utc(at).astimezone(ZoneInfo(cfg.timezone)).date().isoformat(),
        "Status": cfg.status,
        "Priority": "Normal",
        "Description": "\n".join(lines),
        "TaskSubtype": "Task",
        TASK_KEY_FIELD: str(activity["id"]),
    }
    values["Subject"] = values["Subject"][:255]
    if owner_id:
        values["OwnerId"] = owner_id
    return values


def export_tasks(svc: SyncService, run_id: int) -> TaskExportResult:
    """Export the due activities of linked prospects as CRM tasks (batches of ≤ 200) and save the marks."""
    cfg = svc.config.activity_tasks
    now = svc.clock.now()
    task_fields = svc._field_names("Task")
    if TASK_KEY_FIELD not in task_fields:
        with svc.engine.begin() as conn:
            error = svc._error(conn, run_id, "validation", "Task", None, None, "INVALID_FIELD",
                               f"Task.{TASK_KEY_FIELD} does not exist: run `renkei connector install-package` "
                               "(the key that keeps the task export from creating duplicates)",
                               field_name=TASK_KEY_FIELD)  # fmt: skip
        return TaskExportResult(failed=1, errors=(error,))
    with svc.engine.connect() as conn:
        due, states, top, relink = _due(conn, cfg, run_id, now)
        links = _links(conn, {int(a["prospectId"]) for a in due.values()})
        campaigns = _campaigns(conn, {a["campaignId"] for a in due.values() if a.get("campaignId")})
    created = adopted = failed = 0
    errors: list[dict[str, Any]] = []
    # the lead or contact each task hangs on: its owner, and whether it still exists
    records: dict[str, Mapping[str, Any]] = {}
    by_object: dict[str, list[str]] = {}
    for crm_id, obj in links.values():
        by_object.setdefault(obj, []).append(crm_id)
    for obj, ids in by_object.items():
        for start in range(0, len(ids), MAX_BATCH):
            records.update({str(r["Id"]): r for r in svc.adapter.read(obj, ids[start : start + MAX_BATCH])})
    # interrupted creates: adopt the Task the CRM already has under the activity's key
    found = _tasks_by_key(svc, [aid for aid in due if states.get(aid, ("", 0))[0] == "pending"])
    work: list[tuple[dict[str, Any], str]] = []  # (activity, lead or contact id)
    with svc.engine.begin() as conn:
        for aid in sorted(due):
            activity = due[aid]
            pid = int(activity["prospectId"])
            if pid not in links:
                continue  # unlinked since: waits for the link
            who, obj = links[pid]
            if aid in found:
                _save(conn, states, aid, pid, who, "done", run_id, now, task_id=found[aid])
                svc._audit(conn, run_id, "crm", "link", "Task", found[aid], pid,
                           reason=f"activity {aid}: Task found by {TASK_KEY_FIELD} after an interrupted run")  # fmt: skip
                adopted += 1
                continue
            rec = records.get(who)
            if rec is None or rec.get("IsDeleted"):
                _save(conn, states, aid, pid, who, "failed", run_id, now)
                errors.append(svc._error(conn, run_id, "not_found", "Task", who, pid, "ENTITY_IS_DELETED",
                                         f"{obj} {who} is deleted or missing: activity {aid} waits for a link to a "
                                         "live record", field_name="WhoId", value=who))  # fmt: skip
                failed += 1
                continue
            work.append((activity, who))
    for start in range(0, len(work), MAX_BATCH):
        batch = work[start : start + MAX_BATCH]
        # fields the Task does not describe (TaskSubtype on the built-in CRM) are left out
        values = [_described(task_values(a, cfg, who, _owner(records[who]), campaigns.get(a.get("campaignId") or 0)),
                             task_fields) for a, who in batch]  # fmt: skip
        with svc.engine.begin() as conn:  # committed before the create: a crash leaves it pending
            for activity, who in batch:
                _save(
                    conn,
                    states,
                    int(activity["id"]),
                    int(activity["prospectId"]),
                    who,
                    "pending",
                    run_id,
                    now,
                )
        results = svc.adapter.create("Task", values)
        with svc.engine.begin() as conn:
            for (activity, who), val, result in zip(batch, values, results, strict=True):
                aid, pid = int(activity["id"]), int(activity["prospectId"])
                if result.success and result.id is not None:
                    _save(conn, states, aid, pid, who, "done", run_id, now, task_id=result.id)
                    svc._audit(conn, run_id, "crm", "create", "Task", result.id, pid,
                               reason=f"activity {aid}: {val['Subject']}")  # fmt: skip
                    created += 1
                    continue
                backoff = now + dt.timedelta(seconds=30 * 2 ** min(states[aid][1], 8))
                _save(conn, states, aid, pid, who, "failed", run_id, now,
                      next_attempt_at=backoff if result.retriable else None)  # fmt: skip
                for code, message, fields in result.errors or (("UNKNOWN_ERROR", "no reason given", ()),):
                    errors.append(svc._error(conn, run_id, error_kind(code), "Task", who, pid, code,
                                             f"activity {aid}: {message}", field_name=fields[0] if fields else None,
                                             retriable=result.retriable))  # fmt: skip
                failed += 1
    with svc.engine.begin() as conn:
        if top is not None:
            svc._save_mark(conn, ACTIVITY_MARK, now, str(top))
        if relink:  # a quiet cycle writes nothing
            svc._save_mark(conn, LINK_MARK, now, str(run_id))
    return TaskExportResult(created, adopted, failed, tuple(errors))


def _due(conn: Connection, cfg: ActivityTasks, run_id: int, now: dt.datetime
         ) -> tuple[dict[int, dict[str, Any]], dict[int, tuple[str, int]], int | None, bool]:  # fmt: skip
    """The activities to export now (id → row), the known rows' (state, attempts), the new activity
    mark, and whether the link mark moves (first run, or runs linked prospects since)."""
    va = t.visitor_activity
    wanted = sa.or_(sa.false(), *((va.c.type == code) & (va.c.typeName == name) if name else va.c.type == code
                                  for code, name in cfg.selectors()))  # fmt: skip
    mark, link_mark = _mark(conn, ACTIVITY_MARK), _mark(conn, LINK_MARK)
    cutoff = now - dt.timedelta(days=cfg.backfill_days)
    top = conn.execute(sa.select(sa.func.max(va.c.id)).where(va.c.id > (mark or 0))).scalar()
    due: dict[int, dict[str, Any]] = {}
    if top is not None:  # new activities of linked prospects (the first run: the last backfill_days)
        q = (sa.select(va).join(sync_link, sync_link.c.prospect_id == va.c.prospectId)
             .where(wanted, va.c.id > (mark or 0), va.c.id <= top))  # fmt: skip
        due.update(
            {
                r["id"]: dict(r)
                for r in conn.execute(q if mark else q.where(va.c.createdAt >= cutoff)).mappings()
            }
        )
    linked: Sequence[int] = []
    if link_mark is not None:  # prospects linked since the last export bring their recent activities
        linked = conn.execute(sa.select(sync_link.c.prospect_id).where(
            sync_link.c.run_id > link_mark, sync_link.c.run_id <= run_id)).scalars().all()  # fmt: skip
        for chunk in _chunks(sorted(linked)):
            q = sa.select(va).where(va.c.prospectId.in_(chunk), wanted, va.c.createdAt >= cutoff)
            due.update({r["id"]: dict(r) for r in conn.execute(q).mappings()})
    if mark is not None:  # ids below the mark committed late (a tracking transaction still open last run)
        q = (sa.select(va).join(sync_link, sync_link.c.prospect_id == va.c.prospectId)
             .outerjoin(sync_activity_task, _ROW.activity_id == va.c.id)
             .where(wanted, va.c.id > mark - LATE_COMMIT_IDS, va.c.id <= mark, va.c.createdAt >= cutoff,
                    _ROW.activity_id.is_(None)))  # fmt: skip
        due.update({r["id"]: dict(r) for r in conn.execute(q).mappings()})
    states: dict[int, tuple[str, int]] = {}
    for chunk in _chunks(sorted(due)):
        for r in conn.execute(
            sa.select(_ROW.activity_id, _ROW.state, _ROW.attempts).where(_ROW.activity_id.in_(chunk))
        ):
            states[r.activity_id] = (r.state, r.attempts)
    due = {aid: a for aid, a in due.items() if states.get(aid, ("", 0))[0] != "done"}
    # earlier rows still open: pending (interrupted), failed and due (backoff over, or error resolved)
    open_rows = (
        conn.execute(sa.select(sync_activity_task).where(_ROW.state.in_(("pending", "failed"))))
        .mappings()
        .all()
    )
    blocked = set(conn.execute(sa.select(sync_error.c.prospect_id).where(
        sync_error.c.resolved_at.is_(None), sync_error.c.object == "Task")).scalars())  # fmt: skip
    retry = []
    for row in open_rows:
        states[row["activity_id"]] = (row["state"], row["attempts"])
        waited = row["next_attempt_at"] is not None and row["next_attempt_at"] <= now
        if row["state"] == "pending" or waited or row["prospect_id"] not in blocked:
            retry.append(row["activity_id"])
    for chunk in _chunks(sorted(set(retry) - set(due))):
        due.update({r["id"]: dict(r) for r in conn.execute(sa.select(va).where(va.c.id.in_(chunk))).mappings()
                    if r["prospectId"] is not None})  # fmt: skip
    return due, states, top, link_mark is None or bool(linked)


def _mark(conn: Connection, source: str) -> int | None:
    row = conn.execute(sa.select(sync_watermark.c.record_id).where(sync_watermark.c.source == source)).first()
    return int(row.record_id) if row is not None and row.record_id is not None else None


def _links(conn: Connection, prospect_ids: Iterable[int]) -> dict[int, tuple[str, str]]:
    out: dict[int, tuple[str, str]] = {}
    for chunk in _chunks(sorted(prospect_ids)):
        for r in conn.execute(sa.select(sync_link).where(sync_link.c.prospect_id.in_(chunk))):
            out[int(r.prospect_id)] = (r.crm_id, r.crm_object)
    return out


def _campaigns(conn: Connection, ids: Iterable[int]) -> dict[int, str]:
    c = t.campaign
    return {
        r.id: r.name
        for chunk in _chunks(sorted(ids))
        for r in conn.execute(sa.select(c.c.id, c.c.name).where(c.c.id.in_(chunk)))
    }


def _tasks_by_key(svc: SyncService, activity_ids: Sequence[int]) -> dict[int, str]:
    """activity id → Task id for the activities whose Task the CRM already has."""
    out: dict[int, str] = {}
    for start in range(0, len(activity_ids), MAX_BATCH):
        keys = ", ".join(f"'{a}'" for a in activity_ids[start : start + MAX_BATCH])
        for rec in svc.adapter.query(
            f"SELECT Id, {TASK_KEY_FIELD} FROM Task WHERE {TASK_KEY_FIELD} IN ({keys})"
        ):
            out.setdefault(int(rec[TASK_KEY_FIELD]), str(rec["Id"]))
    return out


def _save(conn: Connection, states: dict[int, tuple[str, int]], aid: int, pid: int, who: str, state: str, run_id: int,
          now: dt.datetime, *, task_id: str | None = None, next_attempt_at: dt.datetime | None = None) -> None:  # fmt: skip
    values = {"prospect_id": pid, "who_id": who, "task_id": task_id, "state": state, "run_id": run_id,
              "next_attempt_at": next_attempt_at, "updated_at": now}  # fmt: skip
    if aid in states:  # a new attempt starts with ``pending``
        attempts = states[aid][1] + (1 if state == "pending" else 0)
        conn.execute(
            sync_activity_task.update().where(_ROW.activity_id == aid).values(**values, attempts=attempts)
        )
    else:
        attempts = 1
        conn.execute(sync_activity_task.insert().values(activity_id=aid, attempts=attempts, **values))
    states[aid] = (state, attempts)


def _described(values: Mapping[str, Any], names: frozenset[str]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k in names}


def _owner(record: Mapping[str, Any]) -> str | None:
    owner = record.get("OwnerId")
    return str(owner) if owner else None


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
