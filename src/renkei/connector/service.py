"""The connector: one sync cycle = gather the changes of both sides → plan (pure decisions) →
execute the plan (CRM writes through the adapter in batches of ≤ 200, marketing writes in the
store) → persist links, agreed values, watermarks, audit and errors.

``plan()`` runs the same gathering and planning and writes nothing, so the dry run says exactly
what the next ``run()`` will do.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from renkei import ids
from renkei.clock import Clock, SystemClock
from renkei.connector.adapters.builtin import BuiltinCrmAdapter
from renkei.connector.bulk import create_in_bulk
from renkei.connector.config import CRM_OBJECTS, ConnectorConfig, FieldMapping
from renkei.core.identity import email_key
from renkei.core.sync.judge import (
    Decision,
    Evidence,
    Observed,
    Rule,
    Side,
    decide,
    is_blank,
    plainly_same,
    same,
)
from renkei.core.sync.messages import Action, FieldWrite, Op
from renkei.core.sync.messages import jsonable as _jsonable
from renkei.core.sync.ports import CrmAdapter, Cursor, QueriesMany, ReadsManyChanges, ReadsManyRecords
from renkei.crm.service import CrmService
from renkei.errors import InputError, NotFoundError
from renkei.store import tables as t
from renkei.store.tables_sync import (
    sync_audit,
    sync_error,
    sync_link,
    sync_queue,
    sync_run,
    sync_state,
    sync_watermark,
)

OWNER = "assignedToId"
_AUDIT_INSERT = sync_audit.insert()
_STATE_VALUES = sync_state.c["values"]
_READ_PAGE = 2000  # records per adapter read (Salesforce's sObject Collections retrieve takes 2,000 ids)  # ``.c.values`` is the column collection's own method
_MIRRORED = ("Account", "Opportunity", "OpportunityContactRole")


@dataclass
class _Gathered:
    crm: dict[str, dict[str, dict[str, Any]]]  # object → id → record
    prospects: dict[int, dict[str, Any]]  # changed prospects (deleted included)
    cursors: dict[str, Cursor | None]
    ma_mark: tuple[dt.datetime, int] | None
    mirrored: dict[str, list[Mapping[str, Any]]]
    queued: int = 0


class SyncService:
    def __init__(
        self, engine: Engine, config: ConnectorConfig, *, clock: Clock | None = None,
        adapter: CrmAdapter | None = None,
    ) -> None:  # fmt: skip
        self.engine = engine
        self.config = config
        self.clock = clock or SystemClock()
        self.adapter: CrmAdapter = adapter or BuiltinCrmAdapter(CrmService(engine, clock=self.clock))
        self._described: dict[str, frozenset[str]] = {}
        self._users: tuple[dict[str, int], dict[int, str]] | None = None
        self._mapped: dict[str, list[tuple[FieldMapping, str]]] = {}
        self._plain_pairs: dict[str, list[tuple[str, str]]] = {}
        self._audit_rows: list[dict[str, Any]] | None = None  # set while a transaction buffers its audit rows

    def _field_names(self, obj: str) -> frozenset[str]:
        """The CRM object's field names, described once per service (one cycle)."""
        if obj not in self._described:
            self._described[obj] = frozenset(f["name"] for f in self.adapter.describe(obj)["fields"])
        return self._described[obj]

    # -- gathering ---------------------------------------------------------------------------

    def _cursor(self, conn: Connection, source: str) -> Cursor | None:
        row = conn.execute(sa.select(sync_watermark).where(sync_watermark.c.source == source)).first()
        if row is None or row.modstamp is None:
            return None
        return Cursor(row.modstamp, row.record_id)

    def _mappings(self, obj: str) -> list[tuple[FieldMapping, str]]:
        """The object's field pairs, worked out once per cycle (``_gather`` resets)."""
        if obj not in self._mapped:
            self._mapped[obj] = self.config.mappings(obj)
        return self._mapped[obj]

    def _field_pairs(self, obj: str) -> list[tuple[str, str]]:
        """(marketing field, CRM field) of each of the object's mappings, once per cycle."""
        if obj not in self._plain_pairs:
            self._plain_pairs[obj] = [(m.ma, f) for m, f in self._mappings(obj)]
        return self._plain_pairs[obj]

    def _synced_fields(self) -> set[str]:
        """The prospect fields a pair's planning and agreed values look at: the mapped ones, the
        assigned user and the stamps (a narrower read than the whole prospect)."""
        return {m.ma for obj in CRM_OBJECTS for m, _ in self._mappings(obj)} | {
            OWNER, "id", "isDeleted", "updatedAt", "salesforceLastSync"}  # fmt: skip

    def _user_links(self, conn: Connection) -> tuple[dict[str, int], dict[int, str]]:
        """Marketing users ↔ CRM users (``salesforceId``), read once per cycle (``_gather`` resets)."""
        if self._users is None:
            u = t.ma_user
            by_crm: dict[str, int] = {}
            by_user: dict[int, str] = {}
            for r in conn.execute(sa.select(u.c.id, u.c.salesforceId).order_by(u.c.id)):
                if r.salesforceId:
                    by_crm.setdefault(r.salesforceId, int(r.id))
                    by_user[int(r.id)] = r.salesforceId
            self._users = (by_crm, by_user)
        return self._users

    def _gather(self) -> _Gathered:
        self._users, self._mapped, self._plain_pairs = None, {}, {}
        with self.engine.connect() as conn:
            cursors = {f"crm:{o}": self._cursor(conn, f"crm:{o}") for o in (*CRM_OBJECTS, *_MIRRORED)}
            ma = conn.execute(
                sa.select(sync_watermark).where(sync_watermark.c.source == "ma:prospect")
            ).first()
            ma_mark = (ma.modstamp, int(ma.record_id)) if ma is not None and ma.modstamp is not None else None
            queued = conn.execute(sa.select(sync_queue)).all()
        crm: dict[str, dict[str, dict[str, Any]]] = {o: {} for o in CRM_OBJECTS}
        mirrored: dict[str, list[Mapping[str, Any]]] = {o: [] for o in _MIRRORED}
        new_cursors: dict[str, Cursor | None] = {}
        pending = {obj: cursors[f"crm:{obj}"] for obj in (*CRM_OBJECTS, *_MIRRORED)}
        while pending:  # one batch of every unfinished object per round
            if isinstance(self.adapter, ReadsManyChanges):
                batches = self.adapter.changes_many(pending)
            else:
                batches = {obj: self.adapter.changes(obj, cursor) for obj, cursor in pending.items()}
            for obj, batch in batches.items():
                for rec in batch.records:
                    if obj in crm:
                        crm[obj][str(rec["Id"])] = dict(rec)
                    else:
                        mirrored[obj].append(rec)
                pending[obj] = batch.cursor
                if batch.done:
                    new_cursors[f"crm:{obj}"] = pending.pop(obj)
        # records queued by a retry or an earlier over-full cycle
        by_source: dict[str, list[str]] = {}
        for item in queued:
            by_source.setdefault(item.source, []).append(item.record_id)
        for obj in CRM_OBJECTS:
            wanted = [i for i in by_source.get(f"crm:{obj}", []) if i not in crm[obj]]
            for rec in self.adapter.read(obj, wanted) if wanted else []:
                crm[obj][str(rec["Id"])] = dict(rec)
            if wanted:  # one order whatever the source, the change feed's: (SystemModstamp, Id)
                crm[obj] = dict(sorted(crm[obj].items(), key=lambda kv: (_stamp(kv[1]), kv[0])))
        with self.engine.connect() as conn:
            p = _ptable(conn)
            if ma_mark is not None:
                # (updatedAt, id) > mark as two index ranges: SQLite reads the row-value comparison as
                # updatedAt >= stamp and would walk every prospect with the mark's stamp (all the
                # prospects an initial sync created share one), making idle cycles O(prospects)
                stamp = sa.literal(ma_mark[0], type_=p.c.updatedAt.type)
                ranges: list[Any] = [
                    sa.and_(p.c.updatedAt == stamp, p.c.id > ma_mark[1]),
                    p.c.updatedAt > stamp,
                ]
            else:
                ranges = [sa.true()]
            # The newest change first, then the changes up to it — leaving out linked prospects whose
            # last change is the connector's own write (the planner drops those echoes anyway; after a
            # bulk create they are a whole org's worth of rows). The mark still moves past them.
            tops = [conn.execute(sa.select(p.c.updatedAt, p.c.id).where(r, p.c.updatedAt.is_not(None))
                                 .order_by(p.c.updatedAt.desc(), p.c.id.desc()).limit(1)).first() for r in ranges]  # fmt: skip
            top = max((x for x in tops if x is not None), key=lambda x: (x.updatedAt, x.id), default=None)
            prospects: dict[int, dict[str, Any]] = {}
            if top is not None:
                last = sa.literal(top.updatedAt, type_=p.c.updatedAt.type)
                upto = sa.or_(p.c.updatedAt < last, sa.and_(p.c.updatedAt == last, p.c.id <= top.id),
                              p.c.updatedAt.is_(None))  # fmt: skip
                own_echo = sa.and_(p.c.updatedAt == p.c.salesforceLastSync,
                                   sa.exists().where(sync_link.c.prospect_id == p.c.id))  # fmt: skip
                orders = (
                    [[p.c.id], [p.c.updatedAt, p.c.id]] if ma_mark is not None else [[p.c.updatedAt, p.c.id]]
                )
                for r, order in zip(ranges, orders, strict=True):
                    q = sa.select(p).where(r, upto, ~own_echo).order_by(*order)
                    prospects.update({int(row["id"]): dict(row) for row in conn.execute(q).mappings()})
            extra = [int(i) for i in by_source.get("ma:prospect", []) if int(i) not in prospects]
            if extra:
                prospects.update(
                    {
                        int(r["id"]): dict(r)
                        for r in conn.execute(sa.select(p).where(p.c.id.in_(extra))).mappings()
                    }
                )
        latest = max(((r["updatedAt"], r["id"]) for r in prospects.values() if r["updatedAt"]), default=None)
        if top is not None and (latest is None or (top.updatedAt, top.id) > latest):
            latest = (top.updatedAt, int(top.id))
        return _Gathered(crm, prospects, new_cursors, latest or ma_mark, mirrored, len(queued))

    # -- planning (pure over the gathered inputs and the store's state) ----------------------

    def plan(self) -> dict[str, Any]:
        """The dry run: everything the next cycle would do, with reasons; writes nothing."""
        gathered = self._gather()
        with self.engine.connect() as conn:
            ops = self._plan(conn, gathered)
        return {"operations": [o.to_dict() for o in ops], "counts": _counts(ops), "queued": gathered.queued}

    def _plan(self, conn: Connection, g: _Gathered) -> list[Op]:
        cfg = self.config
        links = _Links(conn)  # only the links this cycle's records touch are read (idle cycles stay cheap)
        links.prefetch({str(r[k]) for recs in g.crm.values() for r in recs.values()
                        for k in ("Id", "MasterRecordId", "ConvertedContactId") if r.get(k)}, set(g.prospects))  # fmt: skip
        p = _ptable(conn)
        ops: list[Op] = []
        planned_links: dict[str, int] = {}
        planned_creates: dict[str, tuple[str, str]] = {}  # email key → the CRM record creating its prospect
        touched_pairs: set[int] = set()
        # counted only under a cap: a count of every link costs tens of ms at a million links
        live_synced = (
            int(conn.execute(sa.select(sa.func.count()).select_from(sync_link)).scalar_one())
            if cfg.cap is not None
            else 0
        )
        planned_new = 0
        # the linked records' prospects and agreed values, read a page at a time (not per record)
        linked = sorted(
            {link[0] for recs in g.crm.values() for rid in recs if (link := links.crm(rid)) is not None}
        )
        rows = _prospect_rows(
            conn, p, [pid for pid in linked if pid not in g.prospects], self._synced_fields()
        )
        states = self._states(conn, linked)

        def prospect_row(pid: int) -> dict[str, Any] | None:
            if pid in g.prospects:
                return g.prospects[pid]
            if pid in rows:
                return rows[pid]
            row = conn.execute(sa.select(p).where(p.c.id == pid)).mappings().first()
            return dict(row) if row is not None else None

        def cap_ok() -> bool:
            return cfg.cap is None or live_synced + planned_new < cfg.cap

        filters = {obj: f for obj in CRM_OBJECTS if (f := cfg.filter_for(obj))}
        passing = {obj: self._passing(conn, obj, where, g.crm[obj]) for obj, where in filters.items()}
        ordered = [("Contact", r) for r in g.crm["Contact"].values()] + [
            ("Lead", r) for r in g.crm["Lead"].values()
        ]
        if cfg.prefer == "lead":
            ordered.reverse()
        by_key = self._prospects_by_key(
            conn,
            {k for _, r in ordered if links.crm(str(r["Id"])) is None and (k := email_key(r.get("Email")))},
        )
        # the records already linked to those emails' prospects: whether each is in the recycle bin,
        # read in batches now rather than one call per matching CRM record below
        candidate_ids = {c["id"] for cands in by_key.values() for c in cands}
        links.prefetch(set(), candidate_ids)
        linked_elsewhere = [pair for pid in candidate_ids if (pair := links.prospect(pid)) is not None]
        in_recycle_bin = {
            crm_id: bool(r.get("IsDeleted")) for crm_id, r in self._read_current(g, linked_elsewhere).items()
        }
        # A converted lead's contact takes the lead's prospect: decided before any other record with the
        # same email can claim it (contacts are planned before leads), so a second contact gets a
        # collision error instead of a competing move.
        converted_to = {
            link[0]: str(r["ConvertedContactId"])
            for r in g.crm["Lead"].values()
            if r.get("IsConverted") and r.get("ConvertedContactId") and not r.get("IsDeleted")
            and (link := links.crm(str(r["Id"]))) is not None
        }  # fmt: skip
        # A deleted record's person may live on as another lead or contact with the same email that was
        # left unlinked (prefer: contact/lead): the prospect moves to it instead of the recycle bin.
        gone = [str(r["Email"]) for _, r in ordered if r.get("IsDeleted") and not r.get("MasterRecordId")
                and links.crm(str(r["Id"])) is not None and email_key(r.get("Email"))]  # fmt: skip
        successors = self._crm_by_emails(gone, links) if gone else {}
        for obj, rec in ordered:
            rid = str(rec["Id"])
            link = links.crm(rid)
            pid = link[0] if link else None
            if rec.get("IsDeleted"):
                if pid is None:
                    continue
                if any(v == pid and c != rid for c, v in planned_links.items()):
                    continue  # another record of this person took the prospect over earlier in this cycle
                master = rec.get("MasterRecordId")
                if master:
                    other = links.crm(str(master))
                    if other is not None and other[0] != pid:
                        ops.append(Op(Action.MERGE, Side.MA, obj, rid, pid, f"CRM merged {rid} into {master}; "
                                      f"prospect {pid} is merged into prospect {other[0]}", target_id=str(other[0])))  # fmt: skip
                    else:
                        ops.append(Op(Action.MOVE_LINK, None, obj, rid, pid,
                                      f"CRM merged {rid} into {master}: the prospect follows the master", target_id=str(master)))  # fmt: skip
                    continue
                heir = self._heir(conn, successors.get(email_key(rec.get("Email")) or "", []), planned_links)
                if heir is not None:
                    ops.append(Op(Action.MOVE_LINK, None, obj, rid, pid, f"{obj} {rid} was deleted in the CRM; "
                                  f"{heir[0]} {heir[1]} has the same email: the prospect moves to it",
                                  target_id=heir[1]))  # fmt: skip
                    planned_links[heir[1]] = pid
                    continue
                action = Action.RECYCLE if cfg.on_crm_delete == "recycle" else Action.UNLINK
                ops.append(
                    Op(
                        action,
                        Side.MA,
                        obj,
                        rid,
                        pid,
                        f"{obj} {rid} was deleted in the CRM (on_crm_delete: {cfg.on_crm_delete})",
                    )
                )
                continue
            if obj == "Lead" and rec.get("IsConverted"):
                contact = rec.get("ConvertedContactId")
                if pid is not None and contact:
                    other = links.crm(str(contact))
                    if other is not None and other[0] != pid:
                        ops.append(Op(Action.MERGE, Side.MA, obj, rid, other[0], f"lead {rid} was converted to contact "
                                      f"{contact}; prospect {other[0]} is merged into prospect {pid} (history kept)",
                                      target_id=str(pid)))  # fmt: skip
                    ops.append(Op(Action.MOVE_LINK, None, obj, rid, pid,
                                  f"lead {rid} was converted to contact {contact}: the prospect moves with its history",
                                  target_id=str(contact)))  # fmt: skip
                    planned_links[str(contact)] = pid
                continue
            flt = cfg.filter_for(obj)
            if flt and rid not in passing[obj]:
                if pid is not None:
                    action = Action.RECYCLE if cfg.on_filter_mismatch == "recycle" else Action.UNLINK
                    ops.append(
                        Op(action, Side.MA, obj, rid, pid, f"{obj} {rid} no longer matches the filter: {flt}")
                    )
                else:
                    ops.append(
                        Op(Action.SKIP, None, obj, rid, None, f"does not match the {obj} filter: {flt}")
                    )
                continue
            if pid is not None:
                prospect = prospect_row(pid)
                if prospect is None:
                    continue
                state = states.get(pid, {})
                if prospect.get("isDeleted"):
                    if not self._crm_changed(obj, rec, state):
                        continue  # our own write echoing back: the deleted prospect stays deleted
                    ops.append(Op(Action.RESTORE, Side.MA, obj, rid, pid,
                                  f"{obj} {rid} changed in the CRM: the prospect is restored from the recycle bin"))  # fmt: skip
                ops += self._update_ops(conn, obj, rid, pid, rec, prospect, state, "fields differ")
                touched_pairs.add(pid)
                continue
            # unlinked CRM record
            key = email_key(rec.get("Email"))
            if key is None:
                ops.append(
                    Op(Action.SKIP, None, obj, rid, None, "no email: a prospect needs an email address")
                )
                continue
            candidates = by_key.get(key, [])
            live = [c for c in candidates if not c["isDeleted"]]
            if len(live) > 1:
                ops.append(Op(Action.ERROR, None, obj, rid, None, f"{len(live)} prospects share the email {rec.get('Email')}: "
                              "not linked (email collision; resolve by merging the prospects)",
                              error_kind="collision", code="EMAIL_COLLISION"))  # fmt: skip
                continue
            target = live[0]["id"] if live else (candidates[0]["id"] if candidates else None)
            creator = planned_creates.get(key)
            if target is None and creator is not None:
                # another record with this email creates the prospect in this cycle: never a second one
                if creator[0] == obj:
                    ops.append(Op(Action.ERROR, None, obj, rid, None, f"the email {rec.get('Email')} is on {obj} "
                                  f"{creator[1]} too: not linked (email collision)", error_kind="collision",
                                  code="EMAIL_COLLISION"))  # fmt: skip
                else:
                    ops.append(Op(Action.SKIP, None, obj, rid, None, f"the email's prospect is created from "
                                  f"{creator[0]} {creator[1]} (prefer: {cfg.prefer})"))  # fmt: skip
                continue
            if target is not None:
                # who has this prospect after this cycle's earlier decisions: a conversion, a move or link
                # planned above, else the stored link
                claimed = converted_to.get(target) or next(
                    (c for c, v in planned_links.items() if v == target and not c.startswith("!")), None
                )
                if claimed == rid:
                    continue  # the lead's conversion moves the prospect to this contact (planned below)
                existing = (claimed, _object_of(claimed)) if claimed else links.prospect(target)
                if (
                    not claimed
                    and existing is not None
                    and existing[0] != rid
                    and (
                        in_recycle_bin[existing[0]]
                        if existing[0] in in_recycle_bin
                        else self._deleted_in_crm(existing[1], existing[0])
                    )
                ):
                    existing = (
                        None  # its record is in the CRM's recycle bin: this record takes the prospect over
                    )
                if existing is not None and existing[0] != rid:
                    other_obj = existing[1]
                    if other_obj == "Lead" and obj == "Contact" and cfg.prefer == "contact":
                        ops.append(Op(Action.MOVE_LINK, None, obj, existing[0], target,
                                      f"lead and contact share the email {rec.get('Email')}: prefer contact",
                                      target_id=rid))  # fmt: skip
                        planned_links[rid] = target
                    elif other_obj == obj:
                        ops.append(Op(Action.ERROR, None, obj, rid, target, f"the email {rec.get('Email')} is on "
                                      f"{obj} {existing[0]} (already linked to prospect {target}) and on {rid}: not "
                                      "linked (email collision)", error_kind="collision", code="EMAIL_COLLISION"))  # fmt: skip
                    else:
                        ops.append(Op(Action.SKIP, None, obj, rid, target,
                                      f"the email is linked to {other_obj} {existing[0]} (prefer: {cfg.prefer})"))  # fmt: skip
                    continue
                if not cap_ok():
                    ops.append(Op(Action.ERROR, None, obj, rid, target, f"licence cap of {cfg.cap} synced prospects reached",
                                  error_kind="cap_reached", code="CAP_REACHED"))  # fmt: skip
                    continue
                prospect = prospect_row(target) or {}
                if prospect.get("isDeleted"):
                    ops.append(Op(Action.RESTORE, Side.MA, obj, rid, target,
                                  "a CRM record with this email changed: the prospect is restored"))  # fmt: skip
                ops.append(Op(Action.LINK, None, obj, rid, target, f"matched by email {rec.get('Email')}"))
                ops += self._update_ops(conn, obj, rid, target, rec, prospect, {}, "first sync after linking")
                planned_links[rid] = target
                planned_new += 1
                touched_pairs.add(target)
                continue
            if not cfg.auto_create_prospects:
                ops.append(Op(Action.SKIP, None, obj, rid, None, "auto_create_prospects is off"))
                continue
            if not cap_ok():
                ops.append(Op(Action.ERROR, None, obj, rid, None, f"licence cap of {cfg.cap} synced prospects reached",
                              error_kind="cap_reached", code="CAP_REACHED"))  # fmt: skip
                continue
            values = self._prospect_values(conn, obj, rec)
            ops.append(
                Op(
                    Action.CREATE,
                    Side.MA,
                    obj,
                    rid,
                    None,
                    f"new {obj} with email {rec.get('Email')}",
                    values=values,
                    record=rec,
                )
            )
            planned_creates[key] = (obj, rid)
            planned_new += 1

        # marketing-side changes
        agreed = self._states(conn, [pid for pid, row in g.prospects.items()
                                     if links.prospect(pid) is not None and pid not in touched_pairs and not _own_write(row)])  # fmt: skip
        linked_changes = [
            (pid, pair) for pid, prospect in g.prospects.items()
            if pid not in touched_pairs and not prospect.get("isDeleted") and not _own_write(prospect)
            and (pair := links.prospect(pid)) is not None and not self._ma_unchanged(pair[1], prospect, agreed.get(pid, {}))
        ]  # fmt: skip
        current = self._read_current(g, [pair for _, pair in linked_changes])
        ma_changed = {pid for pid, _ in linked_changes}
        planned_pids = {o.prospect_id for o in ops}
        # unlinked prospects bound for the CRM may match a record by email: look them all up at once
        by_email = self._crm_by_emails(
            [r["email"] for pid, r in g.prospects.items()
             if r.get("email") and not r.get("isDeleted") and pid not in touched_pairs and pid not in planned_pids
             and links.prospect(pid) is None and cfg.create_in_crm != "never"
             and (cfg.create_in_crm != "on_assignment" or r.get("assignedToId"))],
            links,
        )  # fmt: skip
        matched = self._read_current(
            g, [(crm_id, obj) for found in by_email.values() for obj, crm_id in found]
        )
        for pid, prospect in g.prospects.items():
            if pid in touched_pairs or prospect.get("isDeleted"):
                continue
            if links.prospect(pid) is not None and _own_write(prospect):
                continue  # the connector's own write is the last change (the echo of a past cycle)
            pair = links.prospect(pid)
            if pair is not None:
                crm_id, obj = pair
                if pid not in ma_changed:
                    continue  # only our own writes (or unmapped fields) changed: nothing to send, no CRM read
                found = current.get(crm_id)
                if found is None:
                    continue
                rec = dict(found)
                if rec.get("IsDeleted"):
                    continue
                ops += self._update_ops(
                    conn, obj, crm_id, pid, rec, prospect, agreed.get(pid, {}), "fields differ"
                )
                continue
            if pid in planned_pids:  # the CRM side's records planned something for this prospect
                continue
            gate = cfg.create_in_crm
            if gate == "never":
                ops.append(Op(Action.SKIP, None, "Lead", None, pid, "create_in_crm is never"))
                continue
            if gate == "on_assignment" and not prospect.get("assignedToId"):
                ops.append(Op(Action.SKIP, None, "Lead", None, pid,
                              "not assigned to a user (create_in_crm: on_assignment): stays marketing-only"))  # fmt: skip
                continue
            if not prospect.get("email"):
                ops.append(Op(Action.SKIP, None, "Lead", None, pid, "no email"))
                continue
            match = self._first_match(by_email.get(email_key(prospect["email"]) or "", []), links)
            if match is not None and match[1] in matched:
                obj, crm_id = match
                ops.append(Op(Action.LINK, None, obj, crm_id, pid, f"matched existing {obj} by email"))
                rec = dict(matched[crm_id])
                ops += self._update_ops(conn, obj, crm_id, pid, rec, prospect, {}, "first sync after linking")
                continue
            if not cap_ok():
                ops.append(Op(Action.ERROR, None, "Lead", None, pid, f"licence cap of {cfg.cap} synced prospects reached",
                              error_kind="cap_reached", code="CAP_REACHED"))  # fmt: skip
                continue
            planned_new += 1
            ops.append(Op(Action.CREATE, Side.CRM, "Lead", None, pid,
                          "assigned prospect without a CRM record" if gate == "on_assignment" else "create_in_crm: always",
                          values=self._lead_values(conn, prospect)))  # fmt: skip
        return ops

    def _update_ops(self, conn: Connection, obj: str, record_id: str, prospect_id: int, rec: Mapping[str, Any],
                    prospect: Mapping[str, Any], state: Mapping[str, Sequence[Any]], reason: str) -> list[Op]:  # fmt: skip
        """The field writes one linked pair needs, as an UPDATE op (none when the pair is in step)."""
        writes = self._decisions(conn, obj, rec, prospect, state)
        if not writes:
            return []
        return [
            Op(Action.UPDATE, None, obj, record_id, prospect_id, reason, writes=tuple(writes), record=rec)
        ]

    def _same_store(self) -> bool:
        """The CRM is this database's built-in CRM (filters can then run as SQL here)."""
        crm = getattr(self.adapter, "crm", None)
        return isinstance(self.adapter, BuiltinCrmAdapter) and getattr(crm, "engine", None) is self.engine

    def _passing(self, conn: Connection, obj: str, where: str, record_ids: Iterable[str]) -> set[str]:
        """Which of these records match the object's filter — compiled to SQL, so parent fields
        (``Account.Name``) and date literals mean exactly what they mean in ``renkei crm query``."""
        from renkei.crm.soql_sql import compile_where
        from renkei.store import dynamic

        wanted = list(record_ids)
        if not self._same_store():  # a CRM elsewhere (Salesforce): ask it, 200 ids per query
            soqls = []
            for start in range(0, len(wanted), 200):
                ids = ", ".join(f"'{i}'" for i in wanted[start : start + 200] if _ID_CHARS.fullmatch(i))
                if ids:
                    soqls.append(f"SELECT Id FROM {obj} WHERE ({where}) AND Id IN ({ids})")
            return {str(r["Id"]) for rows in self._queries(soqls) for r in rows}
        schema = dynamic.load_crm_schema(conn)
        table = schema.table(obj)
        condition = compile_where(schema, obj, where, now=self.clock.now())
        out = set()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            out |= {r.Id for r in conn.execute(sa.select(table.c.Id).where(table.c.Id.in_(chunk), condition))}
        return out

    def _state(self, conn: Connection, pid: int) -> dict[str, Sequence[Any]]:
        values = conn.execute(sa.select(_STATE_VALUES).where(sync_state.c.prospect_id == pid)).scalar()
        return _pairs(values)

    def _prospects_by_key(self, conn: Connection, keys: set[str]) -> dict[str, list[dict[str, Any]]]:
        """Prospects (id, isDeleted) per email key, for many keys at once (one query per 500)."""
        p, wanted = t.prospect, sorted(keys)
        out: dict[str, list[dict[str, Any]]] = {}
        for start in range(0, len(wanted), 500):
            q = sa.select(p.c.id, p.c.isDeleted, p.c.emailKey).where(
                p.c.emailKey.in_(wanted[start : start + 500])
            )
            for r in conn.execute(q.order_by(p.c.id)):
                out.setdefault(r.emailKey, []).append({"id": r.id, "isDeleted": r.isDeleted})
        return out

    def _states(self, conn: Connection, pids: Sequence[int]) -> dict[int, dict[str, Sequence[Any]]]:
        """The agreed values of many prospects (one query per 500)."""
        out: dict[int, dict[str, Sequence[Any]]] = {}
        for start in range(0, len(pids), 500):
            rows = conn.execute(
                sa.select(sync_state.c.prospect_id, _STATE_VALUES).where(
                    sync_state.c.prospect_id.in_(pids[start : start + 500])
                )
            )
            for pid, values in rows:
                out[int(pid)] = _pairs(values)
        return out

    def _read_current(self, g: _Gathered, pairs: Sequence[tuple[str, str]]) -> dict[str, Mapping[str, Any]]:
        """The CRM records of (CRM id, object) pairs: from the cycle's gathered changes when there,
        else read in batches (one read per object and 200 ids, not one call per record)."""
        out: dict[str, Mapping[str, Any]] = {}
        missing: dict[str, list[str]] = {}
        for crm_id, obj in pairs:
            if crm_id in g.crm.get(obj, {}):
                out[crm_id] = g.crm[obj][crm_id]
            else:
                missing.setdefault(obj, []).append(crm_id)
        if len(missing) > 1 and isinstance(self.adapter, ReadsManyRecords):  # one call for all objects
            for rows in self.adapter.read_many(missing).values():
                out.update({str(r["Id"]): r for r in rows})
            return out
        for obj, wanted in missing.items():
            out.update({str(r["Id"]): r for r in self.adapter.read(obj, wanted)})
        return out

    def _ma_unchanged(
        self, obj: str, prospect: Mapping[str, Any], state: Mapping[str, Sequence[Any]]
    ) -> bool:
        """Every mapped field (and the assigned user) still holds the value agreed at the last sync."""
        fields = [m.ma for m, _ in self._mappings(obj) if m.ma in prospect] + [OWNER]
        for f in fields:
            if f not in state:
                return False
            value, agreed = prospect.get(f), state[f][1]
            if not plainly_same(value, agreed) and not same(_jsonable(value), agreed):
                return False
        return True

    def _crm_changed(self, obj: str, rec: Mapping[str, Any], state: Mapping[str, Sequence[Any]]) -> bool:
        for m, crm_field in self._mappings(obj):
            if m.ma in state and not same(rec.get(crm_field), state[m.ma][0]):
                return True
        return False

    def _owner_values(self, conn: Connection, crm_owner: str | None) -> int | None:
        if not crm_owner:
            return None
        return self._user_links(conn)[0].get(crm_owner)

    def _crm_owner(self, conn: Connection, user_id: Any) -> str | None:
        """The CRM user of a marketing user (None when unlinked)."""
        return self._user_links(conn)[1].get(user_id) if isinstance(user_id, int) else None

    def _decisions(self, conn: Connection, obj: str, rec: Mapping[str, Any], prospect: Mapping[str, Any],
                   state: Mapping[str, Sequence[Any]]) -> list[FieldWrite]:  # fmt: skip
        describe = self._field_names(obj)
        crm_time = rec.get("SystemModstamp")
        ma_time = prospect.get("updatedAt")
        writes = []
        for m, crm_field in self._mappings(obj):
            if crm_field not in describe or m.ma not in prospect:
                continue
            if m.ma == "email" and email_key(rec.get(crm_field)) == email_key(prospect.get(m.ma)):
                continue  # the same address (case, width and spaces are not differences)
            ma_value = prospect[m.ma]
            crm_value = _to_ma(rec.get(crm_field), ma_value)
            if plainly_same(crm_value, ma_value):
                continue  # equal values never conflict: the judge would write nothing
            last = state.get(m.ma)
            d = decide(m.rule, Observed(crm_value, crm_time), Observed(ma_value, ma_time),
                       last[0] if last else None, last[1] if last else None,
                       synced_before=last is not None, sync_blanks=m.sync_blanks)  # fmt: skip
            if d is not None:
                old = rec.get(crm_field) if d.to is Side.CRM else prospect.get(m.ma)
                writes.append(
                    FieldWrite(d.to, m.ma, crm_field, old, d.value, d.rule.value, d.evidence.value, d.reason)
                )
        # the assigned user follows the CRM owner through the user links (and back)
        crm_owner = self._owner_values(conn, rec.get("OwnerId"))
        if plainly_same(crm_owner, prospect.get(OWNER)):
            return writes
        last = state.get(OWNER)
        d2 = decide(Rule.MOST_RECENT, Observed(crm_owner, crm_time), Observed(prospect.get(OWNER), ma_time),
                    last[0] if last else None, last[1] if last else None, synced_before=last is not None)  # fmt: skip
        if d2 is not None:
            if d2.to is Side.MA:
                writes.append(FieldWrite(Side.MA, OWNER, "OwnerId", prospect.get(OWNER), d2.value, d2.rule.value,
                                         d2.evidence.value, d2.reason))  # fmt: skip
            else:
                owner = self._crm_owner(conn, d2.value)
                if owner:
                    writes.append(FieldWrite(Side.CRM, OWNER, "OwnerId", rec.get("OwnerId"), owner, d2.rule.value,
                                             d2.evidence.value, d2.reason))  # fmt: skip
        return writes

    def _prospect_values(self, conn: Connection, obj: str, rec: Mapping[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for m, crm_field in self.config.fields_to_pull(obj):
            if crm_field in rec and not is_blank(rec.get(crm_field)):
                values[m.ma] = _to_ma(rec[crm_field], None)
        owner = self._owner_values(conn, rec.get("OwnerId"))
        if owner is not None:
            values[OWNER] = owner
        return values

    def _lead_values(self, conn: Connection, prospect: Mapping[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        describe = self._field_names("Lead")
        for m, crm_field in self.config.fields_to_create_in_crm("Lead"):
            if crm_field not in describe:
                continue
            value = prospect.get(m.ma)
            if not is_blank(value):
                values[crm_field] = value
        for required in ("LastName", "Company"):
            if is_blank(values.get(required)):
                values[required] = self.config.placeholder
        owner = self._crm_owner(conn, prospect.get(OWNER))
        if owner:
            values["OwnerId"] = owner
        return values

    def _deleted_in_crm(self, obj: str, crm_id: str) -> bool:
        rows = self.adapter.read(obj, [crm_id])
        return not rows or bool(rows[0].get("IsDeleted"))

    def _crm_by_emails(self, emails: Sequence[str], links: _Links) -> dict[str, list[tuple[str, str]]]:
        """Unlinked contacts and unconverted leads per email key: one ``Email IN (…)`` query per
        object and 200 emails (not one query per prospect)."""
        keys = sorted({k for e in emails if (k := email_key(e))})
        out: dict[str, list[tuple[str, str]]] = {}
        queries: list[tuple[str, str]] = []
        for start in range(0, len(keys), 200):
            quoted = ", ".join(
                "'" + k.replace("\\", "\\\\").replace("'", "\\'") + "'" for k in keys[start : start + 200]
            )
            for obj in ("Contact", "Lead"):
                where = f"Email IN ({quoted})" + (" AND IsConverted = false" if obj == "Lead" else "")
                queries.append((obj, f"SELECT Id, Email FROM {obj} WHERE {where} ORDER BY Id"))
        for (obj, _), rows in zip(queries, self._queries([q for _, q in queries]), strict=True):
            for rec in rows:
                key = email_key(rec.get("Email"))
                if key is not None and links.crm(str(rec["Id"])) is None:
                    out.setdefault(key, []).append((obj, str(rec["Id"])))
        return out

    def _queries(self, soqls: Sequence[str]) -> list[list[Mapping[str, Any]]]:
        """Several SOQL queries: batched where the adapter can (a Composite call per five), else one each."""
        if isinstance(self.adapter, QueriesMany):
            return self.adapter.query_many(soqls)
        return [list(self.adapter.query(soql)) for soql in soqls]

    def _heir(
        self, conn: Connection, found: list[tuple[str, str]], planned_links: Mapping[str, int]
    ) -> tuple[str, str] | None:
        """The one live, unlinked record (passing its filter, not claimed in this cycle) that takes over
        a deleted record's prospect; None when there is none — or several of one kind (a collision
        is not resolved by guessing: the prospect is recycled and each record reported when it syncs)."""
        cands = [(o, i) for o, i in found if i not in planned_links]
        for o in {o for o, _ in cands}:
            where = self.config.filter_for(o)
            if where:
                ok = self._passing(conn, o, where, [i for oo, i in cands if oo == o])
                cands = [(oo, i) for oo, i in cands if oo != o or i in ok]
        order = ("Lead", "Contact") if self.config.prefer == "lead" else ("Contact", "Lead")
        for o in order:
            mine = [c for c in cands if c[0] == o]
            if len(mine) == 1:
                return mine[0]
            if mine:
                return None
        return None

    def _first_match(self, found: list[tuple[str, str]], links: _Links) -> tuple[str, str] | None:
        """Contacts before leads (``prefer: lead`` puts leads first), skipping records linked meanwhile."""
        live = [f for f in found if links.crm(f[1]) is None]
        if self.config.prefer == "lead":
            live.sort(key=lambda x: x[0] != "Lead")
        return live[0] if live else None

    # -- running -----------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """One cycle. Returns ``runId``, per-side counts and errors."""
        if self.config.paused:
            return {"runId": None, "status": "paused", "counts": {}, "errors": []}
        started = self.clock.now()
        with self.engine.begin() as conn:
            run_id = int(conn.execute(sync_run.insert().values(kind="cycle", started_at=started, status="running")
                                      .returning(sync_run.c.id)).scalar_one())  # fmt: skip
        bulk_created = create_in_bulk(self, run_id, started)  # the plain new records of a large cycle
        gathered = self._gather()
        with self.engine.connect() as conn:
            ops = self._plan(conn, gathered)
        ops = self._queue_overflow(ops)
        errors = self._execute(run_id, ops)
        with self.engine.begin() as conn:
            for source, cursor in gathered.cursors.items():
                self._save_mark(
                    conn, source, cursor.modstamp if cursor else None, cursor.id if cursor else None
                )
            self._sync_mirrors(conn, gathered.mirrored)
            # The marketing watermark stays at the last prospect this cycle read: moving it past our own
            # writes would also pass an edit a user committed while the cycle ran (a lost edit). Our own
            # writes come back once and are dropped as echoes against the agreed values (_ma_unchanged).
            if gathered.ma_mark is not None:
                self._save_mark(conn, "ma:prospect", gathered.ma_mark[0], str(gathered.ma_mark[1]))
            conn.execute(sync_queue.delete().where(sync_queue.c.enqueued_at <= started))
            counts = _counts(ops)
            counts["ma"]["create"] += bulk_created
            conn.execute(sync_run.update().where(sync_run.c.id == run_id).values(
                finished_at=self.clock.now(), status="done", counts=counts))  # fmt: skip
        if self.config.activity_tasks.enabled:  # opt-in: visitor activities → CRM tasks (tasks_export.py)
            from renkei.connector.tasks_export import export_tasks

            exported = export_tasks(self, run_id)
            counts["tasks"], errors = exported.counts(), [*errors, *exported.errors]
            with self.engine.begin() as conn:
                conn.execute(sync_run.update().where(sync_run.c.id == run_id).values(counts=counts))
        return {"runId": run_id, "status": "done", "counts": counts, "errors": errors,
                "crmCalls": dict(getattr(self.adapter, "calls", {}))}  # fmt: skip

    def _queue_overflow(self, ops: list[Op]) -> list[Op]:
        cfg = self.config
        if cfg.rate_per_hour is None or len(ops) <= cfg.queue_threshold:
            return ops
        keep, rest = ops[: cfg.queue_threshold], ops[cfg.queue_threshold :]
        now = self.clock.now()
        with self.engine.begin() as conn:
            for op in rest:
                if op.record_id and op.object in CRM_OBJECTS:
                    source, rid = f"crm:{op.object}", op.record_id
                elif op.prospect_id is not None:
                    source, rid = "ma:prospect", str(op.prospect_id)
                else:
                    continue
                exists = conn.execute(sa.select(sync_queue).where(sync_queue.c.source == source,
                                                                  sync_queue.c.record_id == rid)).first()  # fmt: skip
                if exists is None:
                    conn.execute(sync_queue.insert().values(source=source, record_id=rid,
                                                            enqueued_at=now + dt.timedelta(microseconds=1)))  # fmt: skip
        return keep

    def _save_mark(
        self, conn: Connection, source: str, modstamp: dt.datetime | None, record_id: str | None
    ) -> None:
        if modstamp is None:
            return
        exists = conn.execute(
            sa.select(sync_watermark.c.source).where(sync_watermark.c.source == source)
        ).first()
        if exists:
            conn.execute(sync_watermark.update().where(sync_watermark.c.source == source)
                         .values(modstamp=modstamp, record_id=record_id))  # fmt: skip
        else:
            conn.execute(
                sync_watermark.insert().values(source=source, modstamp=modstamp, record_id=record_id)
            )

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A transaction whose audit rows go in one statement as it ends (and vanish with it on error)."""
        self._audit_rows = []
        try:
            with self.engine.begin() as conn:
                yield conn
                self._flush_audit(conn)
        finally:
            self._audit_rows = None

    def _flush_audit(self, conn: Connection) -> None:
        if self._audit_rows:
            conn.execute(_AUDIT_INSERT, self._audit_rows)
            self._audit_rows.clear()

    def _audit(self, conn: Connection, run_id: int, direction: str, action: str, obj: str, record_id: str,
               prospect_id: int | None, w: FieldWrite | None = None, reason: str | None = None) -> None:  # fmt: skip
        row = {"run_id": run_id, "at": self.clock.now(), "direction": direction, "action": action, "object": obj,
               "record_id": record_id, "prospect_id": prospect_id, "field": w.ma_field if w else None,
               "old": _jsonable(w.old) if w else None, "new": _jsonable(w.new) if w else None,
               "rule": w.rule if w else None, "evidence": w.evidence if w else None,
               "reason": (reason or (w.reason if w else None) or "")[:255]}  # fmt: skip
        if self._audit_rows is not None:
            self._audit_rows.append(row)
        else:  # executemany form: the insert compiles once per cycle (``.values(...)`` per row costs ~5 ms)
            conn.execute(_AUDIT_INSERT, [row])

    def _error(self, conn: Connection, run_id: int | None, kind: str, obj: str, record_id: str | None,
               prospect_id: int | None, code: str | None, message: str, *, field_name: str | None = None,
               value: Any = None, retriable: bool = False) -> dict[str, Any]:  # fmt: skip
        now = self.clock.now()
        open_same = conn.execute(sa.select(sync_error.c.id, sync_error.c.attempts).where(
            sync_error.c.resolved_at.is_(None), sync_error.c.object == obj, sync_error.c.record_id == record_id,
            sync_error.c.prospect_id == prospect_id, sync_error.c.code == code, sync_error.c.field == field_name)).first()  # fmt: skip
        backoff = now + dt.timedelta(seconds=30 * 2 ** min((open_same.attempts if open_same else 0), 8))
        if open_same is not None:
            conn.execute(sync_error.update().where(sync_error.c.id == open_same.id).values(
                attempts=open_same.attempts + 1, at=now, run_id=run_id, message=message[:1024],
                next_attempt_at=backoff if retriable else None))  # fmt: skip
        else:
            conn.execute(sync_error.insert().values(
                run_id=run_id, at=now, kind=kind, object=obj, record_id=record_id, prospect_id=prospect_id,
                field=field_name, value=_jsonable(value), code=code, message=message[:1024], retriable=retriable,
                attempts=1, next_attempt_at=backoff if retriable else None))  # fmt: skip
        return {"kind": kind, "object": obj, "recordId": record_id, "prospectId": prospect_id, "field": field_name,
                "code": code, "message": message}  # fmt: skip

    def _execute(self, run_id: int, ops: list[Op]) -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = []
        now = self.clock.now()
        # CRM creates and updates go in batches (≤ 200 per call) per object
        crm_updates: dict[str, list[Op]] = {}
        crm_creates: list[Op] = []
        ma_creates: list[Op] = []
        updates: list[Op] = []  # consecutive pair updates, written a batch at a time
        updating: set[int | None] = set()

        def write_updates() -> None:
            for op in self._write_prospect(conn, run_id, updates, now):
                crm_updates.setdefault(op.object, []).append(op)
            updates.clear()
            updating.clear()

        with self._writing() as conn:
            for op in ops:
                if op.action is Action.UPDATE:
                    if op.prospect_id in updating or len(updates) >= 1000:
                        write_updates()
                    updates.append(op)
                    updating.add(op.prospect_id)
                    continue
                if op.action not in (Action.ERROR, Action.CREATE):
                    write_updates()  # the other actions see the updates planned before them, as planned
                if op.action is Action.ERROR:
                    errors.append(self._error(conn, run_id, op.error_kind or "error", op.object, op.record_id,
                                              op.prospect_id, op.code, op.reason))  # fmt: skip
                elif op.action is Action.CREATE and op.side is Side.MA:
                    ma_creates.append(op)
                elif op.action is Action.CREATE and op.side is Side.CRM:
                    crm_creates.append(op)
                elif op.action is Action.LINK:
                    self._link(conn, run_id, op.prospect_id, op.object, op.record_id, op.reason)
                elif op.action is Action.MOVE_LINK:
                    self._move_link(conn, run_id, op)
                elif op.action is Action.MERGE:
                    self._merge_prospects(conn, run_id, op)
                elif op.action in (Action.RECYCLE, Action.UNLINK):
                    self._recycle_or_unlink(conn, run_id, op)
                elif op.action is Action.RESTORE:
                    assert op.prospect_id is not None
                    conn.execute(t.prospect.update().where(t.prospect.c.id == op.prospect_id).values(
                        isDeleted=False, deletedAt=None, updatedAt=now))  # fmt: skip
                    self._audit(
                        conn,
                        run_id,
                        "ma",
                        "restore",
                        op.object,
                        op.record_id or "",
                        op.prospect_id,
                        reason=op.reason,
                    )
            write_updates()
            self._flush_audit(conn)
            for start in range(0, len(ma_creates), 500):
                self._create_prospects(conn, run_id, ma_creates[start : start + 500], now)
        errors += self._write_crm_updates(run_id, crm_updates, now)
        errors += self._write_crm_creates(run_id, crm_creates, now)
        return errors

    def _create_prospects(self, conn: Connection, run_id: int, ops: Sequence[Op], now: dt.datetime) -> None:
        """New prospects from CRM records, a batch at a time: the prospects (linked from birth), their
        audit rows and their agreed values each in one statement."""
        p = _ptable(conn)
        rows = []
        for op in ops:
            assert op.record_id is not None
            values = dict(op.values)
            rows.append({**values, "emailKey": email_key(values.get("email")), "score": 0, "isDeleted": False,
                         "createdAt": now, "updatedAt": now, "source": values.get("source") or "CRM",
                         "salesforceId": op.record_id, "salesforceLastSync": now,
                         "salesforceLeadId": op.record_id if op.object == "Lead" else None,
                         "salesforceContactId": op.record_id if op.object == "Contact" else None})  # fmt: skip
        pids = [0] * len(rows)
        shapes = [tuple(sorted(r)) for r in rows]  # executemany takes one key set per statement
        for shape in dict.fromkeys(shapes):
            group = [(i, r) for i, r in enumerate(rows) if shapes[i] == shape]
            result = conn.execute(
                p.insert().returning(p.c.id, sort_by_parameter_order=True), [r for _, r in group]
            )
            for (i, _), new_id in zip(group, result.scalars(), strict=True):
                pids[i] = int(new_id)
        conn.execute(sync_link.insert(), [{"prospect_id": pid, "crm_object": op.object, "crm_id": op.record_id,
                                           "linked_at": now, "run_id": run_id} for op, pid in zip(ops, pids, strict=True)])  # fmt: skip
        # one audit row per new prospect: every field it took from the CRM record (explain reads it)
        conn.execute(_AUDIT_INSERT, [{"run_id": run_id, "at": now, "direction": "ma", "action": "create",
                                      "object": "prospect", "record_id": str(pid), "prospect_id": pid, "field": None,
                                      "old": None, "new": {k: _jsonable(v) for k, v in op.values.items()},
                                      "rule": "create", "evidence": Evidence.RULE.value, "reason": op.reason[:255]}
                                     for op, pid in zip(ops, pids, strict=True)])  # fmt: skip
        created = {
            int(r["id"]): dict(r) for r in conn.execute(sa.select(p).where(p.c.id.in_(pids))).mappings()
        }
        u = t.ma_user
        owners = {
            r.salesforceId: r.id for r in conn.execute(sa.select(u.c.id, u.c.salesforceId)) if r.salesforceId
        }
        states = []
        for obj in {op.object for op in ops}:
            mine = [(op, pid) for op, pid in zip(ops, pids, strict=True) if op.object == obj]
            records = {str(op.record_id): op.record for op, _ in mine if op.record}  # as the cycle read them
            unread = [str(op.record_id) for op, _ in mine if not op.record]
            records.update({str(r["Id"]): r for r in self.adapter.read(obj, unread)} if unread else {})
            for op, pid in mine:
                rec, prospect = records.get(str(op.record_id)), created[pid]
                if rec is None:
                    continue
                states.append({"prospect_id": pid, "crm_object": obj, "synced_at": now,
                               "values": self._agreed_values(obj, rec, prospect, owners.get(rec.get("OwnerId")))})  # fmt: skip
        if states:
            conn.execute(sync_state.insert(), states)

    def _link(self, conn: Connection, run_id: int, pid: int | None, obj: str, crm_id: str | None, reason: str,
              *, audit: bool = True) -> None:  # fmt: skip
        assert pid is not None and crm_id is not None
        conn.execute(
            sync_link.delete().where(sa.or_(sync_link.c.prospect_id == pid, sync_link.c.crm_id == crm_id))
        )
        conn.execute(sync_link.insert().values(prospect_id=pid, crm_object=obj, crm_id=crm_id, linked_at=self.clock.now(),
                                               run_id=run_id))  # fmt: skip
        ids_ = {"salesforceId": crm_id, "salesforceLeadId": crm_id if obj == "Lead" else None,
                "salesforceContactId": crm_id if obj == "Contact" else None, "salesforceLastSync": self.clock.now()}  # fmt: skip
        conn.execute(t.prospect.update().where(t.prospect.c.id == pid).values(ids_))
        if audit:
            self._audit(conn, run_id, "ma", "link", obj, crm_id, pid, reason=reason)

    def _move_link(self, conn: Connection, run_id: int, op: Op) -> None:
        assert op.target_id is not None and op.prospect_id is not None
        new_obj = ids.object_for_id(op.target_id) or op.object
        self._link(conn, run_id, op.prospect_id, new_obj, op.target_id, op.reason)
        if new_obj == "Contact" and op.object == "Lead":
            conn.execute(t.prospect.update().where(t.prospect.c.id == op.prospect_id).values(
                salesforceLeadId=op.record_id, convertedAt=sa.func.coalesce(t.prospect.c.convertedAt, self.clock.now())))  # fmt: skip

    def _merge_prospects(self, conn: Connection, run_id: int, op: Op) -> None:
        """Merge the losing prospect (``op.prospect_id`` for CRM merges) into the surviving one."""
        assert op.target_id is not None and op.prospect_id is not None
        keep, lose = int(op.target_id), op.prospect_id
        p = t.prospect
        now = self.clock.now()
        for table, col in ((t.visitor_activity, "prospectId"), (t.visitor, "prospectId"), (t.visit, "prospectId"),
                           (t.visitor_page_view, "prospectId")):  # fmt: skip
            conn.execute(table.update().where(table.c[col] == lose).values({col: keep}))
        conn.execute(sync_link.delete().where(sync_link.c.prospect_id == lose))
        conn.execute(p.update().where(p.c.id == lose).values(isDeleted=True, deletedAt=now, updatedAt=now))
        self._audit(conn, run_id, "ma", "merge", "prospect", str(lose), keep, reason=op.reason)

    def _recycle_or_unlink(self, conn: Connection, run_id: int, op: Op) -> None:
        assert op.prospect_id is not None
        now = self.clock.now()
        if op.action is Action.RECYCLE:
            conn.execute(t.prospect.update().where(t.prospect.c.id == op.prospect_id).values(
                isDeleted=True, deletedAt=now, updatedAt=now))  # fmt: skip
            self._audit(
                conn, run_id, "ma", "recycle", op.object, op.record_id or "", op.prospect_id, reason=op.reason
            )
        else:
            conn.execute(sync_link.delete().where(sync_link.c.prospect_id == op.prospect_id))
            conn.execute(t.prospect.update().where(t.prospect.c.id == op.prospect_id).values(
                salesforceId=None, salesforceLeadId=None, salesforceContactId=None, updatedAt=now))  # fmt: skip
            self._audit(
                conn, run_id, "ma", "unlink", op.object, op.record_id or "", op.prospect_id, reason=op.reason
            )

    def _write_prospect(self, conn: Connection, run_id: int, ops: Sequence[Op], now: dt.datetime) -> list[Op]:
        """Write the prospect side of a batch of pair updates (one executemany per set of columns), audit
        them, and record the agreed values of the pairs that need no CRM write. Returns the ops that
        have CRM writes to make."""
        p = _ptable(conn)
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        agreed: list[Op] = []
        to_crm: list[Op] = []
        for op in ops:
            writes = [w for w in op.writes if w.to is Side.MA]
            if writes:
                values = {w.ma_field: w.new for w in writes}
                if "email" in values:
                    values["emailKey"] = email_key(values["email"])
                values["updatedAt"] = values["salesforceLastSync"] = (
                    now  # equal stamps mark our own write (_own_write)
                )
                by_columns.setdefault(tuple(sorted(values)), []).append({**values, "_pid": op.prospect_id})
                for w in writes:
                    self._audit(
                        conn, run_id, "ma", "update", "prospect", str(op.prospect_id), op.prospect_id, w
                    )
            (to_crm if any(w.to is Side.CRM for w in op.writes) else agreed).append(op)
        for params in by_columns.values():
            conn.execute(p.update().where(p.c.id == sa.bindparam("_pid")), params)
        self._agree(conn, agreed, now)
        return to_crm

    def _agree(self, conn: Connection, ops: Sequence[Op], now: dt.datetime) -> None:
        """Remember what each side holds after these ops (the no-echo and field-level evidence basis):
        the records as the cycle read them with the ops' CRM writes applied (read when an op has none)
        and the prospects as they are now, a page at a time."""
        records: list[Mapping[str, Any] | None] = [None] * len(ops)
        unread: dict[str, list[int]] = {}
        for i, op in enumerate(ops):
            assert op.prospect_id is not None and op.record_id is not None
            if op.record:
                records[i] = {**op.record, **{w.crm_field: w.new for w in op.writes if w.to is Side.CRM}}
            else:
                unread.setdefault(op.object, []).append(i)
        got: dict[str, Mapping[str, Any]] = {}
        if unread and isinstance(self.adapter, ReadsManyRecords):  # five queries to a Composite call
            wanted_by_obj = {
                obj: [str(ops[i].record_id) for i in positions] for obj, positions in unread.items()
            }
            for rows_ in self.adapter.read_many(wanted_by_obj).values():
                got.update({str(r["Id"]): r for r in rows_})
        else:
            for obj, positions in unread.items():
                wanted = [str(ops[i].record_id) for i in positions]
                for start in range(0, len(wanted), _READ_PAGE):
                    got.update(
                        {str(r["Id"]): r for r in self.adapter.read(obj, wanted[start : start + _READ_PAGE])}
                    )
        for positions in unread.values():
            for i in positions:
                records[i] = got.get(str(ops[i].record_id))
        prospects = _prospect_rows(conn, _ptable(conn), sorted({int(op.prospect_id or 0) for op in ops}),
                                   self._synced_fields())  # fmt: skip
        rows: dict[int, dict[str, Any]] = {}
        for op, rec in zip(ops, records, strict=True):
            pid = int(op.prospect_id or 0)
            prospect = prospects.get(pid)
            if rec is not None and prospect is not None:
                values = self._agreed_values(
                    op.object, rec, prospect, self._owner_values(conn, rec.get("OwnerId"))
                )
                rows[pid] = {"prospect_id": pid, "crm_object": op.object, "values": values, "synced_at": now}
        if rows:
            _save_states(conn, list(rows.values()))

    def _agreed_values(self, obj: str, rec: Mapping[str, Any], prospect: Mapping[str, Any],
                       crm_owner: int | None) -> dict[str, Any]:  # fmt: skip
        """One prospect's agreed values: field → the value when both sides hold it alike (one JSON
        type, one value: most fields, kept bare to keep a million rows small), else [CRM value as
        marketing keeps it, marketing value] (``_pairs`` reads both)."""
        values: dict[str, Any] = {}
        for ma, f in self._field_pairs(
            obj
        ):  # the hottest loop of a busy cycle: plain tuples, no calls for plain values
            if ma in prospect:
                ma_value, crm_value = prospect[ma], rec.get(f)
                if isinstance(crm_value, float):
                    crm_value = _to_ma(crm_value, ma_value)
                if type(crm_value) not in _AS_IS:
                    crm_value = _jsonable(crm_value)
                if type(ma_value) not in _AS_IS:
                    ma_value = _jsonable(ma_value)
                kind = type(ma_value)  # alike: one plain JSON type, one value (as _alike, inlined)
                values[ma] = (ma_value if type(crm_value) is kind and kind in _AS_IS and crm_value == ma_value
                              else [crm_value, ma_value])  # fmt: skip
        ma_owner = prospect.get(OWNER)
        values[OWNER] = crm_owner if _alike(crm_owner, ma_owner) else [crm_owner, ma_owner]
        return values

    def _write_crm_updates(
        self, run_id: int, updates: Mapping[str, list[Op]], now: dt.datetime
    ) -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = []
        for obj, ops in updates.items():
            payload = [
                {"Id": op.record_id, **{w.crm_field: _to_crm(w.new) for w in op.writes if w.to is Side.CRM}}
                for op in ops
            ]
            results = self.adapter.update(obj, payload)
            retry: list[tuple[Op, dict[str, Any]]] = []
            written: list[Op] = []
            with self._writing() as conn:
                for op, body, result in zip(ops, payload, results, strict=True):
                    if result.success:
                        for w in op.writes:
                            if w.to is Side.CRM:
                                self._audit(
                                    conn, run_id, "crm", "update", obj, op.record_id or "", op.prospect_id, w
                                )
                        written.append(op)
                        continue
                    bad = {f for _, _, fields in result.errors for f in fields}
                    for code, message, fields in result.errors:
                        f0 = fields[0] if fields else None
                        errors.append(self._error(conn, run_id, _kind(code), obj, op.record_id, op.prospect_id, code,
                                                  message, field_name=f0, value=body.get(f0) if f0 else None,
                                                  retriable=result.retriable))  # fmt: skip
                    if self.config.partial_writes and bad and not result.retriable:
                        rest = {k: v for k, v in body.items() if k not in bad}
                        if len(rest) > 1:
                            retry.append((op, rest))
                self._agree(conn, written, now)
            if retry:
                again = self.adapter.update(obj, [b for _, b in retry])
                written = []
                with self._writing() as conn:
                    for (op, body), result in zip(retry, again, strict=True):
                        if result.success:
                            for w in op.writes:
                                if w.to is Side.CRM and w.crm_field in body:
                                    self._audit(
                                        conn,
                                        run_id,
                                        "crm",
                                        "update",
                                        obj,
                                        op.record_id or "",
                                        op.prospect_id,
                                        w,
                                    )
                            written.append(op)
                    self._agree(conn, written, now)
        return errors

    def _write_crm_creates(self, run_id: int, creates: list[Op], now: dt.datetime) -> list[dict[str, Any]]:
        if not creates:
            return []
        results = self.adapter.create("Lead", [dict(op.values) for op in creates])
        errors: list[dict[str, Any]] = []
        created: list[Op] = []
        with self._writing() as conn:
            for op, result in zip(creates, results, strict=True):
                if not result.success or result.id is None:
                    for code, message, fields in result.errors:
                        errors.append(self._error(conn, run_id, _kind(code), "Lead", None, op.prospect_id, code, message,
                                                  field_name=fields[0] if fields else None, retriable=result.retriable))  # fmt: skip
                    continue
                self._audit(
                    conn, run_id, "crm", "create", "Lead", result.id, op.prospect_id, reason=op.reason
                )
                for k, val in op.values.items():
                    self._audit(conn, run_id, "crm", "update", "Lead", result.id, op.prospect_id,
                                FieldWrite(Side.CRM, k, k, None, val, "create", Evidence.RULE.value, "lead created"))  # fmt: skip
                self._link(conn, run_id, op.prospect_id, "Lead", result.id, op.reason, audit=False)
                assert op.prospect_id is not None
                created.append(Op(Action.UPDATE, None, "Lead", result.id, op.prospect_id, ""))
            self._agree(conn, created, now)  # the new leads read back a page at a time, not one call each
        return errors

    def _sync_mirrors(self, conn: Connection, mirrored: Mapping[str, list[Mapping[str, Any]]]) -> None:
        """Accounts → prospect accounts, opportunities (via contact roles) → read-only opportunity data."""
        from renkei.core.activities import ActivityType, AssetKind
        from renkei.marketing.activity_service import NewActivity, record_activities

        now = self.clock.now()
        pa, o, op_ = t.prospect_account, t.opportunity, t.opportunity_prospect
        for acc in mirrored.get("Account", []):
            values = {"name": acc.get("Name"), "billingAddressOne": acc.get("BillingStreet"),
                      "billingCity": acc.get("BillingCity"), "billingState": acc.get("BillingState"),
                      "billingZip": acc.get("BillingPostalCode"), "billingCountry": acc.get("BillingCountry"),
                      "phone": acc.get("Phone"), "website": acc.get("Website"), "industry": acc.get("Industry"),
                      "type": acc.get("Type"), "rating": acc.get("Rating"), "annualRevenue": acc.get("AnnualRevenue"),
                      "employees": acc.get("NumberOfEmployees"), "isDeleted": bool(acc.get("IsDeleted")),
                      "updatedAt": now}  # fmt: skip
            existing = conn.execute(sa.select(pa.c.id).where(pa.c.salesforceId == acc["Id"])).scalar()
            if existing is None:
                conn.execute(pa.insert().values(salesforceId=acc["Id"], createdAt=now, **values))
            else:
                conn.execute(pa.update().where(pa.c.id == existing).values(values))
        events: list[NewActivity] = []
        for opp in mirrored.get("Opportunity", []):
            custom = {k: _jsonable(v) for k, v in opp.items() if k.endswith("__c")}
            values = {"name": opp.get("Name"), "stageName": opp.get("StageName"), "isWon": bool(opp.get("IsWon")),
                      "isClosed": bool(opp.get("IsClosed")), "amount": opp.get("Amount"),
                      "probability": opp.get("Probability"), "closeDate": opp.get("CloseDate"), "type": opp.get("Type"),
                      "leadSource": opp.get("LeadSource"), "salesforceAccountId": opp.get("AccountId"),
                      "customFields": custom, "isDeleted": bool(opp.get("IsDeleted")), "updatedAt": now}  # fmt: skip
            existing_row = conn.execute(
                sa.select(o.c.id, o.c.isWon, o.c.isClosed).where(o.c.salesforceId == opp["Id"])
            ).first()
            if existing_row is None:
                oid = int(
                    conn.execute(
                        o.insert().values(salesforceId=opp["Id"], createdAt=now, **values).returning(o.c.id)
                    ).scalar_one()
                )
                change = ActivityType.NEW_OPPORTUNITY
            else:
                oid = existing_row.id
                conn.execute(o.update().where(o.c.id == oid).values(values))
                change = None
                if values["isClosed"] and not existing_row.isClosed:
                    change = (
                        ActivityType.OPPORTUNITY_WON if values["isWon"] else ActivityType.OPPORTUNITY_LOST
                    )
            if values["isClosed"] and existing_row is None:
                change = ActivityType.OPPORTUNITY_WON if values["isWon"] else ActivityType.OPPORTUNITY_LOST
            if change is not None:
                for row in conn.execute(sa.select(op_.c.prospectId).where(op_.c.opportunityId == oid)):
                    events.append(NewActivity(change, AssetKind.OPPORTUNITY, prospect_id=row.prospectId,
                                              details=opp.get("Name"), refs={"opportunityId": opp["Id"]}))  # fmt: skip
        for role in mirrored.get("OpportunityContactRole", []):
            linked = conn.execute(
                sa.select(sync_link.c.prospect_id).where(sync_link.c.crm_id == role.get("ContactId"))
            ).scalar()
            mirror_id = conn.execute(
                sa.select(o.c.id).where(o.c.salesforceId == role.get("OpportunityId"))
            ).scalar()
            if linked is None or mirror_id is None:
                continue
            oid = int(mirror_id)
            exists = conn.execute(
                sa.select(op_.c.prospectId).where(op_.c.opportunityId == oid, op_.c.prospectId == linked)
            ).first()
            if role.get("IsDeleted"):
                conn.execute(op_.delete().where(op_.c.opportunityId == oid, op_.c.prospectId == linked))
            elif exists is None:
                conn.execute(op_.insert().values(opportunityId=oid, prospectId=linked, role=role.get("Role"),
                                                 isPrimary=bool(role.get("IsPrimary"))))  # fmt: skip
                orow = conn.execute(sa.select(o).where(o.c.id == oid)).mappings().one()
                events.append(NewActivity(ActivityType.NEW_OPPORTUNITY, AssetKind.OPPORTUNITY, prospect_id=linked,
                                          details=orow["name"], refs={"opportunityId": orow["salesforceId"]}))  # fmt: skip
        # prospect accounts for linked contacts (only when accounts changed: an idle cycle stays O(changes))
        changed_accounts = {str(a["Id"]) for a in mirrored.get("Account", [])}
        if changed_accounts:
            # the contacts of the changed accounts, one query per 200 accounts (not a read per link)
            account_of: dict[str, str] = {}
            valid = sorted(a for a in changed_accounts if ids.is_valid(a))
            for start in range(0, len(valid), 200):
                quoted = ", ".join(f"'{a}'" for a in valid[start : start + 200])
                for rec in self.adapter.query(
                    f"SELECT Id, AccountId FROM Contact WHERE AccountId IN ({quoted})"
                ):
                    account_of[str(rec["Id"])] = str(rec["AccountId"])
            contact_links = conn.execute(sa.select(sync_link).where(
                sync_link.c.crm_object == "Contact", sync_link.c.crm_id.in_(list(account_of)))).all()  # fmt: skip
            for contact_link in contact_links:
                account = account_of.get(contact_link.crm_id)
                if account in changed_accounts:
                    pa_id = conn.execute(sa.select(pa.c.id).where(pa.c.salesforceId == account)).scalar()
                    if pa_id is not None:
                        conn.execute(t.prospect.update().where(t.prospect.c.id == contact_link.prospect_id)
                                     .values(prospectAccountId=pa_id, salesforceAccountId=account))  # fmt: skip
        if events:
            record_activities(conn, events, now)

    # -- explain, rollback, errors, queue ----------------------------------------------------

    def explain(self, prospect_id: int, field_name: str | None = None) -> dict[str, Any]:
        with self.engine.connect() as conn:
            p = _ptable(conn)  # custom fields included
            prospect = conn.execute(sa.select(p).where(p.c.id == prospect_id)).mappings().first()
            if prospect is None:
                raise NotFoundError(f"prospect {prospect_id} does not exist")
            link = conn.execute(sa.select(sync_link).where(sync_link.c.prospect_id == prospect_id)).first()
            state = self._state(conn, prospect_id)
            rec: dict[str, Any] = {}
            if link is not None:
                rows = self.adapter.read(link.crm_object, [link.crm_id])
                rec = dict(rows[0]) if rows else {}
            obj = link.crm_object if link is not None else "Lead"
            # a create is one audit row whose ``new`` holds every field the new prospect took
            created = conn.execute(sa.select(sync_audit).where(
                sync_audit.c.prospect_id == prospect_id, sync_audit.c.direction == "ma", sync_audit.c.action == "create",
                sync_audit.c.field.is_(None)).order_by(sync_audit.c.id.desc()).limit(1)).mappings().first()  # fmt: skip
            fields_out = []
            for m, crm_field in self.config.mappings(obj):
                if field_name and field_name not in (m.ma, crm_field):
                    continue
                last_write = conn.execute(sa.select(sync_audit).where(
                    sync_audit.c.prospect_id == prospect_id, sync_audit.c.field == m.ma,
                    sync_audit.c.action == "update").order_by(sync_audit.c.id.desc()).limit(1)).mappings().first()  # fmt: skip
                if (created is not None and isinstance(created["new"], dict) and m.ma in created["new"]
                        and (last_write is None or last_write["id"] < created["id"])):  # fmt: skip
                    last_write = {**created, "old": None, "new": created["new"][m.ma]}  # type: ignore[assignment]
                last = state.get(m.ma)
                nxt = None
                if link is not None:
                    d: Decision | None = decide(m.rule, Observed(_to_ma(rec.get(crm_field), prospect.get(m.ma)), rec.get("SystemModstamp")),
                                                Observed(prospect.get(m.ma), prospect.get("updatedAt")),
                                                last[0] if last else None, last[1] if last else None,
                                                synced_before=last is not None, sync_blanks=m.sync_blanks)  # fmt: skip
                    nxt = ({"write": d.to.value, "value": _jsonable(d.value), "evidence": d.evidence.value, "reason": d.reason}
                           if d else {"write": None, "reason": "in step" if same(rec.get(crm_field), prospect.get(m.ma))
                                      else "no write under this rule (blank or one-way)"})  # fmt: skip
                fields_out.append({
                    "field": m.ma, "crmField": crm_field, "rule": m.rule.value, "syncBlanks": m.sync_blanks,
                    "marketingValue": _jsonable(prospect.get(m.ma)), "crmValue": _jsonable(rec.get(crm_field)),
                    "lastWrite": None if last_write is None else {
                        "at": _jsonable(last_write["at"]), "runId": last_write["run_id"],
                        "writtenTo": last_write["direction"], "from": last_write["old"], "to": last_write["new"],
                        "evidence": last_write["evidence"], "why": last_write["reason"]},
                    "nextCycle": nxt,
                })  # fmt: skip
        if field_name and not fields_out:
            raise InputError(f"field {field_name!r} is not mapped for {obj}", code="INVALID_FIELD")
        return {"prospectId": prospect_id, "linkedTo": {"object": link.crm_object, "id": link.crm_id} if link else None,
                "fields": fields_out}  # fmt: skip

    def rollback(self, run_id: int) -> dict[str, Any]:
        """Restore every value the run overwrote, on both sides (when not changed since), audited."""
        with self.engine.begin() as conn:
            run = conn.execute(sa.select(sync_run).where(sync_run.c.id == run_id)).first()
            if run is None:
                raise NotFoundError(f"sync run {run_id} does not exist")
            if run.rolled_back_by is not None:
                raise InputError(
                    f"run {run_id} was already rolled back by run {run.rolled_back_by}",
                    code="ALREADY_ROLLED_BACK",
                )
            rows = conn.execute(sa.select(sync_audit).where(sync_audit.c.run_id == run_id, sync_audit.c.action == "update",
                                                            sync_audit.c.rule != "create")
                                .order_by(sync_audit.c.id.desc())).mappings().all()  # fmt: skip
            new_run = int(conn.execute(sync_run.insert().values(kind="rollback", started_at=self.clock.now(),
                                                                status="running").returning(sync_run.c.id)).scalar_one())  # fmt: skip
        restored, skipped = 0, []
        crm_writes: dict[str, dict[str, dict[str, Any]]] = {}
        with self.engine.begin() as conn:
            for r in rows:
                if r["direction"] == "ma":
                    p = _ptable(conn)
                    current = conn.execute(
                        sa.select(p.c[r["field"]]).where(p.c.id == r["prospect_id"])
                    ).scalar()
                    if not same(_jsonable(current), r["new"]):
                        skipped.append(
                            {
                                "prospectId": r["prospect_id"],
                                "field": r["field"],
                                "reason": "changed since the run",
                            }
                        )
                        continue
                    value = _from_json(p.c[r["field"]], r["old"])
                    conn.execute(p.update().where(p.c.id == r["prospect_id"]).values(
                        {r["field"]: value, "updatedAt": self.clock.now()}))  # fmt: skip
                    self._audit(conn, new_run, "ma", "update", "prospect", r["record_id"], r["prospect_id"],
                                FieldWrite(Side.MA, r["field"], r["field"], r["new"], r["old"], "rollback", "rule",
                                           f"rollback of run {run_id}"))  # fmt: skip
                    restored += 1
                else:
                    crm_field = self._crm_field(r["object"], r["field"])
                    crm_writes.setdefault(r["object"], {}).setdefault(r["record_id"], {})[crm_field] = (
                        r["old"],
                        r["new"],
                        r,
                    )
        for obj, per_record in crm_writes.items():
            current = {str(x["Id"]): x for x in self.adapter.read(obj, list(per_record))}
            payload = []
            for rid, fields_ in per_record.items():
                body = {"Id": rid}
                for crm_field, (old, new, _row) in fields_.items():
                    if same(_jsonable(current.get(rid, {}).get(crm_field)), new):
                        body[crm_field] = old
                    else:
                        skipped.append(
                            {"recordId": rid, "field": crm_field, "reason": "changed since the run"}
                        )
                if len(body) > 1:
                    payload.append(body)
            results = self.adapter.update(obj, payload) if payload else []
            with self.engine.begin() as conn:
                for body, result in zip(payload, results, strict=True):
                    if not result.success:
                        skipped.append(
                            {"recordId": body["Id"], "reason": "; ".join(m for _, m, _ in result.errors)}
                        )
                        continue
                    for crm_field, old in body.items():
                        if crm_field == "Id":
                            continue
                        _old, new, row = per_record[body["Id"]][crm_field]
                        self._audit(conn, new_run, "crm", "update", obj, body["Id"], row["prospect_id"],
                                    FieldWrite(Side.CRM, row["field"], crm_field, new, old, "rollback", "rule",
                                               f"rollback of run {run_id}"))  # fmt: skip
                        restored += 1
        with self.engine.begin() as conn:
            conn.execute(sync_run.update().where(sync_run.c.id == run_id).values(rolled_back_by=new_run))
            conn.execute(sync_run.update().where(sync_run.c.id == new_run).values(
                status="done", finished_at=self.clock.now(), counts={"restored": restored, "skipped": len(skipped)}))  # fmt: skip
            forgotten: dict[int, set[str]] = {}  # the restored values are the agreed ones now
            for r in rows:
                forgotten.setdefault(r["prospect_id"], set()).add(r["field"])
            for pid, values in conn.execute(sa.select(sync_state.c.prospect_id, _STATE_VALUES)
                                            .where(sync_state.c.prospect_id.in_(list(forgotten)))).all():  # fmt: skip
                kept = {f: v for f, v in values.items() if f not in forgotten[pid]}
                conn.execute(
                    sync_state.update().where(sync_state.c.prospect_id == pid).values({"values": kept})
                )
        return {"runId": new_run, "rolledBack": run_id, "restored": restored, "skipped": skipped}

    def _crm_field(self, obj: str, ma_field: str) -> str:
        if ma_field == OWNER:
            return "OwnerId"
        for m, f in self.config.mappings(obj):
            if m.ma == ma_field:
                return f
        return ma_field

    def errors(self, *, include_resolved: bool = False) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            q = sa.select(sync_error).order_by(sync_error.c.id)
            if not include_resolved:
                q = q.where(sync_error.c.resolved_at.is_(None))
            return [{k: _jsonable(v) for k, v in r.items()} for r in conn.execute(q).mappings()]

    def retry(self, error_id: int | None = None) -> dict[str, Any]:
        """Queue the records of open errors for the next cycle, then run it."""
        now = self.clock.now()
        with self.engine.begin() as conn:
            q = sa.select(sync_error).where(sync_error.c.resolved_at.is_(None))
            if error_id is not None:
                q = q.where(sync_error.c.id == error_id)
            rows = conn.execute(q).mappings().all()
            if error_id is not None and not rows:
                raise NotFoundError(f"no open sync error {error_id}")
            for r in rows:
                if r["record_id"] and r["object"] in CRM_OBJECTS:
                    source, rid = f"crm:{r['object']}", r["record_id"]
                elif r["prospect_id"] is not None:
                    source, rid = "ma:prospect", str(r["prospect_id"])
                else:
                    continue
                if (
                    conn.execute(
                        sa.select(sync_queue).where(
                            sync_queue.c.source == source, sync_queue.c.record_id == rid
                        )
                    ).first()
                    is None
                ):
                    conn.execute(sync_queue.insert().values(source=source, record_id=rid, enqueued_at=now))
                conn.execute(sync_error.update().where(sync_error.c.id == r["id"]).values(resolved_at=now))
        result = self.run()
        return {"retried": len(rows), "run": result}

    def queue(self) -> dict[str, Any]:
        with self.engine.connect() as conn:
            pending = int(conn.execute(sa.select(sa.func.count()).select_from(sync_queue)).scalar_one())
        rate = self.config.rate_per_hour
        eta = None if not pending else (0 if rate is None else round(pending / rate * 3600))
        return {
            "pending": pending,
            "ratePerHour": rate,
            "etaSeconds": eta,
            "threshold": self.config.queue_threshold,
        }


def _ptable(conn: Connection) -> sa.Table:
    """The prospect table with its custom fields (custom fields sync like standard ones)."""
    from renkei.store import dynamic

    return dynamic.load_prospect_schema(conn).table


class _Links:
    """The prospect ↔ CRM record links, read on demand (and in batches for a cycle's records)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._by_crm: dict[str, tuple[int, str] | None] = {}
        self._by_prospect: dict[int, tuple[str, str] | None] = {}

    def _remember(self, rows: Iterable[Any]) -> None:
        for r in rows:
            self._by_crm[r.crm_id] = (int(r.prospect_id), r.crm_object)
            self._by_prospect[int(r.prospect_id)] = (r.crm_id, r.crm_object)

    def prefetch(self, crm_ids: set[str], prospect_ids: set[int]) -> None:
        for column, wanted, cache in ((sync_link.c.crm_id, sorted(crm_ids), self._by_crm),
                                      (sync_link.c.prospect_id, sorted(prospect_ids), self._by_prospect)):  # fmt: skip
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                self._remember(self.conn.execute(sa.select(sync_link).where(column.in_(chunk))))
                for key in chunk:
                    cache.setdefault(key, None)  # type: ignore[arg-type]

    def crm(self, crm_id: str) -> tuple[int, str] | None:
        """(prospect id, CRM object) linked to a CRM record."""
        if crm_id not in self._by_crm:
            self._by_crm[crm_id] = None
            self._remember(self.conn.execute(sa.select(sync_link).where(sync_link.c.crm_id == crm_id)))
        return self._by_crm[crm_id]

    def prospect(self, prospect_id: int) -> tuple[str, str] | None:
        """(CRM id, CRM object) linked to a prospect."""
        if prospect_id not in self._by_prospect:
            self._by_prospect[prospect_id] = None
            self._remember(
                self.conn.execute(sa.select(sync_link).where(sync_link.c.prospect_id == prospect_id))
            )
        return self._by_prospect[prospect_id]


def _object_of(crm_id: str) -> str:
    return "Lead" if crm_id.startswith("00Q") else "Contact"


_ID_CHARS = re.compile(r"[A-Za-z0-9]{15,18}")


def _save_states(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert or replace agreed-value rows in one statement (an upsert on SQLite and PostgreSQL)."""
    from sqlalchemy.dialects import postgresql, sqlite

    stmt = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(sync_state)
    excluded = stmt.excluded
    conn.execute(stmt.on_conflict_do_update(index_elements=[sync_state.c.prospect_id], set_={
        "crm_object": excluded.crm_object, "values": excluded["values"], "synced_at": excluded.synced_at}), rows)  # fmt: skip


def _prospect_rows(
    conn: Connection, p: sa.Table, pids: Sequence[int], fields: Iterable[str]
) -> dict[int, dict[str, Any]]:
    """Prospects by id with these of their fields (those the table has), one query per 500."""
    out: dict[int, dict[str, Any]] = {}
    columns = [p.c.id, *(p.c[f] for f in sorted(set(fields) - {"id"}) if f in p.c)]
    for start in range(0, len(pids), 500):
        for r in conn.execute(sa.select(*columns).where(p.c.id.in_(pids[start : start + 500]))).mappings():
            out[int(r["id"])] = dict(r)
    return out


def _stamp(rec: Mapping[str, Any]) -> dt.datetime:
    return rec.get("SystemModstamp") or dt.datetime.min.replace(tzinfo=dt.UTC)


def _own_write(prospect: Mapping[str, Any]) -> bool:
    """The prospect's last change is the connector's own write: it stamps updatedAt and
    salesforceLastSync with one instant; any later edit moves updatedAt past it."""
    return prospect.get("updatedAt") is not None and prospect.get("updatedAt") == prospect.get(
        "salesforceLastSync"
    )


def _pairs(values: dict[str, Any] | None) -> dict[str, Sequence[Any]]:
    """Agreed values as the judge takes them: field → [CRM value, marketing value] (a bare value
    stands for both sides: ``_agreed_values`` stores alike sides so)."""
    if values is None:
        return {}
    return {f: v if v.__class__ is list else [v, v] for f, v in values.items()}  # no type() calls: 3x faster


def _alike(crm_value: Any, ma_value: Any) -> bool:
    """Both sides hold one JSON value of one type (so a bare value can stand for the pair; never a
    list, which would read as a pair)."""
    return type(crm_value) is type(ma_value) and type(crm_value) in _AS_IS and crm_value == ma_value


def _kind(code: str) -> str:
    if code in ("UNABLE_TO_LOCK_ROW", "REQUEST_LIMIT_EXCEEDED", "SERVER_UNAVAILABLE", "UNAVAILABLE"):
        return "unavailable"
    if code in ("NOT_FOUND", "ENTITY_IS_DELETED"):
        return "not_found"
    if code == "CANNOT_UPDATE_CONVERTED_LEAD":
        return "conflict"
    return "validation"


_AS_IS = (str, int, bool, float, type(None))  # values JSON keeps as they are (``_jsonable`` returns them)


def _to_ma(crm_value: Any, like: Any) -> Any:
    """A CRM value as the marketing side keeps it (numbers to ints where the prospect has ints)."""
    if isinstance(crm_value, float) and (isinstance(like, int) or crm_value.is_integer()):
        return int(crm_value)
    return crm_value


def _to_crm(value: Any) -> Any:
    return value


def _from_json(column: Any, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(column.type, sa.DateTime) or column.type.__class__.__name__ == "UTCDateTime":
        return dt.datetime.fromisoformat(value)
    return value


def _counts(ops: Iterable[Op]) -> dict[str, Any]:
    out: dict[str, Any] = {"crm": {"create": 0, "update": 0, "delete": 0}, "ma": {"create": 0, "update": 0, "delete": 0},
                           "link": 0, "skip": 0, "error": 0}  # fmt: skip
    for op in ops:
        if op.action is Action.CREATE and op.side is not None:
            out[op.side.value]["create"] += 1
        elif op.action is Action.UPDATE:
            for side in {w.to for w in op.writes}:
                out[side.value]["update"] += 1
        elif op.action in (Action.RECYCLE, Action.MERGE):
            out["ma"]["delete"] += 1
        elif op.action in (Action.LINK, Action.MOVE_LINK):
            out["link"] += 1
        elif op.action is Action.SKIP:
            out["skip"] += 1
        elif op.action is Action.ERROR:
            out["error"] += 1
    return out
