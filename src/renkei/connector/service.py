"""The connector: one sync cycle = gather the changes of both sides → plan (pure decisions) →
execute the plan (CRM writes through the adapter in batches of ≤ 200, marketing writes in the
store) → persist links, agreed values, watermarks, audit and errors.

``plan()`` runs the same gathering and planning and writes nothing, so the dry run says exactly
what the next ``run()`` will do.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import gc
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from renkei import ids
from renkei.clock import Clock, SystemClock
from renkei.connector.adapters.builtin import BuiltinCrmAdapter
from renkei.connector.bulk import BulkCreated, create_in_bulk
from renkei.connector.config import CRM_OBJECTS, ConnectorConfig, FieldMapping
from renkei.core.identity import email_key
from renkei.core.sync.judge import (
    Evidence,
    Rule,
    Side,
    same_value,
)
from renkei.core.sync.judge import jsonable as _jsonable
from renkei.core.sync.messages import Action, FieldWrite, Op
from renkei.core.sync.planner import ABSENT, ABSENTS, OWNER, Planner, own_write, queries, to_ma
from renkei.core.sync.ports import CrmAdapter, Cursor, ReadsManyChanges, ReadsManyRecords
from renkei.crm.service import CrmService
from renkei.errors import InputError, NotFoundError
from renkei.store import tables as t
from renkei.store.bulkexec import executemany
from renkei.store.checkpoints import checkpoints_alongside
from renkei.store.db import row_dicts
from renkei.store.tables_sync import (
    sync_audit,
    sync_error,
    sync_link,
    sync_queue,
    sync_run,
    sync_state,
    sync_state_range,
    sync_watermark,
)

_AUDIT_INSERT = sync_audit.insert()
_STATE_VALUES = sync_state.c["values"]  # ``.c.values`` is the column collection's own method
_STATE_TEXT = sa.type_coerce(_STATE_VALUES, sa.Text)  # the stored JSON as it is (``state_values`` decodes it)
_READ_PAGE = 2000  # records per adapter read (Salesforce's sObject Collections retrieve takes 2,000 ids)
_MIRRORED = ("Account", "Opportunity", "OpportunityContactRole")
_COMMIT_EVERY = 1000  # pair updates per commit of a cycle's prospect writes (``_commit_part``)


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
        self._empty_pairs: dict[str | None, dict[str, Sequence[Any]]] = {}
        self._columns: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        self._audit_rows: list[dict[str, Any]] | None = None  # set while a transaction buffers its audit rows
        # the changed prospects as this cycle read them (``_gather``) and those it has written since:
        # the unwritten ones still hold what was read, so ``_agree`` needs no second read of them
        self._read_prospects: dict[int, Mapping[str, Any]] = {}
        self._written_prospects: set[int] = set()
        # what this cycle's pair updates wrote to prospects it had read (plain values only): the
        # prospect as agreed is then what was read with these applied, not a read-back
        self._pair_writes: dict[int, dict[str, Any]] = {}
        # pair updates left for the next cycle: their prospect was edited after this cycle read it
        self._deferred: list[Op] = []
        # SQLite: the prospects this cycle's bulk copy created (its stamp, id ranges; ``BulkCreated``)
        self._bulk_created: BulkCreated | None = None

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

    def _pair_columns(self, obj: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The object's (marketing fields, CRM fields) in mapping order, once per cycle."""
        if obj not in self._columns:
            pairs = self._mappings(obj)
            self._columns[obj] = (tuple(m.ma for m, _ in pairs), tuple(f for _, f in pairs))
        return self._columns[obj]

    def _left_out(self, conn: Connection, obj: str | None) -> dict[str, Sequence[Any]]:
        """What a sparse agreed-values row of ``obj`` means by a field it does not name: each field
        ``_agreed_values`` writes for the object (its mapped prospect fields and the owner) as
        ``[None, None]`` — both sides were empty when they were agreed. Once per cycle."""
        if obj not in self._empty_pairs:
            columns = _ptable(conn).c
            names = [ma for ma in self._pair_columns(obj)[0] if ma in columns] if obj else []
            self._empty_pairs[obj] = dict.fromkeys([*names, OWNER], _BOTH_EMPTY)
        return self._empty_pairs[obj]

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

    def _fresh_caches(self) -> None:
        """Forget what a cycle worked out once (user links, mappings): the next reads them anew."""
        self._users, self._mapped, self._columns, self._empty_pairs = None, {}, {}, {}

    def _gather(self) -> _Gathered:
        self._fresh_caches()
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
            # the fields the planner and the agreed values look at (the linked records' prospects are
            # read the same way): half the prospect's columns, so half the cost of each changed row
            synced = [p.c[f] for f in sorted(self._synced_fields()) if f in p.c]
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
            tops: list[tuple[Any, int]] = []
            for r in ranges:
                if ma_mark is not None and r is ranges[0]:
                    # the mark's own stamp: max(id) (PostgreSQL would walk the primary key backwards,
                    # through every prospect, for an ORDER BY … LIMIT 1 that finds nothing)
                    same = conn.execute(sa.select(sa.func.max(p.c.id)).where(r)).scalar()
                    if same is not None:
                        tops.append((ma_mark[0], int(same)))
                    continue
                row = conn.execute(sa.select(p.c.updatedAt, p.c.id).where(r, p.c.updatedAt.is_not(None))
                                   .order_by(p.c.updatedAt.desc(), p.c.id.desc()).limit(1)).first()  # fmt: skip
                if row is not None:
                    tops.append((row.updatedAt, int(row.id)))
            top = _Top(*max(tops)) if tops else None
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
                pieces: list[Any] = [upto]
                bulk = self._bulk_created
                if bulk is not None and bulk.ranges:
                    pieces = _past_bulk(p, bulk, top, upto)
                for r, order in zip(ranges, orders, strict=True):
                    for piece in pieces:
                        q = sa.select(*synced).where(r, piece, ~own_echo).order_by(*order)
                        prospects.update(_rows_by_id(conn.execute(q)))
            extra = [int(i) for i in by_source.get("ma:prospect", []) if int(i) not in prospects]
            if extra:
                prospects.update(_rows_by_id(conn.execute(sa.select(*synced).where(p.c.id.in_(extra)))))
        latest = max(((r["updatedAt"], r["id"]) for r in prospects.values() if r["updatedAt"]), default=None)
        if top is not None and (latest is None or (top.updatedAt, top.id) > latest):
            latest = (top.updatedAt, int(top.id))
        # what the cycle read of each prospect (the planner's reads of linked records' prospects join it)
        self._read_prospects, self._written_prospects, self._pair_writes = dict(prospects), set(), {}
        self._deferred = []
        return _Gathered(crm, prospects, new_cursors, latest or ma_mark, mirrored, len(queued))

    # -- planning (pure over the gathered inputs and the store's state) ----------------------

    def plan(self) -> dict[str, Any]:
        """The dry run: everything the next cycle would do, with reasons; writes nothing."""
        gathered = self._gather()
        with self.engine.connect() as conn:
            ops = self._plan(conn, gathered)
        return {"operations": [o.to_dict() for o in ops], "counts": _counts(ops), "queued": gathered.queued}

    def _plan(self, conn: Connection, g: _Gathered) -> list[Op]:
        return Planner(self.config, self.adapter, _View(self, conn)).plan(g.crm, g.prospects)

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
            return {str(r["Id"]) for rows in queries(self.adapter, soqls) for r in rows}
        schema = dynamic.load_crm_schema(conn)
        table = schema.table(obj)
        condition = compile_where(schema, obj, where, now=self.clock.now())
        out = set()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            out |= {r.Id for r in conn.execute(sa.select(table.c.Id).where(table.c.Id.in_(chunk), condition))}
        return out

    def _states(self, conn: Connection, pids: Sequence[int]) -> dict[int, dict[str, Sequence[Any]]]:
        """The agreed values of many prospects (``read_states``), sparse rows' empty fields spelled out."""
        return {
            pid: _pairs(values, self._left_out(conn, obj) if sparse else None)
            for pid, (values, obj, sparse) in read_states(conn, pids).items()
        }

    def _owner_values(self, conn: Connection, crm_owner: str | None) -> int | None:
        if not crm_owner:
            return None
        return self._user_links(conn)[0].get(crm_owner)

    def _crm_owner(self, conn: Connection, user_id: Any) -> str | None:
        """The CRM user of a marketing user (None when unlinked)."""
        return self._user_links(conn)[1].get(user_id) if isinstance(user_id, int) else None

    def _prospect_values(self, conn: Connection, obj: str, rec: Mapping[str, Any]) -> dict[str, Any]:
        """A new prospect's values from a CRM record, as the planner gives them (for bench/sync_incremental.py)."""
        return Planner(self.config, self.adapter, _View(self, conn)).prospect_values(obj, rec)

    # -- running -----------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """One cycle. Returns ``runId``, per-side counts and errors."""
        with _gc_paused(), checkpoints_alongside(self.engine):
            return self._cycle()

    def _cycle(self) -> dict[str, Any]:
        if self.config.paused:
            return {"runId": None, "status": "paused", "counts": {}, "errors": []}
        started = self.clock.now()
        with self.engine.begin() as conn:
            run_id = int(conn.execute(sync_run.insert().values(kind="cycle", started_at=started, status="running")
                                      .returning(sync_run.c.id)).scalar_one())  # fmt: skip
        self._bulk_created = create_in_bulk(self, run_id, started)  # the plain new records of a large cycle
        bulk_created = self._bulk_created.count if self._bulk_created is not None else 0
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
            counts = _counts(_with_deferred(ops, self._deferred))
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
            with self.engine.connect() as conn:
                try:
                    yield conn
                    self._commit_part(conn)
                except BaseException:
                    conn.rollback()
                    raise
        finally:
            self._audit_rows = None

    def _commit_part(self, conn: Connection) -> None:
        """Commit what a ``_writing`` block has written so far (its audit rows with it); within the
        block, it goes on in a new transaction. A busy cycle's prospect writes commit a batch at a time, each
        batch whole (its prospects, audit and agreed values), so SQLite's checkpoint of one batch
        runs alongside the next (``checkpoints_alongside``); a failure later leaves the committed
        batches as a cycle that stopped there, which the next cycle finishes (nothing is judged twice:
        their agreed values are stored)."""
        self._flush_audit(conn)
        conn.commit()

    def _flush_audit(self, conn: Connection) -> None:
        if self._audit_rows:
            self._flush(conn, self._audit_rows)
            self._audit_rows.clear()

    @staticmethod
    def _flush(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        executemany(conn, _AUDIT_INSERT, rows)

    def _audit(self, conn: Connection, run_id: int, direction: str, action: str, obj: str, record_id: str,
               prospect_id: int | None, w: FieldWrite | None = None, reason: str | None = None) -> None:  # fmt: skip
        if w is not None:
            row = _write_audit(run_id, self.clock.now(), direction, obj, record_id, prospect_id, w)
            row["action"] = action
            if reason:
                row["reason"] = reason[:255]
        else:
            row = {"run_id": run_id, "at": self.clock.now(), "direction": direction, "action": action, "object": obj,
                   "record_id": record_id, "prospect_id": prospect_id, "field": None, "old": None, "new": None,
                   "rule": None, "evidence": None, "reason": (reason or "")[:255]}  # fmt: skip
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

        uncommitted = 0  # pair updates written since the last commit

        def write_updates() -> None:
            nonlocal uncommitted
            for op in self._write_prospect(conn, run_id, updates, now):
                crm_updates.setdefault(op.object, []).append(op)
            uncommitted += len(updates)
            updates.clear()
            updating.clear()
            if uncommitted >= _COMMIT_EVERY:
                self._commit_part(conn)
                uncommitted = 0

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
                    self._written_prospects.add(int(op.prospect_id or 0))
                    if op.action is Action.MERGE and op.target_id is not None:
                        self._written_prospects.add(int(op.target_id))
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
        # one audit row per new prospect: every field it took from the CRM record and its source (the
        # record's, or the default it was given; explain reads it)
        conn.execute(_AUDIT_INSERT, [{"run_id": run_id, "at": now, "direction": "ma", "action": "create",
                                      "object": "prospect", "record_id": str(pid), "prospect_id": pid, "field": None,
                                      "old": None, "new": {**{k: _jsonable(v) for k, v in op.values.items()},
                                                           "source": row["source"]},
                                      "rule": "create", "evidence": Evidence.RULE.value, "reason": op.reason[:255]}
                                     for op, pid, row in zip(ops, pids, rows, strict=True)])  # fmt: skip
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
                states.append({"prospect_id": pid, "crm_object": obj, "synced_at": now, "sparse": True,
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
        # the agreed values that still hold for the new record (none when it was not at hand); the
        # new pair's update op, planned after this one, records its own when it writes
        # not sparse: the fields it leaves out start anew (first-sync rules), not as agreed blanks; a
        # row even when none hold ({}: what no row means, and the prospect's bulk range no longer speaks)
        _save_states(conn, [{"prospect_id": op.prospect_id, "crm_object": new_obj, "values": dict(op.agreed or {}),
                             "synced_at": self.clock.now(), "sparse": False}])  # fmt: skip
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
        have CRM writes to make.

        A prospect the cycle read is written only if it is still as read (its ``updatedAt``): a user's
        edit made since the cycle read it is neither overwritten nor passed off as the connector's own
        write. Such a pair is left whole for the next cycle, which reads the edit and judges it with
        the CRM's change (the op becomes a SKIP in the run's counts, ``_deferred``)."""
        p = _ptable(conn)
        # in op order: each op with its prospect writes and the values they set (none: CRM writes only)
        entries: list[tuple[Op, list[FieldWrite], dict[str, Any]]] = []
        groups: dict[tuple[tuple[str, ...], bool], list[dict[str, Any]]] = {}  # the executemany rows
        written, pair_writes, read = self._written_prospects, self._pair_writes, self._read_prospects
        ma, crm = Side.MA, Side.CRM
        for op in ops:
            writes = [w for w in op.writes if w.to is ma]
            if not writes:
                entries.append((op, writes, {}))
                continue
            key = int(op.prospect_id or 0)
            values = {w.ma_field: w.new for w in writes}
            if "email" in values:
                values["emailKey"] = email_key(values["email"])
            # the prospect's updatedAt as this cycle last saw it (read, or stamped by its own write)
            seen = pair_writes[key]["updatedAt"] if key in pair_writes else (
                read[key].get("updatedAt") if key in read and key not in written else None)  # fmt: skip
            values["updatedAt"] = values["salesforceLastSync"] = (
                now  # equal stamps: our own write (own_write)
            )
            params = {**values, "_pid": op.prospect_id}
            if seen is not None:
                params["_seen"] = seen
            entries.append((op, writes, values))
            groups.setdefault((tuple(sorted(values)), seen is not None), []).append(params)
        update = p.update().where(p.c.id == sa.bindparam("_pid"))
        guarded = update.where(p.c.updatedAt == sa.bindparam("_seen", type_=p.c.updatedAt.type))
        changed: set[int] = set()  # prospects edited since the cycle read them: not written
        for (_, guard), params_ in groups.items():
            # in the table's order (stable: a prospect twice stays in op order)
            params_.sort(key=itemgetter("_pid"))
            done = executemany(conn, guarded if guard else update, params_)
            if guard and done != len(params_):
                edited, same_stamp = _not_written(conn, p, params_, now)
                changed |= edited
                # the stamp as stored may be spelled otherwise than read (text written by another
                # tool): the same instant is no edit, so those are written without the guard
                executemany(
                    conn, update, [{k: v for k, v in row.items() if k != "_seen"} for row in same_stamp]
                )
        # the audit rows built here directly (what ``_audit`` builds, one stamp for the batch): this
        # loop runs once per changed pair, so per-write calls and lookups add up
        audit = self._audit_rows if self._audit_rows is not None else []
        agreed: list[Op] = []
        to_crm: list[Op] = []
        for op, writes, values in entries:
            key = int(op.prospect_id or 0)
            if key in changed:
                self._deferred.append(op)
                continue
            if writes:
                if key in read and all(type(w.new) in _PLAIN_WRITE for w in writes):
                    pair_writes.setdefault(key, {}).update(values)  # stored as written: no read-back
                else:
                    written.add(key)
                record_id = str(op.prospect_id)
                audit += [
                    _write_audit(run_id, now, "ma", "prospect", record_id, op.prospect_id, w) for w in writes
                ]
            (to_crm if any(w.to is crm for w in op.writes) else agreed).append(op)
        if audit is not self._audit_rows:
            self._flush(conn, audit)
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
        # a prospect this cycle read holds what was read with this cycle's pair updates applied (a
        # user's edit made since is not agreed: the next cycle sees it); the others (created, merged,
        # moved, restored, or written with values a column may convert) are read back, a page at a time
        read, written, pair_writes = self._read_prospects, self._written_prospects, self._pair_writes
        prospects: dict[int, Mapping[str, Any]] = {}
        reread = set()
        for op in ops:
            pid = int(op.prospect_id or 0)
            if pid in read and pid not in written:
                mine = pair_writes.get(pid)
                prospects[pid] = read[pid] if mine is None else {**read[pid], **mine}
            else:
                reread.add(pid)
        if reread:
            prospects.update(_prospect_rows(conn, _ptable(conn), sorted(reread), self._synced_fields()))
        rows: dict[int, dict[str, Any]] = {}
        for op, rec in zip(ops, records, strict=True):
            pid = int(op.prospect_id or 0)
            prospect = prospects.get(pid)
            if rec is not None and prospect is not None:
                values = self._agreed_values(
                    op.object, rec, prospect, self._owner_values(conn, rec.get("OwnerId"))
                )
                rows[pid] = {
                    "prospect_id": pid,
                    "crm_object": op.object,
                    "values": values,
                    "synced_at": now,
                    "sparse": True,
                }
        if rows:
            _save_states(conn, list(rows.values()))

    def _agreed_values(self, obj: str, rec: Mapping[str, Any], prospect: Mapping[str, Any],
                       crm_owner: int | None) -> dict[str, Any]:  # fmt: skip
        """One prospect's agreed values, a sparse row: field → the value when both sides hold it
        alike (one JSON type, one value: most fields, kept bare to keep a million rows small), else
        [CRM value as marketing keeps it, marketing value] (``_pairs`` reads both); a field both
        sides leave empty (null) is left out (``_left_out``: read as [None, None])."""
        values: dict[str, Any] = {}
        names, crm_fields = self._pair_columns(obj)
        # the hottest loop of a busy cycle: the values fetched by C-level maps (a field the prospect
        # row lacks comes as ABSENT and is passed over), alike plain values stored with no call
        for ma, crm_value, ma_value in zip(names, map(rec.get, crm_fields), map(prospect.get, names, ABSENTS),
                                           strict=False):  # fmt: skip
            if ma_value is None:
                if crm_value is None:
                    continue
            elif ma_value is ABSENT:
                continue
            elif (
                type(ma_value) is type(crm_value) and type(ma_value) in _PLAIN_ALIKE and ma_value == crm_value
            ):
                values[ma] = ma_value
                continue
            if isinstance(crm_value, float):
                crm_value = to_ma(crm_value, ma_value)
            if type(crm_value) not in _AS_IS:
                crm_value = _jsonable(crm_value)
            if type(ma_value) not in _AS_IS:
                ma_value = _jsonable(ma_value)
            kind = type(ma_value)  # alike: one plain JSON type, one value (as _alike, inlined)
            values[ma] = (ma_value if type(crm_value) is kind and kind in _AS_IS and crm_value == ma_value
                          else [crm_value, ma_value])  # fmt: skip
        ma_owner = prospect.get(OWNER)
        if crm_owner is not None or ma_owner is not None:
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
                audit = self._audit_rows
                assert audit is not None
                for op, body, result in zip(ops, payload, results, strict=True):
                    if result.success:
                        record_id, pid = op.record_id or "", op.prospect_id
                        audit += [_write_audit(run_id, now, "crm", obj, record_id, pid, w)
                                  for w in op.writes if w.to is Side.CRM]  # fmt: skip
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
                self._written_prospects.add(op.prospect_id)
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
            rec: dict[str, Any] = {}
            if link is not None:
                rows = self.adapter.read(link.crm_object, [link.crm_id])
                rec = dict(rows[0]) if rows else {}
            obj = link.crm_object if link is not None else "Lead"
            # a create is one audit row whose ``new`` holds every field the new prospect took
            created = conn.execute(sa.select(sync_audit).where(
                sync_audit.c.prospect_id == prospect_id, sync_audit.c.direction == "ma", sync_audit.c.action == "create",
                sync_audit.c.field.is_(None)).order_by(sync_audit.c.id.desc()).limit(1)).mappings().first()  # fmt: skip
            planned = self._next_for(conn, prospect_id, dict(prospect), link, rec)
            fields_out = []
            # the mapped fields, then the assigned user ↔ OwnerId (most recent, through the user links)
            explained: list[tuple[str, str, str, bool, Any]] = [
                (m.ma, crm_field, m.rule.value, m.sync_blanks, rec.get(crm_field))
                for m, crm_field in self.config.mappings(obj)
            ]
            owner_as_user = self._owner_values(conn, rec.get("OwnerId"))
            explained.append((OWNER, "OwnerId", Rule.MOST_RECENT.value, False, owner_as_user))
            for ma_field, crm_field, rule, sync_blanks, crm_as_ma in explained:
                if field_name and field_name not in (ma_field, crm_field):
                    continue
                last_write = conn.execute(sa.select(sync_audit).where(
                    sync_audit.c.prospect_id == prospect_id, sync_audit.c.field == ma_field,
                    sync_audit.c.action == "update").order_by(sync_audit.c.id.desc()).limit(1)).mappings().first()  # fmt: skip
                if (created is not None and isinstance(created["new"], dict) and ma_field in created["new"]
                        and (last_write is None or last_write["id"] < created["id"])):  # fmt: skip
                    last_write = {**created, "old": None, "new": created["new"][ma_field]}  # type: ignore[assignment]
                nxt = None
                if link is not None:
                    nxt = _next_cycle(planned, ma_field, crm_as_ma, prospect.get(ma_field))
                fields_out.append({
                    "field": ma_field, "crmField": crm_field, "rule": rule, "syncBlanks": sync_blanks,
                    "marketingValue": _jsonable(prospect.get(ma_field)), "crmValue": _jsonable(rec.get(crm_field)),
                    "lastWrite": None if last_write is None else {
                        "at": _jsonable(last_write["at"]), "runId": last_write["run_id"], "action": last_write["action"],
                        "writtenTo": last_write["direction"], "from": last_write["old"], "to": last_write["new"],
                        "evidence": last_write["evidence"], "why": last_write["reason"]},
                    "nextCycle": nxt,
                })  # fmt: skip
        if field_name and not fields_out:
            raise InputError(f"field {field_name!r} is not mapped for {obj}", code="INVALID_FIELD")
        return {"prospectId": prospect_id, "linkedTo": {"object": link.crm_object, "id": link.crm_id} if link else None,
                "fields": fields_out}  # fmt: skip

    def _next_for(self, conn: Connection, prospect_id: int, prospect: dict[str, Any], link: Any,
                  rec: Mapping[str, Any]) -> _Next:  # fmt: skip
        """What the next cycle does to this one pair: the planner run on the pair's pending changes —
        the CRM record when it changed past its watermark (or waits in the queue), the prospect when
        it changed past the marketing mark and not by the connector's own write."""
        if link is None:
            return _Next([], False, False)
        queued = {(q.source, q.record_id) for q in conn.execute(sa.select(sync_queue.c.source, sync_queue.c.record_id)
                  .where(sync_queue.c.record_id.in_([link.crm_id, str(prospect_id)])))}  # fmt: skip
        cursor = self._cursor(conn, f"crm:{link.crm_object}")
        crm_moved = bool(rec) and (
            cursor is None or (_stamp(rec), str(rec["Id"])) > (cursor.modstamp, cursor.id)
            or (f"crm:{link.crm_object}", link.crm_id) in queued
        )  # fmt: skip
        mark = conn.execute(sa.select(sync_watermark).where(sync_watermark.c.source == "ma:prospect")).first()
        stamp = prospect.get("updatedAt")
        ma_moved = ("ma:prospect", str(prospect_id)) in queued or (
            stamp is not None and not own_write(prospect)
            and (mark is None or mark.modstamp is None or (stamp, prospect_id) > (mark.modstamp, int(mark.record_id)))
        )  # fmt: skip
        changes: dict[str, dict[str, Mapping[str, Any]]] = {"Lead": {}, "Contact": {}}
        if crm_moved:
            changes[link.crm_object][link.crm_id] = rec
        self._fresh_caches()
        ops = Planner(self.config, self.adapter, _View(self, conn)).plan(
            changes, {prospect_id: prospect} if ma_moved else {}
        )
        return _Next([o for o in ops if o.prospect_id == prospect_id], crm_moved, ma_moved)

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
                    if not same_value(current, r["new"]):
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
                    if same_value(current.get(rid, {}).get(crm_field), new):
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
            now = self.clock.now()
            rewritten = []
            for pid, (agreed, with_obj, sparse) in read_states(conn, list(forgotten)).items():
                if sparse:  # its empty fields spelled out: the row stops being sparse, so that a
                    # field it no longer names is one never synced (not one agreed empty)
                    agreed = {**dict.fromkeys(self._left_out(conn, with_obj)), **agreed}
                kept = {f: v for f, v in agreed.items() if f not in forgotten[pid]}
                rewritten.append({"prospect_id": pid, "crm_object": with_obj, "values": kept, "synced_at": now,
                                  "sparse": False})  # fmt: skip
            if rewritten:  # whole rows (a bulk range's prospects get one of their own)
                _save_states(conn, rewritten)
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


@contextmanager
def _gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for one cycle. A busy cycle keeps tens of thousands of
    records, rows, ops and agreed values alive at once, so the collector's passes find nothing to
    free yet cost ~20 % of the cycle (each pass walks every live container); the few reference
    cycles a cycle leaves are collected once it is over."""
    if not gc.isenabled():  # already paused (a nested cycle, or the caller's choice)
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _ptable(conn: Connection) -> sa.Table:
    """The prospect table with its custom fields (custom fields sync like standard ones)."""
    from renkei.store import dynamic

    return dynamic.load_prospect_schema(conn).table


_LINK_COLUMNS = (sync_link.c.crm_id, sync_link.c.prospect_id, sync_link.c.crm_object)


class _Links:
    """The prospect ↔ CRM record links, read on demand (and in batches for a cycle's records)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._by_crm: dict[str, tuple[int, str] | None] = {}
        self._by_prospect: dict[int, tuple[str, str] | None] = {}

    def _remember(self, rows: Iterable[Any]) -> None:
        """Rows of ``_LINK_COLUMNS``, unpacked as tuples (a busy cycle remembers 10,000s)."""
        by_crm, by_prospect = self._by_crm, self._by_prospect
        for crm_id, prospect_id, crm_object in rows:
            pid = int(prospect_id)
            by_crm[crm_id] = (pid, crm_object)
            by_prospect[pid] = (crm_id, crm_object)

    def prefetch(self, crm_ids: set[str], prospect_ids: set[int]) -> None:
        for column, wanted, cache in ((sync_link.c.crm_id, sorted(crm_ids), self._by_crm),
                                      (sync_link.c.prospect_id, sorted(prospect_ids), self._by_prospect)):  # fmt: skip
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                self._remember(self.conn.execute(sa.select(*_LINK_COLUMNS).where(column.in_(chunk))))
                for key in chunk:
                    cache.setdefault(key, None)  # type: ignore[arg-type]

    def crm(self, crm_id: str) -> tuple[int, str] | None:
        """(prospect id, CRM object) linked to a CRM record."""
        if crm_id not in self._by_crm:
            self._by_crm[crm_id] = None
            self._remember(self.conn.execute(sa.select(*_LINK_COLUMNS).where(sync_link.c.crm_id == crm_id)))
        return self._by_crm[crm_id]

    def prospect(self, prospect_id: int) -> tuple[str, str] | None:
        """(CRM id, CRM object) linked to a prospect."""
        if prospect_id not in self._by_prospect:
            self._by_prospect[prospect_id] = None
            self._remember(
                self.conn.execute(sa.select(*_LINK_COLUMNS).where(sync_link.c.prospect_id == prospect_id))
            )
        return self._by_prospect[prospect_id]


class _View:
    """The marketing side as the planner reads it (``planner.MarketingView``), over one connection."""

    def __init__(self, svc: SyncService, conn: Connection) -> None:
        self.svc, self.conn = svc, conn
        self.links = _Links(conn)
        self._table: sa.Table | None = None

    def _p(self) -> sa.Table:
        if self._table is None:
            self._table = _ptable(self.conn)
        return self._table

    def prefetch_links(self, crm_ids: set[str], prospect_ids: set[int]) -> None:
        self.links.prefetch(crm_ids, prospect_ids)

    def link_of_record(self, crm_id: str) -> tuple[int, str] | None:
        return self.links.crm(crm_id)

    def link_of_prospect(self, prospect_id: int) -> tuple[str, str] | None:
        return self.links.prospect(prospect_id)

    def linked_count(self) -> int:
        return int(self.conn.execute(sa.select(sa.func.count()).select_from(sync_link)).scalar_one())

    def prospects(self, prospect_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        rows = _prospect_rows(self.conn, self._p(), prospect_ids, self.svc._synced_fields())
        read = self.svc._read_prospects
        # the agreed values of the pairs written from these rows start from them (no read-back)
        for pid, row in rows.items():
            read.setdefault(pid, row)
        return rows

    def prospect_row(self, prospect_id: int) -> dict[str, Any] | None:
        p = self._p()
        row = self.conn.execute(sa.select(p).where(p.c.id == prospect_id)).mappings().first()
        return dict(row) if row is not None else None

    def states(self, prospect_ids: Sequence[int]) -> dict[int, dict[str, Sequence[Any]]]:
        return self.svc._states(self.conn, prospect_ids)

    def prospects_by_key(self, keys: set[str]) -> dict[str, list[dict[str, Any]]]:
        """Prospects (id, isDeleted) per email key, for many keys at once (one query per 500)."""
        p, wanted = t.prospect, sorted(keys)
        out: dict[str, list[dict[str, Any]]] = {}
        for start in range(0, len(wanted), 500):
            q = sa.select(p.c.id, p.c.isDeleted, p.c.emailKey).where(
                p.c.emailKey.in_(wanted[start : start + 500])
            )
            for r in self.conn.execute(q.order_by(p.c.id)):
                out.setdefault(r.emailKey, []).append({"id": r.id, "isDeleted": r.isDeleted})
        return out

    def passing(self, object_name: str, where: str, record_ids: Sequence[str]) -> set[str]:
        return self.svc._passing(self.conn, object_name, where, record_ids)

    def field_names(self, object_name: str) -> frozenset[str]:
        return self.svc._field_names(object_name)

    def user_for_crm_owner(self, crm_owner: str | None) -> int | None:
        return self.svc._owner_values(self.conn, crm_owner)

    def crm_user_for(self, user_id: Any) -> str | None:
        return self.svc._crm_owner(self.conn, user_id)


_ID_CHARS = re.compile(r"[A-Za-z0-9]{15,18}")


def _save_states(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert or replace agreed-value rows in one statement (an upsert on SQLite and PostgreSQL)."""
    from sqlalchemy.dialects import postgresql, sqlite

    stmt = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(sync_state)
    excluded = stmt.excluded
    executemany(conn, stmt.on_conflict_do_update(index_elements=[sync_state.c.prospect_id], set_={
        "crm_object": excluded.crm_object, "values": excluded["values"], "synced_at": excluded.synced_at,
        "sparse": excluded.sparse, "base_audit_id": None}), rows)  # fmt: skip


def _state_rows() -> sa.Select[Any]:
    """Agreed-value rows as ``state_values`` takes them: prospect id, the stored JSON as it is (text
    on SQLite, decoded by PostgreSQL's driver), object, sparse, and the text of the create audit the
    row refers to (NULL for a row that holds its values whole)."""
    base = sync_audit.alias("base")
    return sa.select(
        sync_state.c.prospect_id, _STATE_TEXT, sync_state.c.crm_object, sync_state.c.sparse,
        sa.type_coerce(base.c.new, sa.Text),
    ).select_from(sync_state.outerjoin(base, base.c.id == sync_state.c.base_audit_id))  # fmt: skip


def read_states(conn: Connection, pids: Sequence[int]) -> dict[int, tuple[dict[str, Any], str | None, bool]]:
    """The agreed values of these prospects as stored: prospect id → (members, object, sparse), for
    those that have any. A ``sync_state`` row first (``state_values``: whole, or referring to its
    create audit); else, for a prospect of a bulk range (``sync_state_range``), what the range
    stands for (``range_values``). Reads 2,000 ids a query; members are never to be changed in place."""
    out: dict[int, tuple[dict[str, Any], str | None, bool]] = {}
    for start in range(0, len(pids), _READ_PAGE):
        page = pids[start : start + _READ_PAGE]
        for pid, values, obj, sparse, base in conn.execute(
            _state_rows().where(sync_state.c.prospect_id.in_(page))
        ):
            out[int(pid)] = (state_values(values, base), obj, bool(sparse))
    missing = [pid for pid in pids if pid not in out]
    if not missing:
        return out
    ranges = conn.execute(sa.select(sync_state_range).order_by(sync_state_range.c.first_prospect_id)).all()
    if not ranges:
        return out
    firsts = [r.first_prospect_id for r in ranges]
    wanted: dict[int, tuple[int, Any]] = {}  # create audit id → (prospect, its range)
    for pid in missing:
        i = bisect.bisect_right(firsts, pid) - 1
        if i >= 0 and pid <= ranges[i].last_prospect_id:
            wanted[pid + ranges[i].audit_offset] = (pid, ranges[i])
    held = {r.id: _decoded(r.values) for r in ranges}  # each range's values decoded once
    audits = list(wanted)
    for start in range(0, len(audits), _READ_PAGE):
        rows = conn.execute(sa.select(sync_audit.c.id, sync_audit.c.prospect_id, sa.type_coerce(sync_audit.c.new, sa.Text))
                            .where(sync_audit.c.id.in_(audits[start : start + _READ_PAGE])))  # fmt: skip
        for audit_id, audit_pid, new in rows:
            pid, r = wanted[audit_id]
            if audit_pid == pid:  # (always: the copy checked the offset before it wrote the range)
                out[pid] = (range_values(new, held[r.id], r.source_default), r.crm_object, True)
    return out


def _decoded(values: Any) -> Any:
    """JSON as SQLite hands it over (text), decoded; PostgreSQL's driver has decoded it already."""
    return json.loads(values) if isinstance(values, str) else values


def _audit_members(audit_new: Any) -> tuple[dict[str, Any], Any]:
    """A create audit's ``new`` (text or decoded) as a new dict without its source, and the source."""
    members: dict[str, Any] = dict(_decoded(audit_new))
    return members, members.pop("source", None)


def range_values(audit_new: Any, values: Any, source_default: str | None) -> dict[str, Any]:
    """The agreed values a bulk range (``sync_state_range``) stands for, for one prospect: its create
    audit's members (``audit_new``) but its source; with ``source_default``, the source as the audit
    has it, paired with an empty CRM side where it is that default (the record had none), else bare;
    then the range's ``values``."""
    merged, source = _audit_members(audit_new)
    if source_default is not None and source is not None:
        merged["source"] = [None, source] if source == source_default else source
    merged.update(_decoded(values))
    return merged


def state_values(values: Any, base: Any = None) -> dict[str, Any]:
    """An agreed-value row's members: its ``values`` (JSON text or decoded), and where it refers to a
    create audit (``sync_state.base_audit_id``; ``base`` that audit's ``new``), the audit's members
    but its source first — the values a bulk-created prospect copied as they are and its owner."""
    decoded = _decoded(values)
    if base is None:
        return decoded if decoded is not None else {}  # as decoded: read, never changed in place
    merged, _ = _audit_members(base)
    merged.update(decoded)
    return merged


def _not_written(
    conn: Connection, p: sa.Table, params: Sequence[dict[str, Any]], now: dt.datetime
) -> tuple[set[int], list[dict[str, Any]]]:
    """What a guarded write (``params``: rows with ``_pid`` and ``_seen``) just left alone: the
    prospects edited since the cycle read them (their ``updatedAt`` moved), and the rows of those
    whose stored stamp still means the instant that was read (spelled otherwise: not an edit).
    The transaction holds the write lock, so nothing moves meanwhile."""
    edited: set[int] = set()
    same_stamp: list[dict[str, Any]] = []
    for start in range(0, len(params), 500):
        chunk = {int(row["_pid"]): row for row in params[start : start + 500]}
        rows = conn.execute(
            sa.select(p.c.id, p.c.updatedAt, p.c.salesforceLastSync).where(p.c.id.in_(list(chunk)))
        )
        for r in rows:
            if r.updatedAt == now and r.salesforceLastSync == now:
                continue  # written
            if r.updatedAt == chunk[int(r.id)]["_seen"]:
                same_stamp.append(chunk[int(r.id)])
            else:
                edited.add(int(r.id))
    return edited, same_stamp


def _prospect_rows(
    conn: Connection, p: sa.Table, pids: Sequence[int], fields: Iterable[str]
) -> dict[int, dict[str, Any]]:
    """Prospects by id with these of their fields (those the table has), one query per 500."""
    out: dict[int, dict[str, Any]] = {}
    columns = [p.c.id, *(p.c[f] for f in sorted(set(fields) - {"id"}) if f in p.c)]
    for start in range(0, len(pids), 500):
        out.update(
            _rows_by_id(conn.execute(sa.select(*columns).where(p.c.id.in_(pids[start : start + 500]))))
        )
    return out


class _Top(NamedTuple):
    """The newest prospect change a cycle reads up to."""

    updatedAt: Any  # noqa: N815 (the prospect column's name)
    id: int


@dataclass(frozen=True)
class _Next:
    """The next cycle's operations on one pair, and which of its sides changed since the last sync."""

    ops: list[Op]
    crm_moved: bool
    ma_moved: bool


def _next_cycle(planned: _Next, ma_field: str, crm_value: Any, ma_value: Any) -> dict[str, Any]:
    """``nextCycle`` of one field in ``sync explain``: the planner's write, or why there is none."""
    for op in planned.ops:
        for w in op.writes:
            if w.ma_field == ma_field:
                return {"write": w.to.value, "value": _jsonable(w.new), "rule": w.rule, "evidence": w.evidence,
                        "reason": w.reason}  # fmt: skip
    other = next((op for op in planned.ops if op.action is not Action.UPDATE), None)
    if other is not None:
        return {"write": None, "reason": f"{other.action.value}: {other.reason}"}
    if not planned.crm_moved and not planned.ma_moved:
        return {"write": None, "reason": "in step" if same_value(crm_value, ma_value) else
                "the sides were left different at the last sync (a blank does not overwrite a value) and neither side "
                "changed since: the next cycle leaves this field as it is"}  # fmt: skip
    return {
        "write": None,
        "reason": "in step"
        if same_value(crm_value, ma_value)
        else "no write under this rule (blank or one-way)",
    }


def _past_bulk(p: sa.Table, bulk: BulkCreated, top: _Top, upto: Any) -> list[Any]:
    """The prospects up to ``top`` (the newest when the cycle read) but those this cycle's bulk copy
    created, as ranges of the ``(updatedAt, id)`` index in its order: the prospects without a stamp,
    those before the copy's stamp, those with it in the id gaps around the copy's ranges, those
    after it. An initial sync's million new prospects (echoes of the copy) are then neither read
    nor walked past. ``top`` is at or past the copy, read after it (else: ``upto``, the copy's
    prospects left out row by row)."""
    made = sa.literal(bulk.stamp, type_=p.c.updatedAt.type)
    stamp = p.c.updatedAt
    if (top.updatedAt, top.id) < (bulk.stamp, bulk.ranges[-1][1]):
        return [
            sa.and_(
                upto,
                sa.not_(sa.and_(stamp == made, sa.or_(*[p.c.id.between(lo, hi) for lo, hi in bulk.ranges]))),
            )
        ]
    gaps = [p.c.id < bulk.ranges[0][0]]
    gaps += [
        p.c.id.between(hi + 1, lo - 1) for (_, hi), (lo, _) in zip(bulk.ranges, bulk.ranges[1:], strict=False)
    ]
    last_gap = p.c.id > bulk.ranges[-1][1]
    pieces: list[Any] = [stamp.is_(None), stamp < made]
    if top.updatedAt == bulk.stamp:  # the newest prospect has the copy's stamp: nothing after it
        gaps.append(sa.and_(last_gap, p.c.id <= top.id))
        return [*pieces, *[sa.and_(stamp == made, gap) for gap in gaps]]
    last = sa.literal(top.updatedAt, type_=p.c.updatedAt.type)
    gaps.append(last_gap)
    return [*pieces, *[sa.and_(stamp == made, gap) for gap in gaps], sa.and_(stamp > made, stamp < last),
            sa.and_(stamp == last, p.c.id <= top.id)]  # fmt: skip


def _rows_by_id(result: sa.CursorResult[Any]) -> dict[int, dict[str, Any]]:
    """Rows as dicts (``row_dicts``) by their ``id``."""
    return {int(row["id"]): row for row in row_dicts(result)}


def _stamp(rec: Mapping[str, Any]) -> dt.datetime:
    return rec.get("SystemModstamp") or dt.datetime.min.replace(tzinfo=dt.UTC)


#: A field both sides held empty when they were agreed (what a sparse row leaves out).
_BOTH_EMPTY: Sequence[Any] = (None, None)


def _pairs(
    values: dict[str, Any] | None, left_out: Mapping[str, Sequence[Any]] | None = None
) -> dict[str, Sequence[Any]]:
    """Agreed values as the judge takes them: field → [CRM value, marketing value] (a bare value
    stands for both sides: ``_agreed_values`` stores alike sides so). ``left_out``: for a sparse
    row, the fields it means by not naming them (``SyncService._left_out``: [None, None] each)."""
    if values is None:
        return dict(left_out) if left_out else {}
    pairs: dict[str, Sequence[Any]] = {
        f: v if v.__class__ is list else [v, v] for f, v in values.items()
    }  # no type() calls: 3x faster
    if left_out:
        return {**left_out, **pairs}
    return pairs


def _alike(crm_value: Any, ma_value: Any) -> bool:
    """Both sides hold one JSON value of one type (so a bare value can stand for the pair; never a
    list, which would read as a pair)."""
    return type(crm_value) is type(ma_value) and type(crm_value) in _AS_IS and crm_value == ma_value


def _write_audit(run_id: int, at: dt.datetime, direction: str, obj: str, record_id: str, prospect_id: int | None,
                 w: FieldWrite) -> dict[str, Any]:  # fmt: skip
    """The audit row of one field write (what ``SyncService._audit`` builds, without its per-row clock
    read and calls: the write paths build one per changed field of every pair)."""
    old, new = w.old, w.new
    return {"run_id": run_id, "at": at, "direction": direction, "action": "update", "object": obj,
            "record_id": record_id, "prospect_id": prospect_id, "field": w.ma_field,
            "old": old if type(old) in _AS_IS else _jsonable(old), "new": new if type(new) in _AS_IS else _jsonable(new),
            "rule": w.rule, "evidence": w.evidence, "reason": (w.reason or "")[:255]}  # fmt: skip


def _kind(code: str) -> str:
    if code in ("UNABLE_TO_LOCK_ROW", "REQUEST_LIMIT_EXCEEDED", "SERVER_UNAVAILABLE", "UNAVAILABLE"):
        return "unavailable"
    if code in ("NOT_FOUND", "ENTITY_IS_DELETED"):
        return "not_found"
    if code == "CANNOT_UPDATE_CONVERTED_LEAD":
        return "conflict"
    return "validation"


_AS_IS = (str, int, bool, float, type(None))  # values JSON keeps as they are (``_jsonable`` returns them)
#: Values a prospect column stores and returns unchanged (a float or a date-time may come back converted).
_PLAIN_WRITE = (str, int, bool, type(None))
#: Types whose equal values are alike as they are (no conversion: ``to_ma`` changes floats).
_PLAIN_ALIKE = (str, int, bool)


def _to_crm(value: Any) -> Any:
    return value


def _from_json(column: Any, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(column.type, sa.DateTime) or column.type.__class__.__name__ == "UTCDateTime":
        return dt.datetime.fromisoformat(value)
    return value


def _with_deferred(ops: Sequence[Op], deferred: Sequence[Op]) -> list[Op]:
    """The cycle's ops with those it left for the next cycle as skips (their reason says why)."""
    if not deferred:
        return list(ops)
    left = {id(op) for op in deferred}
    return [dataclasses.replace(op, action=Action.SKIP, side=None, writes=(),
                                reason="the prospect was edited while the cycle ran: judged again next cycle")
            if id(op) in left else op for op in ops]  # fmt: skip


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
