"""The fast initial sync: many CRM records without a prospect become prospects in set-based SQL.

A cycle that finds at least ``bulk_create_threshold`` pending CRM records without a link (the first
sync of an org above all) and whose adapter can copy in bulk (``BulkCopyCapable``: the built-in CRM shares the
marketing database) creates the plain cases with a few ``INSERT … SELECT`` statements: the
prospects, their links, their agreed values (``sync_state``) and one audit row each. A pending
record is a plain case when it is live, not a converted lead, matches its object's filter, is not
linked, has an email whose key no other pending record of either object and no existing prospect
has, and is not the target of a pending merge or conversion. Everything else — email collisions,
a lead and a contact sharing an email (``prefer``), existing prospects with the email, updates of
linked records, records over the licence cap — goes to the per-record planner in the same cycle
(through the queue, in the CRM's change order), so the outcome is the one the per-record path
gives. On PostgreSQL all of it is one transaction; on SQLite the prospects are created a chunk of
pending records per transaction (``_CHUNK``: each chunk's prospects with their links, agreed values
and audit; a chunk rechecks its records when another connection committed in between), and the
CRM watermarks move past every pending record in the last one.

What is copied comes from ``renkei.core.sync.bulk.creation_spec`` (the same mapping the planner
uses); this module only renders it as SQL for SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles

from renkei.connector.config import CRM_OBJECTS
from renkei.core.identity import email_key
from renkei.core.sync.bulk import AgreedPair, Conversion, Copy, CreationSpec, Kind, creation_spec
from renkei.core.sync.judge import jsonable
from renkei.core.sync.ports import BulkCopyCapable, BulkSource
from renkei.store import dynamic
from renkei.store import tables as t
from renkei.store.db import UTCDateTime, analyze_if_grown
from renkei.store.tables_sync import sync_audit, sync_link, sync_queue, sync_state, sync_state_range

if TYPE_CHECKING:
    from renkei.connector.service import SyncService

#: What Python's ``str.strip()`` removes (every character ``str.isspace()`` holds): the blank test
#: (``is_blank``) and, after NFKC, the email key trim these.
_STRIPPED = (" \t\n\x0b\x0c\r\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
             "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")  # fmt: skip
#: The ASCII characters of ``_STRIPPED``.
_ASCII_STRIPPED = "".join(c for c in _STRIPPED if c < "\x80")
_OWNER = "assignedToId"
#: The copy (record field, prospect field) every record the bulk path copies holds: its key is not
#: NULL, so its email is no blank.
_EMAIL = ("Email", "email")
#: A new prospect's source when its record gives none (as ``SyncService`` gives it one prospect at a time).
_DEFAULT_SOURCE = "CRM"
#: SQLite: whether the copy may hold the agreed values most of an object's new prospects share once
#: per chunk (``sync_state_range``) instead of once a prospect (tests turn it off to compare).
STATE_RANGES = True
#: A new prospect's stamps: the copy's one instant.
_STAMPS = ("createdAt", "updatedAt", "salesforceLastSync")
#: Prospect fields a new prospect takes from its record or the engine, not from a copy.
_SET_ON_CREATE = frozenset({"source", _OWNER, "emailKey", "salesforceId", "salesforceLeadId", "salesforceContactId",
                            "score", "isDeleted", *_STAMPS})  # fmt: skip

_md = sa.MetaData()
#: The cycle's pending CRM records (a temporary table, dropped at the end of the transaction).
_pending = sa.Table(
    "renkei_bulk_pending",
    _md,
    sa.Column("obj", sa.String(10), nullable=False),
    # no primary key (SQLite: a million keys in its index cost ~0.5 s to insert; PostgreSQL has an
    # index on it, see _index_pending): the records come from the CRM's primary key, one each
    sa.Column("id", sa.String(18), nullable=False),
    sa.Column("modstamp", UTCDateTime()),
    sa.Column("ekey", sa.Text()),
    sa.Column("acts", sa.Integer(), nullable=False),  # would reach the planner's email matching (with a key)
    sa.Column("eligible", sa.Integer(), nullable=False),
    sa.Column("ord", sa.Integer()),
    sa.Column("owner", sa.Integer()),  # the marketing user linked to the record's owner
    sa.Column("own", sa.Integer()),  # 1: its prospect's agreed values need a row of their own (_range_form)
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DROP",
)


def cat(*parts: Any) -> Any:
    """SQL string concatenation of expressions and Python strings: one ``printf`` on SQLite (a JSON
    object of thirty pairs built by ``||`` copies the growing string sixty times), ``||`` elsewhere.
    Nested ``cat`` results are flattened into their parent."""
    flat: list[Any] = []
    for x in parts:
        inner = getattr(x, "_renkei_parts", None)
        for y in inner if inner is not None else [x]:
            if isinstance(y, str) and flat and isinstance(flat[-1], str):
                flat[-1] += y
            else:
                flat.append(y)
    out = _Concat(
        *[sa.literal(x, sa.Text) if isinstance(x, str) else sa.type_coerce(x, sa.Text) for x in flat]
    )
    out._renkei_parts = flat
    return out


class _Concat(sa.sql.functions.GenericFunction[str]):
    type = sa.Text()
    name = "renkei_concat"
    inherit_cache = False  # the compiled form depends on the parts (printf's format string)
    _renkei_parts: list[Any]  # Python strings and expressions, in order


@compiles(_Concat)
def _concat_default(element: _Concat, compiler: Any, **kw: Any) -> str:
    return "(" + " || ".join(compiler.process(c, **kw) for c in element.clauses) + ")"


@compiles(_Concat, "sqlite")
def _concat_sqlite(element: _Concat, compiler: Any, **kw: Any) -> str:
    calls, fmt, args = [], "", []
    for part in element._renkei_parts:
        if isinstance(part, str):
            fmt += part.replace("%", "%%")
            continue
        fmt += "%s"
        args.append(compiler.process(sa.type_coerce(part, sa.Text), **kw))
        if len(args) == 100:  # SQLite takes at most 127 arguments
            calls.append((fmt, args))
            fmt, args = "", []
    if fmt or not calls:
        calls.append((fmt, args))
    quoted = [
        "printf('" + f.replace("'", "''") + "'" + "".join(", " + a for a in a_) + ")" for f, a_ in calls
    ]
    return "(" + " || ".join(quoted) + ")"


def kind_of(column: sa.Column[Any]) -> Kind | None:
    typ = column.type
    if isinstance(typ, sa.Boolean):
        return Kind.BOOLEAN
    if isinstance(typ, sa.Integer):
        return Kind.INTEGER
    if isinstance(typ, sa.Float):
        return Kind.NUMBER
    if isinstance(typ, UTCDateTime | sa.DateTime):
        return Kind.DATETIME
    if isinstance(typ, sa.Date):
        return Kind.DATE
    if isinstance(typ, sa.String):  # Text included
        return Kind.TEXT
    return None


class _Sql:
    """The few dialect-specific pieces: email key, blank test, JSON literals."""

    def __init__(self, conn: Connection) -> None:
        self.pg = conn.dialect.name == "postgresql"
        if not self.pg:  # SQLite: the exact Python key, as a deterministic SQL function
            raw = conn.connection.driver_connection
            raw.create_function("renkei_email_key", 1, email_key, deterministic=True)  # type: ignore[union-attr]

    def roomy(self, conn: Connection) -> Any:
        """SQLite: page caches for a million-row copy (with the default 2 MB every index insert
        reads its page from the OS again); returns what puts the settings back. A chunk of the
        copy (``_CHUNK``) writes ~120 MB, which the main cache holds until its commit (768 MiB
        for the whole copy in one transaction measured no faster, at twice the peak RSS)."""
        if self.pg:
            return lambda: None
        raw = conn.connection.driver_connection
        assert raw is not None
        cache = [raw.execute(f"PRAGMA {db}.cache_size").fetchone()[0] for db in ("main", "temp")]
        raw.execute("PRAGMA main.cache_size=-262144")  # 256 MiB, used only as far as needed
        raw.execute("PRAGMA temp.cache_size=-262144")  # the pending records: ~100 MB at 1M

        def restore() -> None:
            for db, size in zip(("main", "temp"), cache, strict=True):
                raw.execute(f"PRAGMA {db}.cache_size={int(size)}")

        return restore

    def temp_in_memory(self, conn: Connection) -> Any:
        """SQLite: the connection's temporary database (the pending records, ~100 MB at 1M) in memory
        until what this returns is called: no temporary file written, and the table dropped in a
        third of the time (the copy ~0.7 s faster at 1M). Setting it drops the connection's
        temporary tables, so it comes before the pending table and is put back once it is gone."""
        if self.pg:
            return lambda: None
        raw = conn.connection.driver_connection
        assert raw is not None
        before = int(raw.execute("PRAGMA temp_store").fetchone()[0])
        raw.execute("PRAGMA temp_store=MEMORY")
        return lambda: raw.execute(f"PRAGMA temp_store={before}")

    def email_key(self, col: Any) -> Any:
        if not self.pg:
            # ASCII (as many characters as bytes) is keyed in SQL — NFKC changes nothing there, lower()
            # is casefold() and the trim takes what str.strip() takes of it — the rest in Python
            plain = sa.func.nullif(sa.func.lower(sa.func.trim(col, _ASCII_STRIPPED)), "")
            ascii_ = sa.func.length(col) == sa.func.length(sa.cast(col, sa.LargeBinary))
            return sa.case((ascii_, plain), else_=sa.func.renkei_email_key(col))
        # NFKC, trim, case: equal to email_key() whenever the key is ASCII (ß folds as casefold does);
        # other keys are left to the per-record path (see ascii_key)
        folded = sa.func.replace(
            sa.func.replace(sa.func.normalize(col, sa.text("NFKC")), "ß", "ss"), "ẞ", "ss"
        )
        key = sa.func.lower(sa.func.btrim(folded, _STRIPPED))
        return sa.func.nullif(key, "")

    def ascii_key(self, key: Any) -> Any:
        return key.op("~", is_comparison=True)(r"^[\x01-\x7f]*$") if self.pg else sa.true()

    def blank(self, col: Any, kind: Kind) -> Any:
        if kind is not Kind.TEXT:
            return col.is_(None)
        if self.pg:
            return sa.or_(col.is_(None), sa.func.btrim(col, _STRIPPED) == "")
        # SQLite: a text whose first character trim() keeps (compared as UTF-8 bytes: '!'…U+0084 or
        # past U+3000) is no blank; only the others are trimmed (trim() with a character list of
        # twenty costs a third of the prospect insert when every value goes through it)
        kept = sa.or_(sa.and_(col >= "!", col < "\x85"), col >= "\u3001")
        return sa.or_(col.is_(None), sa.and_(sa.not_(kept), sa.func.trim(col, _STRIPPED) == ""))

    def whole(self, col: Any) -> Any:
        """A float as an integer (truncated, as ``int()`` does)."""
        return sa.cast(sa.func.trunc(col) if self.pg else col, sa.BigInteger)

    def number_as_ma(self, col: Any, integer_like: Any) -> Any:
        """``_to_ma``: a whole float (or any float landing next to an integer) becomes an integer."""
        return sa.case((sa.or_(col == self.whole(col), integer_like), self.whole(col)), else_=col)

    def literal(self, expr: Any, kind: Kind | None) -> Any:
        """The JSON text of a value as ``jsonable`` + ``json.dumps`` give it ('null' for NULL)."""
        if kind is None:
            return sa.literal("null")
        if kind is Kind.BOOLEAN:
            return sa.case((expr.is_(None), "null"), (expr, "true"), else_="false")
        return sa.func.coalesce(self.json_text(expr, kind), "null")

    def json_text(self, expr: Any, kind: Kind) -> Any:
        """The JSON text of a value that is not NULL (NULL for NULL, but for a boolean)."""
        if kind is Kind.BOOLEAN:
            return sa.case((expr, "true"), else_="false")
        if kind is Kind.TEXT:
            text = (
                sa.cast(sa.func.to_json(sa.cast(expr, sa.Text)), sa.Text)
                if self.pg
                else sa.func.json_quote(expr)
            )
        elif kind is Kind.DATETIME:
            text = (
                sa.func.json_quote(self._iso(expr))
                if not self.pg
                else sa.cast(sa.func.to_json(self._iso(expr)), sa.Text)
            )
        elif kind is Kind.DATE:
            day = sa.func.to_char(expr, "YYYY-MM-DD") if self.pg else expr
            text = sa.cast(sa.func.to_json(day), sa.Text) if self.pg else sa.func.json_quote(day)
        else:
            text = sa.cast(expr, sa.Text)
        return text

    def json_value(self, expr: Any, kind: Kind) -> Any:
        """SQLite: a value as ``json_object`` should embed it (booleans as JSON true/false)."""
        if kind is Kind.BOOLEAN:
            return sa.case(
                (expr.is_(None), sa.null()), (expr, sa.func.json("true")), else_=sa.func.json("false")
            )
        if kind is Kind.DATETIME:
            return sa.case((expr.is_(None), sa.null()), else_=self._iso(expr))
        return expr

    def _iso(self, expr: Any) -> Any:
        """``datetime.isoformat()`` of an aware UTC datetime (microseconds only when not zero)."""
        if self.pg:
            utc = sa.func.timezone("UTC", expr)
            micro = sa.func.to_char(utc, "US", type_=sa.Text)
            return cat(sa.func.to_char(utc, 'YYYY-MM-DD"T"HH24:MI:SS'),
                       sa.case((micro == "000000", ""), else_=cat(".", micro)), "+00:00")  # fmt: skip
        micro = sa.func.substr(expr, 21, 6, type_=sa.Text)
        iso = cat(sa.func.substr(expr, 1, 10), "T", sa.func.substr(expr, 12, 8),
                  sa.case((sa.or_(micro == "000000", micro == ""), ""), else_=cat(".", micro)), "+00:00")  # fmt: skip
        # NULL for NULL (printf prints a NULL argument as nothing: "T.+00:00" for an empty date-time)
        return sa.case((expr.is_(None), sa.null()), else_=iso)

    def as_json(self, text: Any) -> Any:
        return sa.cast(text, sa.JSON) if self.pg else text


@dataclass(frozen=True)
class BulkCreated:
    """What a cycle's bulk copy created: how many prospects, their one stamp (``createdAt``,
    ``updatedAt`` and ``salesforceLastSync``) and, on SQLite, the id ranges (inclusive) that hold
    exactly them (each chunk holds the write lock, so no other prospect comes between; PostgreSQL:
    none given, another transaction's prospects may)."""

    count: int
    stamp: dt.datetime
    ranges: tuple[tuple[int, int], ...]


def create_in_bulk(svc: SyncService, run_id: int, started: dt.datetime) -> BulkCreated | None:
    """Create the cycle's plain new prospects in bulk (None: the per-record path does everything, as
    it does below the threshold or for a CRM elsewhere)."""
    cfg, adapter = svc.config, svc.adapter
    if (
        not isinstance(adapter, BulkCopyCapable)
        or not cfg.auto_create_prospects
        or cfg.rate_per_hour is not None
    ):
        return None
    now = svc.clock.now()
    with svc.engine.connect() as conn:  # commits as it goes (see _CHUNK); what it leaves open rolls back
        sources: dict[str, BulkSource] = {}
        for obj in CRM_OBJECTS:
            source = adapter.bulk_source(conn, obj, cfg.filter_for(obj), now)
            if source is None:
                return None
            sources[obj] = source
        if conn.execute(
            sa.select(sync_queue.c.record_id).where(sync_queue.c.source.like("crm:%")).limit(1)
        ).first():
            return None  # records waiting from an earlier cycle: keep their order simple, go per record
        cursors = {obj: svc._cursor(conn, f"crm:{obj}") for obj in CRM_OBJECTS}

        def pending(table: sa.Table, obj: str) -> Any:
            cursor = cursors[obj]
            if cursor is None:
                return sa.true()
            mark = sa.tuple_(
                sa.literal(cursor.modstamp, type_=table.c.SystemModstamp.type), sa.literal(cursor.id)
            )
            return sa.tuple_(table.c.SystemModstamp, table.c.Id) > mark

        # only records without a link can become new prospects: a busy incremental cycle (thousands of
        # edits on linked records) skips the copy instead of scanning and queueing every one of them
        count = 0
        for obj, source in sources.items():
            unlinked = ~sa.exists().where(sync_link.c.crm_id == source.table.c.Id)
            some = (sa.select(sa.literal(1)).select_from(source.table).where(pending(source.table, obj), unlinked)
                .limit(cfg.bulk_create_threshold))  # fmt: skip
            count += int(conn.execute(sa.select(sa.func.count()).select_from(some.subquery())).scalar_one())
        if count < cfg.bulk_create_threshold:
            return None
        p = dynamic.load_prospect_schema(conn).table
        ma_kinds = {c.name: kind_of(c) for c in p.columns}
        specs: dict[str, CreationSpec] = {}
        for obj, source in sources.items():
            crm_kinds = {c.name: kind_of(c) for c in source.table.columns}
            spec = creation_spec(obj, [(m.ma, f) for m, f in cfg.fields_to_pull(obj)],
                                 [(m.ma, f) for m, f in cfg.mappings(obj)], crm_kinds, ma_kinds)  # fmt: skip
            if spec is None:
                return None
            specs[obj] = spec
        sql = _Sql(conn)
        in_file = sql.temp_in_memory(conn)
        _pending.create(conn)
        if sql.pg:  # its rows are found by id where each new prospect is (SQLite: by rowid ranges)
            _index_pending(conn)
        restore = sql.roomy(conn)  # after the create: the temporary database exists only from then
        ranges: list[tuple[int, int]] = []
        try:
            created = _copy(svc, conn, sql, sources, specs, pending, run_id, started, now, ranges)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            if not sql.pg:  # PostgreSQL drops it at commit
                _pending.drop(conn)
                conn.commit()
            restore()
            in_file()
    # PostgreSQL: statistics for the tables a large initial sync has just filled (see analyze_if_grown)
    for table in (p.name, sync_link.name, sync_state.name, sync_audit.name):
        analyze_if_grown(svc.engine, table, created)
    merged: list[tuple[int, int]] = []  # one range where chunks and objects follow each other
    for lo, hi in sorted(ranges):
        if merged and lo == merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return BulkCreated(created, now, tuple(merged))


def _copy(svc: SyncService, conn: Connection, sql: _Sql, sources: dict[str, BulkSource],
          specs: dict[str, CreationSpec], pending: Any, run_id: int, started: dt.datetime, now: dt.datetime,
          ranges: list[tuple[int, int]]) -> int:  # fmt: skip
    cfg = svc.config
    pend, users = _pending, t.ma_user
    # 1. the pending records, and which of them would reach the planner's email matching (given a key:
    #    a SELECT list cannot reuse the key it computes, so each row computes it once and step 2 tests
    #    it; every record starts eligible, step 2 takes back the others)
    #    SQLite: a test against a table that holds no row for it (no link, no marketing user with a CRM
    #    id, no prospect with an email key: a first sync) is left out — the copy's reads share one
    #    snapshot until its first commit, and a chunk rechecks links and keys after another
    #    connection's commit (_commit_chunk). PostgreSQL reads each statement anew: always tested.
    owned = users.c.salesforceId.is_not(None), users.c.salesforceId != ""
    links = sql.pg or _any(conn, sa.select(sync_link.c.prospect_id))
    owners = sql.pg or _any(conn, sa.select(users.c.id).where(*owned))
    p = dynamic.load_prospect_schema(conn).table
    # SQLite: the form most new prospects' agreed values share (_range_form), per object; whether a
    # record's prospect is out of it is judged here, on the record, while it is read
    forms = {obj: _range_form(sql, specs[obj], s.table, p, now) if STATE_RANGES and not sql.pg else None
             for obj, s in sources.items()}  # fmt: skip
    for obj, source in sources.items():
        c = source.table
        key = sql.email_key(c.c.Email)
        acts = [c.c.IsDeleted.is_(False)]
        if links:
            acts.append(~sa.exists().where(sync_link.c.crm_id == c.c.Id))
        if obj == "Lead":
            acts.append(sa.or_(c.c.IsConverted.is_(None), c.c.IsConverted.is_(False)))
        if source.condition is not None:
            acts.append(source.condition)
        flag = sa.case((sa.and_(*acts), 1), else_=0)
        owner = (sa.select(sa.func.min(users.c.id)).where(users.c.salesforceId == c.c.OwnerId).where(*owned)
                 .scalar_subquery() if owners else sa.null())  # fmt: skip
        form = forms[obj]
        own = sa.case((form[0], 1), else_=0) if form is not None else sa.null()
        conn.execute(pend.insert().from_select(
            ["obj", "id", "modstamp", "ekey", "acts", "eligible", "owner", "own"],
            sa.select(sa.literal(obj), c.c.Id, c.c.SystemModstamp, key, flag, sa.literal(1), owner, own).where(pending(c, obj))))  # fmt: skip
    # 2. plain cases only: acting, with a key no other acting record and no prospect has, an ASCII key
    #    on PostgreSQL, not the master of a merge or the contact of a conversion pending in this cycle
    shared = (sa.select(pend.c.ekey).where(pend.c.acts == 1, pend.c.ekey.is_not(None)).group_by(pend.c.ekey)
              .having(sa.func.count() > 1))  # fmt: skip
    lead = sources["Lead"].table
    targets = sa.union(
        sa.select(lead.c.ConvertedContactId).where(lead.c.ConvertedContactId.is_not(None)),
        *[sa.select(s.table.c.MasterRecordId).where(pending(s.table, o), s.table.c.MasterRecordId.is_not(None))
          for o, s in sources.items()],
    )  # fmt: skip
    keyed = sql.pg or _any(conn, sa.select(p.c.id).where(p.c.emailKey.is_not(None)))
    conn.execute(pend.update().where(pend.c.eligible == 1, sa.or_(
        pend.c.acts == 0, pend.c.ekey.is_(None), pend.c.ekey.in_(shared.scalar_subquery()),
        sa.exists().where(p.c.emailKey == pend.c.ekey) if keyed else sa.false(),
        ~sql.ascii_key(pend.c.ekey),
        pend.c.id.in_(sa.select(targets.subquery().c[0])))).values(eligible=0))  # fmt: skip
    # 3. with a cap: the planner's order (contacts then leads, each in change order; reversed with
    #    prefer: lead) decides who is served
    if cfg.cap is not None:
        rank = sa.case((pend.c.obj == "Contact", 0), else_=1)
        order = [rank, pend.c.modstamp, pend.c.id]
        if cfg.prefer == "lead":
            order = [o.desc() for o in order]
        numbered = (sa.select(pend.c.id, sa.func.row_number().over(order_by=order).label("n"))
                    .where(pend.c.eligible == 1).subquery())  # fmt: skip
        conn.execute(pend.update().where(pend.c.id == numbered.c.id).values(ord=numbered.c.n))
        # the first K plain cases in order, K leaving room for every other pending record: what the
        # per-record path serves before the cap is then exactly the same set (the rest: cap_reached)
        live = int(conn.execute(sa.select(sa.func.count()).select_from(sync_link)).scalar_one())
        others = int(conn.execute(sa.select(sa.func.count()).where(pend.c.eligible == 0)).scalar_one())
        room = max(0, cfg.cap - live - others)
        conn.execute(pend.update().where(pend.c.eligible == 1, pend.c.ord > room).values(eligible=0))
    # 4. the prospects, their links, agreed values and audit: on SQLite a chunk of pending records
    #    per transaction (see _CHUNK), on PostgreSQL all in this one
    if sql.pg:
        created = _create(conn, sql, sources, specs, p, run_id, now, sa.true())
    else:
        rowid = sa.literal_column("renkei_bulk_pending.rowid", sa.Integer)
        last_row = int(
            conn.execute(sa.select(sa.func.coalesce(sa.func.max(rowid), 0)).select_from(pend)).scalar_one()
        )
        seen = _data_version(conn)  # what the pending records were judged against
        conn.commit()  # so far only the temporary database was written
        created = 0
        for lo in range(0, last_row, _CHUNK):
            seen, made = _commit_chunk(
                conn,
                sql,
                sources,
                specs,
                p,
                run_id,
                now,
                rowid > lo,
                rowid <= lo + _CHUNK,
                seen,
                ranges,
                forms,
            )
            created += made
    # 5. the rest to the per-record planner of this same cycle, the watermarks past everything read
    conn.execute(sync_queue.insert().from_select(
        ["source", "record_id", "enqueued_at"],
        sa.select(cat("crm:", pend.c.obj), pend.c.id, sa.literal(started, type_=UTCDateTime()))
        .where(pend.c.eligible == 0)))  # fmt: skip
    for obj, source in sources.items():
        # the newest pending record, found from the top of the CRM's (SystemModstamp, Id) index; a
        # record changed since it was read no longer matches its pending version and is passed over
        # (the mark stays below it, so the change is read next cycle)
        last = _newest_read(conn, sql, source.table, pending(source.table, obj))
        if last is not None:
            svc._save_mark(conn, f"crm:{obj}", last.modstamp, last.id)
    return created


def _index_pending(conn: Connection) -> None:
    conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS ix_renkei_bulk_pending_id ON renkei_bulk_pending (id)")


#: SQLite: the newest CRM records ``_newest_read`` looks up among the pending records by a scan.
_PROBES = 8


def _newest_read(conn: Connection, sql: _Sql, crm: sa.Table, pending: Any) -> Any:
    """The newest pending record (``modstamp``, ``id``) of ``crm`` as it was read, from the top of the
    CRM's (SystemModstamp, Id) index: one changed since it was read no longer matches its pending
    version and is passed over (the mark stays below it, so the change is read next cycle). SQLite:
    the pending records have no index on id, so the newest ``_PROBES`` records are looked up in one
    scan of them (the first usually matches); only when none does is the index built for the rest."""
    pend, order = _pending, (crm.c.SystemModstamp.desc(), crm.c.Id.desc())
    newest = (
        sa.select(crm.c.SystemModstamp.label("modstamp"), crm.c.Id.label("id"))
        .where(pending)
        .order_by(*order)
    )
    if not sql.pg:
        top = conn.execute(newest.limit(_PROBES)).all()
        as_read = set(
            conn.execute(
                sa.select(pend.c.id, pend.c.modstamp).where(pend.c.id.in_([r.id for r in top]))
            ).all()
        )
        found = next((r for r in top if (r.id, r.modstamp) in as_read), None)
        if found is not None or len(top) < _PROBES:
            return found
        _index_pending(conn)
    read = sa.exists().where(pend.c.id == crm.c.Id, pend.c.modstamp == crm.c.SystemModstamp)
    return conn.execute(newest.where(read).limit(1)).first()


#: SQLite: pending records per transaction of the copy. A million new prospects write ~1.2 GB
#: (prospects, links, agreed values, audit): in one transaction most of it went through the WAL
#: twice (pages spilled from the page cache mid-transaction, then found again through the WAL
#: index, slower as the WAL grows); a chunk's pages stay in the cache until its commit, whose
#: checkpoint leaves the WAL short again (1M records: ~15 % less time than in one transaction;
#: 100k and 250k per chunk alike, 500k slower). Each chunk is whole (its prospects with their links,
#: agreed values and audit) and the watermarks move only after the last one, so a cycle that dies
#: between chunks leaves the rest pending: the next cycle copies them, and hands the records it
#: finds linked to the planner (as edits of linked records, in step).
_CHUNK = 100_000


def _commit_chunk(conn: Connection, sql: _Sql, sources: dict[str, BulkSource], specs: dict[str, CreationSpec],
                  p: sa.Table, run_id: int, now: dt.datetime, rest: Any, upto: Any, seen: int,
                  ranges: list[tuple[int, int]], forms: dict[str, _Form | None]) -> tuple[int, int]:  # fmt: skip
    """SQLite: the next chunk's prospects (the pending records of ``rest`` and ``upto``: SQL
    conditions) in a transaction of their own. ``seen`` is the data version (``_data_version``) the
    records still to do (``rest``) were last judged against: when another connection has committed
    since, they are all checked again for a prospect with their email or a link. Returns the data
    version now and how many prospects were created."""
    pend = _pending
    # the write lock from the start (the driver would begin only at the first write): no other
    # commit lands between the reads below and the writes (the ids past ``before`` are ours)
    conn.exec_driver_sql("BEGIN IMMEDIATE")
    version = _data_version(conn)
    if version != seen:
        conn.execute(pend.update().where(pend.c.eligible == 1, rest, sa.or_(
            sa.exists().where(p.c.emailKey == pend.c.ekey),
            sa.exists().where(sync_link.c.crm_id == pend.c.id))).values(eligible=0))  # fmt: skip
    made = _create(conn, sql, sources, specs, p, run_id, now, sa.and_(rest, upto), ranges, forms)
    conn.commit()
    return version, made  # the connection's own commits leave the version as it is


def _any(conn: Connection, query: sa.Select[Any]) -> bool:
    """Whether the query finds a row."""
    return conn.execute(query.limit(1)).first() is not None


def _data_version(conn: Connection) -> int:
    """SQLite's count of commits by other connections (``PRAGMA data_version``)."""
    return int(conn.exec_driver_sql("PRAGMA data_version").scalar_one())


def _create(conn: Connection, sql: _Sql, sources: dict[str, BulkSource], specs: dict[str, CreationSpec],
            p: sa.Table, run_id: int, now: dt.datetime, chunk: Any,
            ranges: list[tuple[int, int]] | None = None, forms: dict[str, _Form | None] | None = None) -> int:  # fmt: skip
    """The eligible pending records of ``chunk`` (an SQL condition on them) become prospects, linked,
    with their agreed values and create audit, an object at a time (its records' and prospects'
    pages still in the cache). Returns how many; on SQLite, each object's new prospect ids go to
    ``ranges`` as (first, last), and ``forms`` (``_range_form`` per object, the pending records'
    ``own`` judged by it) lets the agreed values be held by a range."""
    pend = _pending
    stamp = sa.literal(now, type_=UTCDateTime())
    created = int(conn.execute(sa.select(sa.func.count()).where(pend.c.eligible == 1, chunk)).scalar_one())
    for obj in CRM_OBJECTS:
        before = int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(p.c.id), 0))).scalar_one())
        c, spec = sources[obj].table, specs[obj]
        mine = sa.and_(pend.c.eligible == 1, pend.c.obj == obj, pend.c.id == c.c.Id, chunk)
        values: dict[str, Any] = {}
        for copy in spec.copies:
            col, kind, value = _copied(sql, c, copy)
            values[copy.target] = sa.case((sql.blank(col, kind), sa.null()), else_=value)
        fixed = {"emailKey": pend.c.ekey, "score": sa.literal(_SCORE), "isDeleted": sa.false(), "createdAt": stamp,
                 "updatedAt": stamp, "salesforceId": c.c.Id, "salesforceLastSync": stamp,
                 "salesforceLeadId": c.c.Id if obj == "Lead" else sa.null(),
                 "salesforceContactId": c.c.Id if obj == "Contact" else sa.null(),
                 "source": sa.func.coalesce(values.get("source", sa.null()), _DEFAULT_SOURCE), _OWNER: pend.c.owner}  # fmt: skip
        assert set(fixed) == _SET_ON_CREATE
        row = {**values, **fixed}
        select = sa.select(*row.values())
        conn.execute(p.insert().from_select(list(row), select.where(mine)))
        top = before
        if not sql.pg:
            top = int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(p.c.id), 0))).scalar_one())
            if ranges is not None and top > before:
                ranges.append((before + 1, top))
        # link, agree, audit: one statement each, driven by the new prospects themselves (their rows
        # hold most of what is agreed and taken; the record is found by its primary key)
        crm_id = p.c.salesforceLeadId if obj == "Lead" else p.c.salesforceContactId
        # SQLite: the prospects past ``before`` are this transaction's (it holds the write lock
        # from its start), so no join with the pending records
        new = sa.and_(p.c.id > before, crm_id.is_not(None))
        if sql.pg:  # others may insert prospects meanwhile
            new = sa.and_(new, pend.c.id == crm_id, pend.c.eligible == 1)
        conn.execute(sync_link.insert().from_select(
            ["prospect_id", "crm_object", "crm_id", "linked_at", "run_id"],
            sa.select(p.c.id, sa.literal(obj), crm_id, stamp, sa.literal(run_id)).where(new)))  # fmt: skip
        with_record = sa.and_(new, c.c.Id == crm_id)
        # the audit reads the record only where the prospect does not hold what it took (reading each
        # record's row cost a sixth of this statement): an eligible record's email is no blank, so
        # the prospect holds it as it is when copied as it is
        taken, from_record = _taken(sql, c, p, spec)
        mail = p.c.email if any(_as_copied(k, sql_kind(c.c[k.source]), p.c[k.target])
                                for k in spec.copies if (k.source, k.target) == _EMAIL) else c.c.Email  # fmt: skip
        reason = sa.func.substr(cat(f"new {obj} with email ", mail), 1, 255, type_=sa.Text)
        a = sync_audit
        # the agreed values: on SQLite, where the create audit holds most of them (the fifteen or so
        # copied members), they refer to its row and hold only the other members; else built whole
        pairs = _pairs(sql, spec, c, p, now)  # classified once for both builders below
        by_audit = not from_record and mail is not c.c.Email and _refers_to_audit(sql, spec, pairs)
        if by_audit:
            last_audit = int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(a.c.id), 0))).scalar_one())
        audited = conn.execute(a.insert().from_select(
            ["run_id", "at", "direction", "action", "object", "record_id", "prospect_id", "new", "rule", "evidence", "reason"],
            sa.select(sa.literal(run_id), stamp, sa.literal("ma"), sa.literal("create"), sa.literal("prospect"),
                      sa.cast(p.c.id, sa.String), p.c.id, sql.as_json(taken), sa.literal("create"),
                      sa.literal("rule"), reason).where(with_record if from_record or mail is c.c.Email else new)
            .order_by(p.c.id)))  # fmt: skip
        state = sql.as_json(_agreed(sql, pairs, c, p, now, by_audit))
        columns = ["prospect_id", "crm_object", "values", "synced_at", "sparse"]
        select = sa.select(p.c.id, sa.literal(obj), state, stamp, sa.true())
        # the agreed values most of them share, once for the chunk's prospects of this object: a
        # row each only for the others (see sync_state_range)
        form = (forms or {}).get(obj) if by_audit and top > before else None
        offset = (
            _audit_offset(conn, audited.rowcount, last_audit, before + 1, top) if form is not None else None
        )
        if form is not None and offset is not None:
            # a row for the prospects the copy found out of the form (the pending records marked
            # ``own``; usually none), found from them: their prospects by CRM id
            _, shared, source_default = form
            own = conn.execute(sync_state.insert().from_select([*columns, "base_audit_id"], select.add_columns(
                p.c.id + offset).where(mine, pend.c.own == 1, p.c.salesforceId == pend.c.id, p.c.id > before)))  # fmt: skip
            if own.rowcount != top - before:  # (no range when every prospect has its row)
                conn.execute(sync_state_range.insert().values(
                    run_id=run_id, crm_object=obj, first_prospect_id=before + 1, last_prospect_id=top,
                    audit_offset=offset, values=shared, source_default=source_default, synced_at=now))  # fmt: skip
            continue
        if by_audit:  # the prospect's create audit row, just written
            columns.append("base_audit_id")
            select = select.add_columns(a.c.id).where(
                with_record, a.c.id > last_audit, a.c.prospect_id == p.c.id
            )
        else:
            select = select.where(with_record)
        conn.execute(sync_state.insert().from_select(columns, select))
    return created


def _copied(sql: _Sql, crm: sa.Table, copy: Copy) -> tuple[Any, Kind, Any]:
    """A copy's CRM column, its kind and the value a new prospect takes (``_to_ma(value, None)``)."""
    col = crm.c[copy.source]
    kind = sql_kind(col)
    return col, kind, sql.number_as_ma(col, sa.false()) if copy.conversion is Conversion.WHOLE_NUMBER else col


def sql_kind(column: Any) -> Kind:
    kind = kind_of(column)
    assert kind is not None  # creation_spec refused the other kinds
    return kind


def _taken(sql: _Sql, crm: sa.Table, p: sa.Table, spec: CreationSpec) -> tuple[Any, bool]:
    """The create audit's ``new``: a JSON object of every non-blank value the prospect took, its
    ``source`` (the record's, or the default the connector gave it) and its owner; and whether it
    reads the record. A value copied as it is and the source are read from the new prospect (NULL
    there when it was blank), so with no other copy the record is not read at all."""
    members = []
    from_record = False
    for copy in spec.copies:
        if copy.target == "source":
            continue  # below, as the prospect holds it
        col, kind, value = _copied(sql, crm, copy)
        target = p.c[copy.target]
        if _as_copied(copy, kind, target):  # as stored: no blank test
            held = ALWAYS if (copy.source, copy.target) == _EMAIL else target.is_(None)
            members.append(_Member(copy.target, held, sql.json_text(target, kind)))
        else:
            members.append(_Member(copy.target, sql.blank(col, kind), sql.json_text(value, kind)))
            from_record = True
    for name, kind in ((_OWNER, Kind.INTEGER), ("source", Kind.TEXT)):  # as the prospect holds them
        members.append(_Member(name, p.c[name].is_(None), sql.json_text(p.c[name], kind)))
    return _object(sql, members), from_record


def _as_copied(copy: Copy, kind: Kind, target: sa.Column[Any]) -> bool:
    """Whether the new prospect holds this copy's CRM value as it is, NULL for a blank (no default
    for a blank, no number conversion, one kind on both sides)."""
    return (
        copy.target not in _SET_ON_CREATE
        and copy.conversion is Conversion.COPY
        and kind is not Kind.NUMBER
        and kind_of(target) is kind
    )


@dataclass(frozen=True)
class _Member:
    """A JSON object's member: its name, when it is left out (an SQL condition) and its value's JSON
    text (``_Sql.json_text``; anything where the member is left out)."""

    name: str
    # None: never left out, ``text`` a Python string (a constant member); ALWAYS: never left out,
    # ``text`` an SQL expression; else an SQL condition
    left_out: Any
    text: Any


class _Always:
    """``_Member.left_out`` of a member never left out whose value is an SQL expression."""


ALWAYS: Any = _Always()


def _object(sql: _Sql, members: list[_Member]) -> Any:
    """The text of the JSON object of these members but those left out: each member's text
    (``,"name":value``, or nothing) concatenated, the first comma dropped — on SQLite in one printf
    call, where a NULL argument prints as nothing. (SQLite's ``json_object`` cannot leave a member
    out: dropping its NULL members afterwards with ``json_patch('{}', …)``, which parses the whole
    object anew, took a tenth longer per statement; naming them "" for one ``replace``, a fifth.)"""
    parts = _parts(sql, members)
    if members and members[0].left_out is ALWAYS:  # its text opens the object: no comma to drop
        return cat("{", parts[0][1:], *parts[1:], "}")
    return cat("{", sa.func.substr(cat(*parts), 2, type_=sa.Text), "}")


def _parts(sql: _Sql, members: list[_Member]) -> list[Any]:
    """Each member's text with its leading comma (``,"name":value``; nothing where it is left out)."""
    parts: list[Any] = []
    for m in members:
        if m.left_out is None:  # a constant member: part of the printf format on SQLite
            parts.append("," + json.dumps(m.name, ensure_ascii=False) + ":" + m.text)
            continue
        if m.left_out is ALWAYS:  # its name in the format, its value an argument: no test, no concatenation
            parts += ["," + json.dumps(m.name, ensure_ascii=False) + ":", m.text]
            continue
        head = sa.literal("," + json.dumps(m.name, ensure_ascii=False) + ":", sa.Text)
        parts.append(
            sa.case((m.left_out, sa.literal("") if sql.pg else sa.null()), else_=head.concat(m.text))
        )
    return parts


#: The JSON type a value of each kind has in Python (``jsonable``): what decides whether two values are alike.
_JSON_TYPE = {Kind.TEXT: "string", Kind.DATE: "string", Kind.DATETIME: "string", Kind.BOOLEAN: "boolean",
              Kind.INTEGER: "integer", Kind.NUMBER: "float"}  # fmt: skip


@dataclass(frozen=True)
class _Pair:
    """How a new prospect's agreed pair (``a``) is built, worked out once for ``_agreed``,
    ``_refers_to_audit`` and ``_range_form``. ``kind``: ``owner`` (the assigned user); ``copied``
    (the prospect copied the record's field as it is: ``member``, from ``_agreed_copy``);
    ``constant`` (no record field, and every new prospect holds ``value``); ``record_only`` (a new
    prospect leaves the field empty: the record's value, paired); ``known`` (every new prospect
    holds ``value`` — a stamp, the score — beside the record's field); ``other`` (built a row at a
    time from both sides)."""

    a: AgreedPair
    kind: str
    member: _Member | None = None
    value: Any = None


def _pairs(sql: _Sql, spec: CreationSpec, crm: sa.Table, p: sa.Table, now: dt.datetime) -> list[_Pair]:
    """``spec.agreed`` classified (``_Pair``), in order."""
    copied = {(c.target, c.source): c for c in spec.copies}
    out = []
    for a in spec.agreed:
        if a.field == _OWNER:
            out.append(_Pair(a, "owner"))
            continue
        member = _agreed_copy(sql, a, copied, crm, p)
        if member is not None:
            out.append(_Pair(a, "copied", member))
            continue
        known, value = _on_create(a.field, spec, p, now)
        if not known:
            out.append(_Pair(a, "other"))
        elif a.source is None:
            out.append(_Pair(a, "constant", value=value))
        else:
            out.append(_Pair(a, "record_only" if value is None else "known", value=value))
    return out


def _held_in_audit(a: AgreedPair) -> bool:
    """A copied pair wholly in the create audit: not a text (which may pair a blank record value
    with the prospect's NULL), or the email (never blank)."""
    return a.ma_kind is not Kind.TEXT or (a.source, a.field) == _EMAIL


def _agreed(sql: _Sql, pairs: Sequence[_Pair], crm: sa.Table, p: sa.Table, now: dt.datetime,
            by_audit: bool = False) -> Any:  # fmt: skip
    """The new prospect's agreed values as ``_agreed_values`` writes them (a sparse row): a field whose
    two sides are alike (one JSON type, one value) as that bare value, else ``[CRM value as marketing
    keeps it, marketing value]``, and no member for a field both sides leave empty (NULL). The
    marketing side is read from the new prospect (its stamps are ``now``).

    ``by_audit``: the values refer to the prospect's create audit (``_refers_to_audit``), whose
    members but its source — the copied values the prospect holds and its owner — are these
    fields' members as they are; only the other members are built (where a copied text is NULL,
    its blank record value), the rest read from the audit (``connector.service.state_values``)."""
    members: list[_Member] = []
    for pair in pairs:
        a = pair.a
        if pair.kind == "owner":
            continue  # the owner is below
        if pair.kind == "copied" and by_audit:  # held: in the audit; a NULL text: its blank, paired
            if not _held_in_audit(a):
                assert a.source is not None
                held, record_col = p.c[a.field], crm.c[a.source]
                members.append(_Member(a.field, sa.or_(held.is_not(None), record_col.is_(None)),
                                       cat("[", sql.json_text(record_col, Kind.TEXT), ",null]")))  # fmt: skip
            continue
        if pair.kind == "copied":
            assert pair.member is not None
            members.append(pair.member)
            continue
        if pair.kind == "constant":  # both sides known before any row is read: a constant member
            if pair.value is not None:  # (none: both empty, left out)
                members.append(_Member(a.field, None, "[null," + json.dumps(jsonable(pair.value)) + "]"))
            continue
        if pair.kind == "record_only":  # a new prospect leaves it empty: the record's value, paired
            assert a.crm_kind is not None and a.source is not None
            crm_col = crm.c[a.source]
            as_ma = sql.number_as_ma(crm_col, sa.false()) if a.crm_kind is Kind.NUMBER else crm_col
            members.append(
                _Member(a.field, crm_col.is_(None), cat("[", sql.literal(as_ma, a.crm_kind), ",null]"))
            )
            continue
        # "known" and "other": built a row at a time from both sides (a stamp is ``now``)
        if a.field in _STAMPS:
            ma: Any = sa.literal(now, type_=UTCDateTime())
            ma_out: Any = sa.literal(json.dumps(jsonable(now)))
        else:
            ma = p.c[a.field]
            ma_out = sql.literal(ma, a.ma_kind)
        both_null = sa.and_(ma.is_(None), sa.true() if a.source is None else crm.c[a.source].is_(None))
        alike: Any
        if a.source is None:
            alike, crm_out = sa.false(), sa.literal("null")
        else:
            assert a.crm_kind is not None
            col = crm.c[a.source]
            value: Any = col
            if a.crm_kind is Kind.NUMBER:  # _to_ma: an integer when whole or when the prospect holds one
                integer_like = sa.and_(
                    ma.is_not(None), sa.true() if a.ma_kind in (Kind.INTEGER, Kind.BOOLEAN) else sa.false()
                )
                value = sql.number_as_ma(col, integer_like)
                whole = sa.or_(col == sql.whole(col), integer_like)
                if a.ma_kind is Kind.INTEGER:
                    alike = sa.and_(whole, sql.whole(col) == ma)
                elif a.ma_kind is Kind.NUMBER:
                    alike = sa.and_(sa.not_(whole), col == ma)
                else:
                    alike = sa.false()
            elif _JSON_TYPE[a.crm_kind] != _JSON_TYPE[a.ma_kind]:
                alike = sa.false()
            elif Kind.DATETIME in (a.crm_kind, a.ma_kind) or a.crm_kind is not a.ma_kind:  # compare as JSON
                alike = _string(sql, col, a.crm_kind) == _string(sql, ma, a.ma_kind)
            else:
                alike = col == ma  # NULL (not alike) where either side is
            crm_out = sql.literal(value, a.crm_kind)
        # both sides empty: left out; alike (neither is empty then): the bare value; else the pair
        text = sa.case((alike, ma_out), else_=cat("[", crm_out, ",", ma_out, "]"))
        members.append(_Member(a.field, both_null, text))
    if by_audit:  # the owner is in the audit
        return _object(sql, members)
    owner = p.c[_OWNER]  # both sides: the record's owner's user
    members.append(_Member(_OWNER, owner.is_(None), sql.json_text(owner, Kind.INTEGER)))
    return _object(sql, members)


def _refers_to_audit(sql: _Sql, spec: CreationSpec, pairs: Sequence[_Pair]) -> bool:
    """SQLite: whether new prospects' agreed values can refer to their create audit (``_taken``)
    for every member it holds but its source — each copied value the prospect holds, as it is, and
    the owner: when every copy but the source is copied as it is into a field agreed with the same
    record field (``_agreed_copy``) and the email opens the audit (an eligible record's email is
    no blank)."""
    if (
        sql.pg
        or len({a.field for a in spec.agreed}) != len(spec.agreed)
        or not spec.copies
        or spec.copies[0].target != "email"
    ):
        return False
    by_field = {pair.a.field: pair for pair in pairs}
    for copy in spec.copies:
        if copy.target == "source":
            continue
        pair = by_field.get(copy.target)  # copied: as it is, from the same field (_agreed_copy)
        if pair is None or pair.a.source != copy.source or pair.kind != "copied":
            return False
    return True


#: ``_range_form``: (the SQL condition that a record's prospect is out of the form, the shared
#: members, the default source read from the audit or None).
_Form = tuple[Any, dict[str, Any], str | None]


def _range_form(sql: _Sql, spec: CreationSpec, crm: sa.Table, p: sa.Table, now: dt.datetime) -> _Form | None:
    """SQLite, for agreed values that refer to the create audit (``_agreed`` with ``by_audit``): the
    form most new prospects' values share, as ``sync_state_range`` holds it — an SQL condition on
    the CRM record alone that its prospect's values are *not* in that form (they need a row of
    their own), the members every prospect in it holds alike (``values``), and the default source
    (``source_default``) when its source is read from the audit. None when a member has no such
    form (the values are then stored a row each).

    In that form every member ``_agreed`` builds a row at a time is left out — a copied text the
    prospect holds or the record leaves NULL (not a blank value beside the prospect's NULL), a field
    a new prospect leaves empty whose record value is NULL — or the same for all: a value every new
    prospect holds beside a NULL record field; but the source: the record's, alike on both sides,
    or none (the default, paired with an empty record side); a record whose source is the default
    itself, or a blank, is not in it."""
    own: list[Any] = []
    shared: dict[str, Any] = {}
    source_default = None
    for pair in _pairs(sql, spec, crm, p, now):
        a = pair.a
        if pair.kind == "owner":
            continue  # in the audit
        if pair.kind == "copied":
            if not _held_in_audit(a):  # a blank record value: the prospect holds NULL, paired
                assert a.source is not None
                own.append(sa.and_(crm.c[a.source].is_not(None), sql.blank(crm.c[a.source], Kind.TEXT)))
            continue
        if pair.kind == "constant":
            if pair.value is not None:
                shared[a.field] = [None, jsonable(pair.value)]
            continue
        if pair.kind == "record_only":
            assert a.source is not None
            own.append(crm.c[a.source].is_not(None))
            continue
        if pair.kind == "known":  # a marketing value every new prospect holds (a stamp, the score)
            # beside the record's field (AE's package fields, pi__created_date__c …): paired with it empty
            assert a.source is not None
            shared[a.field] = [None, jsonable(pair.value)]
            own.append(crm.c[a.source].is_not(None))
            continue
        copies = [c for c in spec.copies if c.target == "source"]
        if (
            a.field == "source"
            and a.source is not None
            and a.crm_kind is Kind.TEXT
            and a.ma_kind is Kind.TEXT
            and all(c.source == a.source and c.conversion is Conversion.COPY for c in copies)
        ):  # a record without a source gives its prospect the default; one with it, its own
            col = crm.c[a.source]
            own.append(sa.and_(col.is_not(None), sa.or_(col == _DEFAULT_SOURCE, sql.blank(col, Kind.TEXT))))
            source_default = _DEFAULT_SOURCE
            continue
        return None
    return (sa.or_(*own) if own else sa.false()), shared, source_default


def _audit_offset(conn: Connection, inserted: int, after: int, first: int, last: int) -> int | None:
    """The offset from prospect id to create audit id when the ``inserted`` audit rows past ``after``
    are one for each prospect ``first``…``last`` in the same order (None otherwise). They were
    inserted in prospect order (``ORDER BY``) under the write lock, each taking the next rowid
    (the largest plus one: the table has no AUTOINCREMENT), so a prospect's audit row is found by
    arithmetic; the count, the ends and a sample between them are checked, not every row."""
    if inserted != last - first + 1 or inserted <= 0:
        return None
    offset = after + 1 - first
    step = max(1, inserted // _SAMPLE)
    probes = sorted({*range(first, last + 1, step), last})
    a = sync_audit
    found = dict(
        conn.execute(sa.select(a.c.id, a.c.prospect_id).where(a.c.id.in_([q + offset for q in probes]))).all()
    )
    top = conn.execute(sa.select(sa.func.max(a.c.id))).scalar_one()
    if top != last + offset or any(found.get(q + offset) != q for q in probes):
        return None
    return offset


#: Audit rows ``_audit_offset`` reads between the ends of a chunk's.
_SAMPLE = 64


#: A new prospect's score.
_SCORE = 0


def _on_create(field: str, spec: CreationSpec, p: sa.Table, now: dt.datetime) -> tuple[bool, Any]:
    """(True, the value) when every new prospect of ``spec`` holds one value in ``field`` whatever its
    record (``now`` for its stamps, its score, None for a column the copy leaves to NULL: no copy,
    not set on create, no default), else (False, None)."""
    if field in _STAMPS:
        return True, now
    if field == "score":
        return True, _SCORE
    column = p.c[field]
    taken = field in _SET_ON_CREATE or any(c.target == field for c in spec.copies)
    if taken or column.default is not None or column.server_default is not None:
        return False, None
    return True, None


def _agreed_copy(sql: _Sql, a: AgreedPair, copied: dict[tuple[str, str], Copy], crm: sa.Table,
                 p: sa.Table) -> _Member | None:  # fmt: skip
    """A field the new prospect copied from the record as it is (``_as_copied``): where the prospect
    holds a value, both sides hold it alike; where not, the record held nothing (left out) or a
    blank (a pair). None for the other fields."""
    copy = copied.get((a.field, a.source)) if a.source is not None else None
    if (
        copy is None
        or a.source is None
        or a.crm_kind is not a.ma_kind
        or not _as_copied(copy, a.ma_kind, p.c[a.field])
    ):
        return None
    ma, col = p.c[a.field], crm.c[a.source]
    if a.ma_kind is not Kind.TEXT:  # only text has blanks other than NULL: the sides are the same
        return _Member(a.field, ma.is_(None), sql.json_text(ma, a.ma_kind))
    text = sa.case(
        (ma.is_not(None), sql.json_text(ma, Kind.TEXT)),
        else_=cat("[", sql.json_text(col, Kind.TEXT), ",null]"),
    )
    return _Member(a.field, sa.and_(ma.is_(None), col.is_(None)), text)


def _string(sql: _Sql, expr: Any, kind: Kind) -> Any:
    """A text, date or datetime value as its JSON string (NULL for NULL)."""
    if kind is Kind.DATETIME:
        return sql.json_value(expr, kind)
    if kind is Kind.DATE and sql.pg:
        return sa.func.to_char(expr, "YYYY-MM-DD")
    return expr
