"""Nurture programs (Engagement Studio) over the store: recipients, the scheduler, actions, simulation.

``run_once`` is what the scheduler calls: it enrols new members of the recipient lists (minus
suppression lists), pauses prospects who left the recipient lists (they resume when they rejoin),
advances every prospect with the pure ``renkei.core.nurture.advance`` and performs the returned
actions. Program actions never move ``lastActivityAt`` (seed 004).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from renkei.clock import Clock, SystemClock
from renkei.core import nurture as n
from renkei.email.notify import queue_user_notification
from renkei.email.service import EmailService
from renkei.errors import InputError, NotFoundError
from renkei.store import tables as t
from renkei.store.tables_email import email_message, nurture_history, nurture_position, nurture_program

#: Fields a program's "change field" action may not touch.
_PROTECTED = {"id", "email", "emailKey", "isDeleted", "createdAt", "salesforceId", "salesforceLeadId",
              "salesforceContactId", "lastActivityAt"}  # fmt: skip


class ProgramService:
    def __init__(
        self, engine: Engine, *, clock: Clock | None = None, email: EmailService | None = None
    ) -> None:
        self.engine = engine
        self.clock = clock or SystemClock()
        self.email = email or EmailService(engine, clock=self.clock)

    def create(
        self, name: str, definition: Mapping[str, Any], recipient_list_ids: Sequence[int],
        suppression_list_ids: Sequence[int] = (), *, paused: bool = False,
    ) -> dict[str, Any]:  # fmt: skip
        try:
            n.Program.from_json(0, name, definition)
        except n.ProgramError as exc:
            raise InputError(f"program definition: {exc}", code="INVALID_PROGRAM") from None
        if not recipient_list_ids:
            raise InputError("a program needs at least one recipient list", code="REQUIRED_FIELD_MISSING")
        now = self.clock.now()
        with self.engine.begin() as conn:
            for list_id in [*recipient_list_ids, *suppression_list_ids]:
                if conn.execute(sa.select(t.list_.c.id).where(t.list_.c.id == list_id)).first() is None:
                    raise NotFoundError(f"list {list_id} does not exist")
            pid = conn.execute(
                nurture_program.insert().values(
                    name=name, definition=dict(definition), recipientListIds=list(recipient_list_ids),
                    suppressionListIds=list(suppression_list_ids), status="paused" if paused else "running",
                    createdAt=now, updatedAt=now,
                ).returning(nurture_program.c.id)
            ).scalar_one()  # fmt: skip
        return self.get(pid)

    def get(self, program_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(nurture_program).where(nurture_program.c.id == program_id))
                .mappings()
                .first()
            )
            if row is None:
                raise NotFoundError(f"program {program_id} does not exist")
            counts = conn.execute(
                sa.select(nurture_history.c.step, nurture_history.c.outcome, sa.func.count())
                .where(nurture_history.c.programId == program_id)
                .group_by(nurture_history.c.step, nurture_history.c.outcome)
            ).all()
            waiting = conn.execute(
                sa.select(nurture_position.c.step, sa.func.count())
                .where(nurture_position.c.programId == program_id, nurture_position.c.finished.is_(False))
                .group_by(nurture_position.c.step)
            ).all()
        steps: dict[str, dict[str, int]] = {}
        for step, outcome, count in counts:
            steps.setdefault(step, {})[outcome] = int(count)
        for step, count in waiting:
            if step is not None:
                steps.setdefault(step, {})["waiting"] = int(count)
        return {**dict(row), "stepCounts": steps}

    def set_status(self, program_id: int, status: str) -> dict[str, Any]:
        if status not in ("running", "paused"):
            raise InputError(f"unknown program status {status!r}", code="INVALID_STATUS")
        self.get(program_id)
        with self.engine.begin() as conn:
            conn.execute(nurture_program.update().where(nurture_program.c.id == program_id)
                         .values(status=status, updatedAt=self.clock.now()))  # fmt: skip
        return self.get(program_id)

    def _program(self, row: Mapping[str, Any]) -> n.Program:
        return n.Program.from_json(int(row["id"]), str(row["name"]), row["definition"])

    # -- the scheduler -----------------------------------------------------------------------

    def run_once(self) -> dict[str, Any]:
        """Advance every running program once at the clock's ``now``."""
        now = self.clock.now()
        summary: dict[str, Any] = {"programs": 0, "enrolled": 0, "advanced": 0, "actions": 0, "paused": 0}
        with self.engine.begin() as conn:
            programs = (
                conn.execute(sa.select(nurture_program).where(nurture_program.c.status == "running"))
                .mappings()
                .all()
            )
            for row in programs:
                program = self._program(dict(row))
                summary["programs"] += 1
                members = self._members(conn, row["recipientListIds"], row["suppressionListIds"])
                summary["enrolled"] += self._enrol(conn, program, members, now)
                summary["paused"] += self._mark_exits(conn, program.id, members)
                positions = (
                    conn.execute(
                        sa.select(nurture_position).where(
                            nurture_position.c.programId == program.id,
                            nurture_position.c.finished.is_(False),
                            nurture_position.c.exited.is_(False),
                        )
                    )
                    .mappings()
                    .all()
                )
                for pos_row in positions:
                    pos = n.Position(pos_row["step"], pos_row["since"], pos_row["until"], pos_row["finished"])
                    view = self.view(conn, program, int(pos_row["prospectId"]))
                    result = n.advance(program, pos, view, now)
                    if not result.path and result.position == pos:
                        continue
                    summary["advanced"] += 1
                    for action in result.actions:
                        self._perform(conn, program, int(pos_row["prospectId"]), action)
                        summary["actions"] += 1
                    self._save(conn, program.id, int(pos_row["prospectId"]), result, now)
        return summary

    def _members(self, conn: Connection, list_ids: Sequence[int], suppression: Sequence[int]) -> set[int]:
        lm, p = t.list_membership, t.prospect
        q = (
            sa.select(lm.c.prospectId)
            .join(p, p.c.id == lm.c.prospectId)
            .where(lm.c.listId.in_(list_ids), sa.func.coalesce(p.c.isDeleted, False).is_(False))
        )
        members = {r.prospectId for r in conn.execute(q)}
        if suppression:
            members -= {
                r.prospectId
                for r in conn.execute(sa.select(lm.c.prospectId).where(lm.c.listId.in_(suppression)))
            }
        return members

    def _enrol(self, conn: Connection, program: n.Program, members: set[int], now: dt.datetime) -> int:
        known = {r.prospectId for r in conn.execute(sa.select(nurture_position.c.prospectId)
                                                      .where(nurture_position.c.programId == program.id))}  # fmt: skip
        new = sorted(members - known)
        if new:
            conn.execute(nurture_position.insert(), [
                {"programId": program.id, "prospectId": pid, "step": program.start, "since": now, "until": None,
                 "finished": False, "exited": False, "updatedAt": now} for pid in new])  # fmt: skip
        return len(new)

    def _mark_exits(self, conn: Connection, program_id: int, members: set[int]) -> int:
        rows = conn.execute(sa.select(nurture_position.c.prospectId, nurture_position.c.exited)
                            .where(nurture_position.c.programId == program_id,
                                   nurture_position.c.finished.is_(False))).all()  # fmt: skip
        left = [r.prospectId for r in rows if r.prospectId not in members and not r.exited]
        back = [r.prospectId for r in rows if r.prospectId in members and r.exited]
        pos = nurture_position
        if left:
            conn.execute(
                pos.update()
                .where(pos.c.programId == program_id, pos.c.prospectId.in_(left))
                .values(exited=True)
            )
        if back:
            conn.execute(
                pos.update()
                .where(pos.c.programId == program_id, pos.c.prospectId.in_(back))
                .values(exited=False)
            )
        return len(left)

    def view(self, conn: Connection, program: n.Program, prospect_id: int) -> n.ProspectView:
        p = t.prospect
        row = conn.execute(sa.select(p).where(p.c.id == prospect_id)).mappings().first()
        if row is None:
            raise NotFoundError(f"prospect {prospect_id} does not exist")
        lists = frozenset(
            r.listId
            for r in conn.execute(
                sa.select(t.list_membership.c.listId).where(t.list_membership.c.prospectId == prospect_id)
            )
        )
        engagements: list[n.Engagement] = []
        va = t.visitor_activity
        msgs = {r.id: r.programStep for r in conn.execute(
            sa.select(email_message.c.id, email_message.c.programStep).where(
                email_message.c.prospectId == prospect_id, email_message.c.programId == program.id))}  # fmt: skip
        for a in conn.execute(
            sa.select(va).where(va.c.prospectId == prospect_id).order_by(va.c.id)
        ).mappings():
            if a["type"] == 11:
                engagements.append(
                    n.Engagement(n.TriggerKind.OPENED_EMAIL, a["createdAt"], msgs.get(a["emailId"]))
                )
            elif a["type"] == 1 and a["typeName"] == "Email Tracker":
                step = msgs.get(a["emailId"])
                engagements.append(
                    n.Engagement(n.TriggerKind.CLICKED_EMAIL, a["createdAt"], step, url=a["details"])
                )
                # a click implies the email was opened (images may be blocked)
                engagements.append(n.Engagement(n.TriggerKind.OPENED_EMAIL, a["createdAt"], step))
            elif a["type"] == 4:
                engagements.append(
                    n.Engagement(n.TriggerKind.SUBMITTED_FORM, a["createdAt"], asset_id=a["formId"])
                )
        pv = t.visitor_page_view
        for v in conn.execute(sa.select(pv.c.url, pv.c.createdAt).where(pv.c.prospectId == prospect_id)):
            engagements.append(n.Engagement(n.TriggerKind.VISITED_PAGE, v.createdAt, url=v.url))
        crm = self._crm_view(conn, prospect_id)
        fields = {k: v for k, v in row.items()}
        return n.ProspectView(fields, lists, crm, tuple(sorted(engagements, key=lambda e: e.at)))

    def _crm_view(self, conn: Connection, prospect_id: int) -> dict[str, Any]:
        """CRM data synced to marketing that rules may test: the latest opportunity and the account."""
        o, op = t.opportunity, t.opportunity_prospect
        opp = conn.execute(sa.select(o).join(op, op.c.opportunityId == o.c.id).where(op.c.prospectId == prospect_id)
                           .order_by(o.c.updatedAt.desc()).limit(1)).mappings().first()  # fmt: skip
        out: dict[str, Any] = {}
        if opp is not None:
            out.update({f"opportunity.{k}": v for k, v in opp.items() if k != "customFields"})
            out.update({f"opportunity.{k}": v for k, v in (opp["customFields"] or {}).items()})
        return out

    def _perform(self, conn: Connection, program: n.Program, prospect_id: int, action: n.Action) -> None:
        now = self.clock.now()
        p, lm = t.prospect, t.list_membership
        params = action.params
        kind = action.kind
        if kind is n.ActionKind.SEND_EMAIL:
            self.email.enqueue_program_email(
                conn, prospect_id, int(params["templateId"]), program.id, action.step
            )
        elif kind is n.ActionKind.ADD_TO_LIST:
            list_id = int(params["listId"])
            exists = conn.execute(
                sa.select(lm.c.id).where(lm.c.listId == list_id, lm.c.prospectId == prospect_id)
            ).first()
            if exists is None:
                conn.execute(lm.insert().values(listId=list_id, prospectId=prospect_id, optedOut=False,
                                                createdAt=now, updatedAt=now))  # fmt: skip
        elif kind is n.ActionKind.REMOVE_FROM_LIST:
            conn.execute(
                lm.delete().where(lm.c.listId == int(params["listId"]), lm.c.prospectId == prospect_id)
            )
        elif kind is n.ActionKind.ADJUST_SCORE:
            conn.execute(p.update().where(p.c.id == prospect_id)
                         .values(score=sa.func.coalesce(p.c.score, 0) + int(params["points"]), updatedAt=now))  # fmt: skip
        elif kind is n.ActionKind.ASSIGN:
            conn.execute(p.update().where(p.c.id == prospect_id)
                         .values(assignedToId=int(params["userId"]), updatedAt=now,
                                 firstAssignedAt=sa.func.coalesce(p.c.firstAssignedAt, now)))  # fmt: skip
        elif kind is n.ActionKind.CHANGE_FIELD:
            field = str(params["field"])
            if field in _PROTECTED or field not in p.c:
                raise InputError(
                    f"program step {action.step}: field {field!r} cannot be changed", code="INVALID_FIELD"
                )
            conn.execute(
                p.update().where(p.c.id == prospect_id).values({field: params.get("value"), "updatedAt": now})
            )
        elif kind is n.ActionKind.NOTIFY:
            self._notify(conn, program, prospect_id, action)

    def _notify(self, conn: Connection, program: n.Program, prospect_id: int, action: n.Action) -> None:
        """Email the assigned user (or the user named in the step) about the prospect."""
        p = t.prospect
        assigned = conn.execute(sa.select(p.c.assignedToId).where(p.c.id == prospect_id)).scalar()
        user_id = action.params.get("userId") or assigned
        if user_id is None:
            return
        message = str(action.params.get("message") or f"Program '{program.name}' step {action.step}")
        queue_user_notification(conn, user_id=int(user_id), prospect_id=prospect_id, message=message,
                                source=f"program {program.id} ({program.name}) step {action.step}",
                                now=self.clock.now(), program_id=program.id, program_step=action.step)  # fmt: skip

    def _save(
        self, conn: Connection, program_id: int, prospect_id: int, result: n.Advance, now: dt.datetime
    ) -> None:
        pos = result.position
        conn.execute(nurture_position.update().where(
            nurture_position.c.programId == program_id, nurture_position.c.prospectId == prospect_id
        ).values(step=pos.step, since=pos.since, until=pos.until, finished=pos.finished, updatedAt=now))  # fmt: skip
        if result.path:
            conn.execute(nurture_history.insert(), [
                {"programId": program_id, "prospectId": prospect_id, "step": v.step, "outcome": v.outcome, "at": v.at}
                for v in result.path])  # fmt: skip

    def history(self, program_id: int, prospect_id: int) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(nurture_history.c.step, nurture_history.c.outcome, nurture_history.c.at)
                                .where(nurture_history.c.programId == program_id,
                                       nurture_history.c.prospectId == prospect_id)
                                .order_by(nurture_history.c.id)).all()  # fmt: skip
        return [{"step": r.step, "outcome": r.outcome, "at": r.at} for r in rows]

    # -- simulation --------------------------------------------------------------------------

    def simulate(
        self, program_id: int, prospect_id: int, *, assume: Sequence[tuple[str, str | None, float]] = (),
        horizon_days: int = 365,
    ) -> dict[str, Any]:  # fmt: skip
        """The path the prospect would take from now. ``assume`` = (trigger kind, email step, hours
        after start) engagements to pretend will happen (e.g. it opens the email of step s1 after 5 h)."""
        row = self.get(program_id)
        program = self._program(row)
        now = self.clock.now()
        with self.engine.connect() as conn:
            view = self.view(conn, program, prospect_id)
        extra = []
        for kind, step, hours in assume:
            try:
                trig = n.TriggerKind(kind)
            except ValueError:
                raise InputError(f"unknown engagement {kind!r} (use {', '.join(k.value for k in n.TriggerKind)})",
                                 code="INVALID_ARGUMENT") from None  # fmt: skip
            extra.append(n.Engagement(trig, now + dt.timedelta(hours=hours), step))
        view = n.ProspectView(
            view.fields, view.lists, view.crm, tuple(sorted((*view.engagements, *extra), key=lambda e: e.at))
        )
        path = n.simulate(program, view, now, horizon=dt.timedelta(days=horizon_days))
        return {
            "programId": program_id,
            "prospectId": prospect_id,
            "path": [{"step": v.step, "outcome": v.outcome, "at": v.at} for v in path],
            "finished": bool(path and path[-1].outcome == "end"),
        }
