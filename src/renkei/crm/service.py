"""The built-in CRM's library API: records with Salesforce's API names, ids, rules and errors.

Every write runs in one transaction; a record is validated completely before anything is written,
so a rejected write changes nothing. Every write moves ``SystemModstamp`` (strictly increasing per
record), which the change feed (``changes_since``, ``updated``, ``deleted``) reads in
``(SystemModstamp, Id)`` order through an index — its cost follows the changes, not the table.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from renkei import ids
from renkei.clock import Clock, SystemClock, sf_datetime
from renkei.crm import schema as s
from renkei.crm import validation as v
from renkei.crm.schema import CUSTOM_FIELD_TYPES, CUSTOM_NAME, FieldDef, FieldType, ObjectDef, PicklistValue
from renkei.errors import ConflictError, FieldError, InputError, NotFoundError, ValidationError
from renkei.store import dynamic
from renkei.store import tables as t
from renkei.store.bulkexec import executemany
from renkei.store.db import analyze_if_grown, row_dicts
from renkei.store.dynamic import CrmSchema
from renkei.store.tables_crm import crm_recycle_bin as t_bin

API_VERSION = "v60.0"
SYSTEM_USERNAME = "system@renkei.local"
#: How far back ``updated``/``deleted`` reach, as Salesforce's replication API.
UPDATED_WINDOW = dt.timedelta(days=30)
DELETED_WINDOW = dt.timedelta(days=15)
CONVERTED_STATUS = s.CONVERTED_LEAD_STATUSES[0]
#: Key of PostgreSQL's advisory lock that orders CRM writes (see ``CrmService._write``).
_WRITE_LOCK = 0x72656E6B  # "renk"


@dataclass(frozen=True, slots=True)
class SaveResult:
    id: str | None
    success: bool
    errors: tuple[FieldError, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "success": self.success,
            "errors": [e.to_collection_dict() for e in self.errors],
        }


@dataclass(frozen=True, slots=True)
class Watermark:
    modstamp: dt.datetime
    id: str

    def to_dict(self) -> dict[str, Any]:
        return {"modstamp": sf_datetime(self.modstamp), "id": self.id}


@dataclass(frozen=True, slots=True)
class ChangePage:
    records: tuple[dict[str, Any], ...]
    watermark: Watermark | None
    done: bool


@dataclass(frozen=True, slots=True)
class ConvertResult:
    lead_id: str
    account_id: str
    contact_id: str
    opportunity_id: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"leadId": self.lead_id, "accountId": self.account_id, "contactId": self.contact_id,
                "opportunityId": self.opportunity_id, "success": True, "errors": []}  # fmt: skip


def to_api(record: Mapping[str, Any], obj: ObjectDef) -> dict[str, Any]:
    """A stored record in Salesforce's JSON shape (with ``attributes``)."""
    out: dict[str, Any] = {}
    if "Id" in record:
        out["attributes"] = {
            "type": obj.name,
            "url": f"/services/data/{API_VERSION}/sobjects/{obj.name}/{record['Id']}",
        }
    for key, value in record.items():
        if isinstance(value, dt.datetime):
            out[key] = sf_datetime(value)
        elif isinstance(value, dt.date):
            out[key] = value.isoformat()
        else:
            out[key] = value
    return out


#: Children re-parented by a merge and deleted with their parent: (child object, field).
_CHILD_REFS: dict[str, tuple[tuple[str, str], ...]] = {
    "Lead": (("CampaignMember", "LeadId"), ("Task", "WhoId")),
    "Contact": (("OpportunityContactRole", "ContactId"), ("CampaignMember", "ContactId"), ("Task", "WhoId"),
                ("Opportunity", "ContactId")),
    "Account": (("Contact", "AccountId"), ("Opportunity", "AccountId"), ("Account", "ParentId"), ("Task", "WhatId")),
    "Opportunity": (("OpportunityContactRole", "OpportunityId"), ("Task", "WhatId")),
}  # fmt: skip
#: Children deleted (and undeleted) with their parent, as Salesforce cascades.
_CASCADE: dict[str, tuple[tuple[str, str], ...]] = {
    "Account": (("Contact", "AccountId"), ("Opportunity", "AccountId")),
    "Contact": (("OpportunityContactRole", "ContactId"), ("CampaignMember", "ContactId")),
    "Opportunity": (("OpportunityContactRole", "OpportunityId"),),
    "Lead": (("CampaignMember", "LeadId"),),
}

#: The fields ``CrmService._derive`` reads or writes, by object (none for the others). An update
#: reads just these of each record as it is, with the required fields and those the update names,
#: not whole rows; keep this in step with ``_derive`` (tests/crm/test_update_many.py checks that it
#: touches no other field of any object).
_DERIVED: dict[str, frozenset[str]] = {
    "Lead": frozenset({"FirstName", "LastName", "Name"}),
    "Contact": frozenset({"FirstName", "LastName", "Name"}),
    "User": frozenset({"FirstName", "LastName", "Name"}),
    "Opportunity": frozenset({"StageName", "ForecastCategoryName", "Probability", "CloseDate", "IsClosed", "IsWon",
                              "FiscalYear", "FiscalQuarter"}),
    "Task": frozenset({"Status", "WhoId", "WhatId", "IsClosed", "AccountId"}),
    "CampaignMember": frozenset({"ContactId", "LeadId", "FirstName", "LastName", "Email", "LeadOrContactId",
                                 "LeadOrContactOwnerId", "CompanyOrAccount", "Status", "HasResponded",
                                 "FirstRespondedDate"}),
}  # fmt: skip


class CrmService:
    def __init__(self, engine: Engine, *, clock: Clock | None = None, user_id: str | None = None) -> None:
        self.engine = engine
        self.clock = clock or SystemClock()
        self._user_id = ids.normalize(user_id) if user_id else None
        self._local = threading.local()  # this thread's shared write transaction (``together``)

    # -- metadata ----------------------------------------------------------------------------

    def schema(self) -> CrmSchema:
        with self.engine.connect() as conn:
            return dynamic.load_crm_schema(conn)

    def describe(self, object_name: str) -> dict[str, Any]:
        return self.schema().object(object_name).to_describe(f"/services/data/{API_VERSION}")

    def describe_global(self) -> dict[str, Any]:
        objects = self.schema().objects.values()
        return {
            "encoding": "UTF-8",
            "maxBatchSize": 200,
            "sobjects": [
                {"name": o.name, "label": o.label, "labelPlural": o.label_plural, "keyPrefix": o.key_prefix,
                 "custom": o.custom, "createable": o.createable, "updateable": o.updateable, "deletable": o.deletable,
                 "queryable": True, "urls": {"sobject": f"/services/data/{API_VERSION}/sobjects/{o.name}",
                                             "describe": f"/services/data/{API_VERSION}/sobjects/{o.name}/describe"}}
                for o in objects
            ],
        }  # fmt: skip

    # -- helpers -----------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction that holds the CRM's write lock from its start.

        SystemModstamp is read from the clock inside the lock, so stamps follow commit order and a
        change-feed reader that has passed a stamp never sees an older one commit later (which two
        overlapping writers would otherwise cause). PostgreSQL: a transaction-level advisory lock;
        SQLite: the database's write lock, taken at once by a write that changes no row.

        Inside ``together()`` every write call of this thread joins its one transaction."""
        shared = getattr(self._local, "conn", None)
        if shared is not None:
            yield shared
            return
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_WRITE_LOCK)))
            else:
                c = t.crm_id_counter
                conn.execute(c.update().where(c.c.key_prefix == "").values(next_value=c.c.next_value))
            yield conn

    @contextmanager
    def together(self) -> Iterator[None]:
        """Make this thread's write calls inside the block one transaction: they commit together as it
        ends, or none of them does when it raises. Each call keeps its own validation and per-record
        results. A connector's update of 5,000 records is 25 calls of 200 (the API's batch size, and
        what the connector counts) but one commit here: on SQLite each commit of a few hundred
        scattered rows also copied the WAL back into the database (a checkpoint with two fsyncs)."""
        if getattr(self._local, "conn", None) is not None:
            yield
            return
        with self._write() as conn:
            self._local.conn = conn
            try:
                yield
            finally:
                self._local.conn = None

    def _acting_user(self, conn: Connection, schema: CrmSchema) -> str:
        if self._user_id is not None:
            return self._user_id
        users = schema.table("User")
        found = conn.execute(sa.select(users.c.Id).where(users.c.Username == SYSTEM_USERNAME)).scalar()
        if found:
            return str(found)
        now = self.clock.now()
        [uid] = self._allocate(conn, "User", 1)
        conn.execute(users.insert().values(
            Id=uid, IsDeleted=False, CreatedDate=now, CreatedById=uid, LastModifiedDate=now, LastModifiedById=uid,
            SystemModstamp=now, Username=SYSTEM_USERNAME, LastName="System", FirstName="renkei",
            Name="System renkei", Alias="system", Email=SYSTEM_USERNAME, IsActive=True, TimeZoneSidKey="Asia/Tokyo",
            LocaleSidKey="ja_JP", EmailEncodingKey="UTF-8", LanguageLocaleKey="ja",
        ))  # fmt: skip
        return uid

    def _allocate(self, conn: Connection, object_name: str, n: int) -> list[str]:
        """``n`` new ids for an object: a block from the per-prefix counter (safe with concurrent writers)."""
        prefix = ids.KEY_PREFIXES[object_name]
        c = t.crm_id_counter
        ins: Any = postgresql.insert(c) if conn.dialect.name == "postgresql" else sqlite.insert(c)
        conn.execute(
            ins.values(key_prefix=prefix, next_value=1).on_conflict_do_nothing(index_elements=["key_prefix"])
        )
        end = conn.execute(
            c.update()
            .where(c.c.key_prefix == prefix)
            .values(next_value=c.c.next_value + n)
            .returning(c.c.next_value)
        ).scalar_one()
        return [ids.make_id(prefix, i) for i in range(int(end) - n, int(end))]

    def _norm_id(self, obj: ObjectDef, record_id: str) -> str:
        try:
            rid = ids.normalize(record_id)
        except ids.MalformedIdError:
            raise InputError(
                f"{obj.name} id value of incorrect type: {record_id}", code="MALFORMED_ID"
            ) from None
        if rid[:3] != obj.key_prefix:
            raise NotFoundError(f"Provided external ID field does not exist or is not accessible: {record_id}",
                                code="NOT_FOUND")  # fmt: skip
        return rid

    def _row(
        self, conn: Connection, schema: CrmSchema, obj: ObjectDef, rid: str, *, for_update: bool = False
    ) -> dict[str, Any] | None:
        table = schema.table(obj.name)
        q = sa.select(table).where(table.c.Id == rid)
        if for_update and conn.dialect.name == "postgresql":
            q = q.with_for_update()
        row = conn.execute(q).mappings().first()
        return dict(row) if row is not None else None

    def _live_row(self, conn: Connection, schema: CrmSchema, obj: ObjectDef, rid: str) -> dict[str, Any]:
        row = self._row(conn, schema, obj, rid, for_update=True)
        if row is None:
            raise NotFoundError("The requested resource does not exist", code="NOT_FOUND")
        if row["IsDeleted"]:
            raise InputError("entity is deleted", code="ENTITY_IS_DELETED")
        return row

    def _modstamp(self, previous: dt.datetime | None, now: dt.datetime | None = None) -> dt.datetime:
        """``now`` (the clock's, unless given), or a microsecond past ``previous`` if it is not later."""
        now = self.clock.now() if now is None else now
        if previous is not None and now <= previous:
            return previous + dt.timedelta(microseconds=1)
        return now

    def _touch(self, conn: Connection, table: sa.Table, where: sa.ColumnElement[bool],
               values: Mapping[str, Any]) -> list[str]:  # fmt: skip
        """Update the rows ``where`` selects with one SystemModstamp later than each row's own
        (strictly increasing per record, as the change feed needs); their ids."""
        rows = conn.execute(sa.select(table.c.Id, table.c.SystemModstamp).where(where)).all()
        if rows:
            stamp = self._modstamp(max(r.SystemModstamp for r in rows))
            conn.execute(table.update().where(table.c.Id.in_([r.Id for r in rows]))
                         .values({**values, "SystemModstamp": stamp}))  # fmt: skip
        return [r.Id for r in rows]

    def _check_references(
        self, conn: Connection, schema: CrmSchema, obj: ObjectDef, values: Mapping[str, Any]
    ) -> list[FieldError]:
        errors = []
        for name, value in values.items():
            f = obj.field(name)
            if f is None or f.type is not FieldType.REFERENCE or value is None:
                continue
            target = ids.object_for_id(value)
            if target is None or target not in f.reference_to or target not in schema.objects:
                errors.append(
                    FieldError(
                        "INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {value}", (f.name,)
                    )
                )
                continue
            table = schema.table(target)
            found = conn.execute(sa.select(table.c.IsDeleted).where(table.c.Id == value)).first()
            if found is None or found.IsDeleted:
                errors.append(
                    FieldError(
                        "INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {value}", (f.name,)
                    )
                )
        return errors

    def _derive(self, conn: Connection, schema: CrmSchema, obj: ObjectDef, record: dict[str, Any],
                changed: set[str], previous: Mapping[str, Any] | None) -> None:  # fmt: skip
        """Fields Salesforce computes: names, opportunity stage facts, campaign member copies … (it
        reads and writes only the fields ``_DERIVED`` names for the object)."""
        name = obj.name
        if name in ("Lead", "Contact", "User") and changed & {"FirstName", "LastName"} | (
            {"LastName"} if previous is None else set()
        ):
            parts = [record.get("LastName"), record.get("FirstName")]  # Japanese order (ja_JP locale)
            record["Name"] = " ".join(p for p in parts if p) or None
        if name == "Opportunity":
            stage = s.stage(record.get("StageName"))
            if stage is not None and ("StageName" in changed or previous is None):
                record["IsClosed"], record["IsWon"] = stage.is_closed, stage.is_won
                record["ForecastCategoryName"] = (
                    record.get("ForecastCategoryName")
                    if "ForecastCategoryName" in changed
                    else stage.forecast_category
                )
                if "Probability" not in changed:
                    record["Probability"] = float(stage.probability)
            close = record.get("CloseDate")
            if isinstance(close, dt.date):
                record["FiscalYear"], record["FiscalQuarter"] = close.year, (close.month - 1) // 3 + 1
        if name == "Task":
            record["IsClosed"] = record.get("Status") == "Completed"
            account = None
            who, what = record.get("WhoId"), record.get("WhatId")
            if what and ids.object_for_id(what) == "Account":
                account = what
            elif what and ids.object_for_id(what) == "Opportunity":
                account = conn.execute(sa.select(schema.table("Opportunity").c.AccountId).where(
                    schema.table("Opportunity").c.Id == what)).scalar()  # fmt: skip
            elif who and ids.object_for_id(who) == "Contact":
                account = conn.execute(sa.select(schema.table("Contact").c.AccountId).where(
                    schema.table("Contact").c.Id == who)).scalar()  # fmt: skip
            record["AccountId"] = account
        if name == "CampaignMember":
            person_id = record.get("ContactId") or record.get("LeadId")
            if person_id:
                person_obj = "Contact" if record.get("ContactId") else "Lead"
                pt = schema.table(person_obj)
                person = conn.execute(sa.select(pt).where(pt.c.Id == person_id)).mappings().first()
                if person is not None:
                    record.update(FirstName=person["FirstName"], LastName=person["LastName"], Email=person["Email"],
                                  LeadOrContactId=person_id, LeadOrContactOwnerId=person["OwnerId"])  # fmt: skip
                    if person_obj == "Lead":
                        record["CompanyOrAccount"] = person["Company"]
                    elif person["AccountId"]:
                        at = schema.table("Account")
                        record["CompanyOrAccount"] = conn.execute(
                            sa.select(at.c.Name).where(at.c.Id == person["AccountId"])
                        ).scalar()
            responded = record.get("Status") == "Responded"
            record["HasResponded"] = responded
            if responded and not record.get("FirstRespondedDate"):
                record["FirstRespondedDate"] = self.clock.now().date()

    def _defaults(self, obj: ObjectDef, record: dict[str, Any]) -> None:
        for f in obj.fields:
            if f.name in record:
                continue
            if f.type is FieldType.BOOLEAN:
                record[f.name] = bool(f.default_value) if f.default_value is not None else False
            elif f.default_value is not None and f.createable:
                record[f.name] = f.default_value
            elif f.type is FieldType.PICKLIST and f.defaulted_on_create and f.picklist_default():
                record[f.name] = f.picklist_default()

    def _prepare_create(
        self, conn: Connection, schema: CrmSchema, obj: ObjectDef, values: Mapping[str, Any], user: str
    ) -> tuple[dict[str, Any] | None, list[FieldError]]:
        cleaned, errors = v.clean(obj, values, creating=True)
        if obj.name == "CampaignMember" and not (cleaned.get("LeadId") or cleaned.get("ContactId")):
            errors.append(FieldError("REQUIRED_FIELD_MISSING", "Required fields are missing: [LeadId or ContactId]",
                                     ("LeadId", "ContactId")))  # fmt: skip
        if errors:
            record = dict(cleaned)
            self._defaults(obj, record)
            record.setdefault("OwnerId", user)
            missing = v.missing_required(
                obj, {**record, **{k: "x" for k in values if obj.field(k) is not None}}
            )
            return None, errors + ([missing] if missing is not None else [])
        errors += self._check_references(conn, schema, obj, cleaned)
        record = dict(cleaned)
        self._defaults(obj, record)
        if obj.field("OwnerId") is not None and not record.get("OwnerId"):
            record["OwnerId"] = user
        missing = v.missing_required(obj, record)
        if missing is not None:
            errors.append(missing)
        if errors:
            return None, errors
        self._derive(conn, schema, obj, record, set(cleaned), None)
        return record, []

    def _stamp_new(self, record: dict[str, Any], rid: str, user: str, now: dt.datetime) -> None:
        record.update(Id=rid, IsDeleted=False, CreatedDate=now, CreatedById=user, LastModifiedDate=now,
                      LastModifiedById=user, SystemModstamp=now)  # fmt: skip

    # -- create / update ---------------------------------------------------------------------

    def create(self, object_name: str, values: Mapping[str, Any]) -> str:
        [result] = self.create_many(object_name, [values], all_or_none=True)
        if not result.success:
            raise ValidationError(result.errors)
        assert result.id is not None
        return result.id

    def create_many(
        self,
        object_name: str,
        rows: Sequence[Mapping[str, Any]],
        *,
        all_or_none: bool = False,
        on_saved: Callable[[Connection, list[SaveResult]], None] | None = None,
    ) -> list[SaveResult]:
        """Insert ``rows`` (one result per row). ``on_saved`` runs inside the same transaction once
        the rows are written, so a caller can record the results atomically with them."""
        schema = self.schema()
        obj = schema.object(object_name)
        if not obj.createable:
            raise InputError(
                f"entity type cannot be inserted: {obj.name}", code="CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY"
            )
        with self._write() as conn:
            user = self._acting_user(conn, schema)
            prepared = [self._prepare_create(conn, schema, obj, row, user) for row in rows]
            if all_or_none and any(errs for _, errs in prepared):
                return _rolled_back([errs for _, errs in prepared])
            good = [rec for rec, errs in prepared if rec is not None]
            new_ids = iter(self._allocate(conn, obj.name, len(good))) if good else iter(())
            now = self.clock.now()
            results: list[SaveResult] = []
            inserts = []
            for rec, errs in prepared:
                if rec is None:
                    results.append(SaveResult(None, False, tuple(errs)))
                    continue
                rid = next(new_ids)
                self._stamp_new(rec, rid, user, now)
                inserts.append(rec)
                results.append(SaveResult(rid, True))
            if inserts:
                table = schema.table(obj.name)
                for rec in inserts:  # one statement per record: records differ in their columns
                    conn.execute(table.insert().values(rec))
            if on_saved is not None:
                on_saved(conn, results)
        return results

    def insert_bulk(
        self, object_name: str, rows: Sequence[Mapping[str, Any]], *, validate: bool = True
    ) -> list[str]:
        """Fast path for loaders: one id block and executemany; all rows or none."""
        schema = self.schema()
        obj = schema.object(object_name)
        with self._write() as conn:
            user = self._acting_user(conn, schema)
            records: list[dict[str, Any]] = []
            failures: list[FieldError] = []
            for i, row in enumerate(rows):
                if validate:
                    cleaned, errors = v.clean(obj, row, creating=True)
                else:
                    cleaned, errors = dict(row), []
                record = dict(cleaned)
                self._defaults(obj, record)
                if obj.field("OwnerId") is not None and not record.get("OwnerId"):
                    record["OwnerId"] = user
                if validate and (missing := v.missing_required(obj, record)) is not None:
                    errors.append(missing)
                if errors:
                    failures += [FieldError(e.code, f"row {i + 1}: {e.message}", e.fields) for e in errors]
                    continue
                self._derive(conn, schema, obj, record, set(cleaned), None)
                records.append(record)
            if failures:
                raise ValidationError(failures[:50])
            new_ids = self._allocate(conn, obj.name, len(records))
            now = self.clock.now()
            columns = [c.name for c in schema.table(obj.name).columns]
            for rid, rec in zip(new_ids, records, strict=True):
                self._stamp_new(rec, rid, user, now)
            full = [{c: rec.get(c) for c in columns} for rec in records]
            table = schema.table(obj.name)
            for start in range(0, len(full), 5000):
                conn.execute(table.insert(), full[start : start + 5000])
        analyze_if_grown(self.engine, table.name, len(full))
        return new_ids

    def update(self, object_name: str, record_id: str, values: Mapping[str, Any]) -> None:
        obj = self.schema().object(object_name)
        [result] = self.update_many(obj.name, [{**values, "Id": record_id}], all_or_none=True)
        if not result.success:
            first = result.errors[0]
            if first.code == "NOT_FOUND":
                raise NotFoundError(first.message)
            raise ValidationError(result.errors)

    def update_many(
        self, object_name: str, rows: Sequence[Mapping[str, Any]], *, all_or_none: bool = False,
        as_read: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> list[SaveResult]:  # fmt: skip
        """Update records, one result per row (in order).

        ``as_read``: whole records by canonical id as the caller read them a moment ago
        (``get_many``), so that a large update need not read them again. Such a record is written
        only if it is still as read (the write checks its ``SystemModstamp``); one changed since is
        read again and its row judged and written afresh, and so is one whose row failed validation
        against it. (The call's new stamps are then later than any in the table, so that a record
        it wrote is told from one that changed by its stamp alone.) Not used with ``all_or_none``."""
        with self._write() as conn:
            schema = dynamic.load_crm_schema(conn)  # in the write's own connection: one checkout a call
            obj = schema.object(object_name)
            required = v.required_fields(obj)  # worked out once a call, not once a record
            user = self._acting_user(conn, schema)
            now = self.clock.now()  # the call's time, as Salesforce gives one to the records of a call
            targets = [self._update_target(obj, row) for row in rows]
            wanted = [rid for rid, bad in targets if bad is None and rid is not None]
            once = len({rid for rid, _ in targets}) == len(targets)
            fields = _update_fields(obj, rows, required)
            table = schema.table(obj.name)
            # (not with all-or-none: a record found changed at the write would be judged again after
            # others were written)
            usable = once and not all_or_none
            known = _known_rows(as_read, wanted, fields & frozenset(table.c.keys())) if usable else {}
            current = self._rows(conn, schema, obj, [rid for rid in wanted if rid not in known], fields)
            current.update(known)
            planned = [
                self._prepare_update(conn, schema, obj, row, target, current, required, now)
                for target, row in zip(targets, rows, strict=True)
            ]
            again = {rid for rid, _, errs in planned if errs and rid in known}
            if again:  # judged against a record as read: judged again against the record as it is
                planned = self._prepare_again(
                    conn, schema, obj, rows, targets, planned, again, fields, required, now
                )
                known = {rid: row for rid, row in known.items() if rid not in again}
            if all_or_none and any(errs for _, _, errs in planned):
                return _rolled_back([errs for _, _, errs in planned], [rid for rid, _, _ in planned])
            floor = None
            if known:  # the latest stamp in the table: this call's stamps come after it
                floor = conn.execute(sa.select(sa.func.max(table.c.SystemModstamp))).scalar()
            results = []
            # one executemany per set of changed columns (and whether the write checks that the record
            # is as read); a record named twice is written in call order
            by_columns: dict[tuple[tuple[str, ...], bool], list[dict[str, Any]]] = {}
            for rid, changes, errs in planned:
                if changes is None:
                    results.append(SaveResult(rid, False, tuple(errs)))
                    continue
                assert rid is not None
                changes["LastModifiedDate"], changes["LastModifiedById"] = now, user
                key = tuple(sorted(changes)) if once else (rid, str(len(results)))
                changes["_rid"] = rid
                seen = known.get(rid)
                if seen is not None:
                    changes["_seen"] = seen["SystemModstamp"]
                    if floor is not None and changes["SystemModstamp"] <= floor:
                        changes["SystemModstamp"] = floor + dt.timedelta(microseconds=1)
                by_columns.setdefault((key, seen is not None), []).append(changes)
                results.append(SaveResult(rid, True))
            update = table.update().where(table.c.Id == sa.bindparam("_rid"))
            guarded = update.where(
                table.c.SystemModstamp == sa.bindparam("_seen", type_=table.c.SystemModstamp.type)
            )
            changed: set[str] = set()  # records of ``as_read`` changed since they were read: not written
            for (_, guard), params in by_columns.items():
                if once:  # in the table's order (ids run with it): fewer pages visited between rows
                    params.sort(key=itemgetter("_rid"))
                if guard:
                    if executemany(conn, guarded, params) != len(params):
                        changed |= self._not_written(conn, schema, obj, params)
                else:
                    executemany(conn, update, params)
            if changed:
                planned = self._prepare_again(
                    conn, schema, obj, rows, targets, planned, changed, fields, required, now
                )
                redo = []
                for i, (rid, changes, errs) in enumerate(planned):
                    if rid not in changed:
                        continue
                    if changes is None:
                        results[i] = SaveResult(rid, False, tuple(errs))
                        continue
                    changes["LastModifiedDate"], changes["LastModifiedById"] = now, user
                    redo.append({**changes, "_rid": rid})
                for params in _by_keys(redo):
                    executemany(conn, update, params)
        return results

    def _prepare_again(
        self, conn: Connection, schema: CrmSchema, obj: ObjectDef, rows: Sequence[Mapping[str, Any]],
        targets: Sequence[tuple[str | None, FieldError | None]],
        planned: list[tuple[str | None, dict[str, Any] | None, list[FieldError]]], record_ids: set[str],
        fields: frozenset[str], required: tuple[str, ...], now: dt.datetime,
    ) -> list[tuple[str | None, dict[str, Any] | None, list[FieldError]]]:  # fmt: skip
        """``planned`` with the rows of ``record_ids`` prepared again from the records as they are."""
        fresh = self._rows(conn, schema, obj, sorted(record_ids), fields)
        return [
            self._prepare_update(conn, schema, obj, row, target, fresh, required, now) if target[0] in record_ids else done
            for target, row, done in zip(targets, rows, planned, strict=True)
        ]  # fmt: skip

    def _not_written(
        self, conn: Connection, schema: CrmSchema, obj: ObjectDef, params: Sequence[Mapping[str, Any]]
    ) -> set[str]:
        """The records of a checked write (``params``) that it did not write: their stamp is not the
        one it set (which no other record holds: it is later than any in the table)."""
        stamps = {p["_rid"]: p["SystemModstamp"] for p in params}
        stored = self._rows(conn, schema, obj, list(stamps), frozenset({"Id", "SystemModstamp"}))
        return {rid for rid, stamp in stamps.items() if stored.get(rid, {}).get("SystemModstamp") != stamp}

    def _rows(self, conn: Connection, schema: CrmSchema, obj: ObjectDef, record_ids: Sequence[str],
              fields: frozenset[str]) -> dict[str, dict[str, Any]]:  # fmt: skip
        """The ``fields`` of the records ``record_ids`` (canonical ids) as they are, locked for update
        (PostgreSQL)."""
        if not record_ids:
            return {}
        table = schema.table(obj.name)
        columns = [c for c in table.columns if c.name in fields]
        q = sa.select(*columns).where(table.c.Id.in_(sa.bindparam("ids", expanding=True)))
        if conn.dialect.name == "postgresql":
            q = q.with_for_update()
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(record_ids), 500):
            out.update(_by_id(conn.execute(q, {"ids": record_ids[start : start + 500]})))
        return out

    def _update_target(self, obj: ObjectDef, row: Mapping[str, Any]) -> tuple[str | None, FieldError | None]:
        """The canonical id an update row names, or (what it gave, why it names no record)."""
        raw_id = row.get("Id")
        if not raw_id:
            return None, FieldError("MISSING_ARGUMENT", "Id not specified in an update call", ("Id",))
        try:
            return self._norm_id(obj, str(raw_id)), None
        except (InputError, NotFoundError) as exc:
            return str(raw_id), FieldError(exc.code, exc.message, ("Id",))

    def _prepare_update(
        self, conn: Connection, schema: CrmSchema, obj: ObjectDef, row: Mapping[str, Any],
        target: tuple[str | None, FieldError | None], rows: Mapping[str, dict[str, Any]], required: tuple[str, ...],
        now: dt.datetime | None = None,
    ) -> tuple[str | None, dict[str, Any] | None, list[FieldError]]:  # fmt: skip
        """(id, the changed columns, errors) of an update ``row``: ``target`` is ``_update_target(obj,
        row)``, ``rows`` the records as they are (``_rows``; not changed here), ``required``
        ``v.required_fields(obj)``."""
        rid, bad = target
        if bad is not None:
            return rid, None, [bad]
        assert rid is not None
        current = rows.get(rid)  # the fields ``_update_fields`` names: all this reads or compares
        if current is None:
            return rid, None, [FieldError("NOT_FOUND", "The requested resource does not exist")]
        if current["IsDeleted"]:
            return rid, None, [FieldError("ENTITY_IS_DELETED", "entity is deleted")]
        if obj.name == "Lead" and current.get("IsConverted"):
            return rid, None, [FieldError("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead")]
        cleaned, errors = v.clean(obj, row, creating=False)  # an update's clean passes over the Id
        if errors:
            return rid, None, errors
        errors = self._check_references(conn, schema, obj, cleaned)
        record = {**current, **cleaned}
        missing = v.missing_required(obj, record, required)
        if missing is not None:
            errors.append(missing)
        if errors:
            return rid, None, errors
        self._derive(conn, schema, obj, record, set(cleaned), current)
        changes = {k: val for k, val in record.items() if current.get(k) != val}
        changes["SystemModstamp"] = self._modstamp(current["SystemModstamp"], now)
        return rid, changes, []

    # -- read --------------------------------------------------------------------------------

    def get(self, object_name: str, record_id: str, fields: Sequence[str] | None = None, *,
            include_deleted: bool = False) -> dict[str, Any]:  # fmt: skip
        schema = self.schema()
        obj = schema.object(object_name)
        rid = self._norm_id(obj, record_id)
        with self.engine.connect() as conn:
            row = self._row(conn, schema, obj, rid)
        if row is None or (row["IsDeleted"] and not include_deleted):
            raise NotFoundError("The requested resource does not exist", code="NOT_FOUND")
        return self._project(obj, row, fields)

    def get_many(self, object_name: str, record_ids: Sequence[str], fields: Sequence[str] | None = None, *,
                 include_deleted: bool = False) -> list[dict[str, Any]]:  # fmt: skip
        out: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            schema = dynamic.load_crm_schema(conn)
            obj = schema.object(object_name)
            wanted = []
            for rid in record_ids:
                try:
                    wanted.append(self._norm_id(obj, rid))
                except (InputError, NotFoundError):
                    continue
            table = schema.table(obj.name)
            q = sa.select(table).where(table.c.Id.in_(sa.bindparam("ids", expanding=True)))
            if not include_deleted:
                q = q.where(table.c.IsDeleted.is_(False))
            for start in range(0, len(wanted), 1000):
                rows = _by_id(conn.execute(q, {"ids": wanted[start : start + 1000]}))
                out.update(
                    rows if not fields else {rid: self._project(obj, r, fields) for rid, r in rows.items()}
                )
        return [out[rid] for rid in wanted if rid in out]

    def _project(
        self, obj: ObjectDef, row: Mapping[str, Any], fields: Sequence[str] | None
    ) -> dict[str, Any]:
        if not fields:
            return dict(row)
        out = {"Id": row["Id"]}
        for name in fields:
            f = obj.field(name.strip())
            if f is None:
                raise InputError(
                    f"No such column '{name}' on sobject of type {obj.name}", code="INVALID_FIELD"
                )
            out[f.name] = row.get(f.name)
        return out

    def query(self, soql: str, *, include_deleted: bool = False) -> dict[str, Any]:
        from renkei.crm.soql_sql import run_query

        with self.engine.connect() as conn:
            schema = dynamic.load_crm_schema(conn)
            return run_query(conn, schema, soql, include_deleted=include_deleted, now=self.clock.now())

    # -- delete / undelete / purge -----------------------------------------------------------

    def delete(self, object_name: str, record_id: str) -> None:
        [result] = self.delete_many(object_name, [record_id], all_or_none=True)
        if not result.success:
            err = result.errors[0]
            if err.code == "NOT_FOUND":
                raise NotFoundError(err.message)
            raise InputError(err.message, code=err.code)

    def delete_many(
        self, object_name: str, record_ids: Sequence[str], *, all_or_none: bool = False
    ) -> list[SaveResult]:
        schema = self.schema()
        obj = schema.object(object_name)
        if not obj.deletable:
            raise InputError(f"entity type cannot be deleted: {obj.name}", code="ENTITY_IS_NOT_DELETABLE")
        with self._write() as conn:
            user = self._acting_user(conn, schema)
            checks: list[tuple[str, list[FieldError]]] = []
            for raw in record_ids:
                try:
                    rid = self._norm_id(obj, raw)
                except (InputError, NotFoundError) as exc:
                    checks.append((raw, [FieldError(exc.code, exc.message)]))
                    continue
                row = self._row(conn, schema, obj, rid, for_update=True)
                if row is None:
                    checks.append((rid, [FieldError("NOT_FOUND", "The requested resource does not exist")]))
                elif row["IsDeleted"]:
                    checks.append((rid, [FieldError("ENTITY_IS_DELETED", "entity is deleted")]))
                else:
                    checks.append((rid, []))
            if all_or_none and any(errs for _, errs in checks):
                return _rolled_back([errs for _, errs in checks], [rid for rid, _ in checks])
            results = []
            for rid, errs in checks:
                if errs:
                    results.append(SaveResult(rid, False, tuple(errs)))
                    continue
                self._set_deleted(conn, schema, obj.name, [rid], True, user)
                results.append(SaveResult(rid, True))
        return results

    def _delete_tree(self, conn: Connection, schema: CrmSchema, object_name: str, rids: list[str], user: str,
                     *, root: str | None = None, stamp: dt.datetime | None = None) -> None:  # fmt: skip
        """Send records, and the children Salesforce deletes with them, to the recycle bin.

        ``crm_recycle_bin`` remembers which deletion sent each record there, so an undelete restores
        exactly the records that went in with it (not children deleted on their own earlier)."""
        if not rids:
            return
        table = schema.table(object_name)
        previous = conn.execute(
            sa.select(sa.func.max(table.c.SystemModstamp)).where(table.c.Id.in_(rids))
        ).scalar()
        stamp_at = stamp or self._modstamp(previous)
        conn.execute(table.update().where(table.c.Id.in_(rids), table.c.IsDeleted.is_(False))
                     .values(IsDeleted=True, SystemModstamp=stamp_at, LastModifiedById=user))  # fmt: skip
        conn.execute(t_bin.delete().where(t_bin.c.record_id.in_(rids)))
        conn.execute(t_bin.insert(), [{"record_id": rid, "object_name": object_name, "root_id": root or rid,
                                       "deleted_at": stamp_at, "deleted_by": user} for rid in rids])  # fmt: skip
        for child, field in _CASCADE.get(object_name, ()):
            ct = schema.table(child)
            for rid in rids:
                children = [r.Id for r in conn.execute(sa.select(ct.c.Id).where(ct.c[field] == rid,
                                                                                 ct.c.IsDeleted.is_(False)))]  # fmt: skip
                self._delete_tree(conn, schema, child, children, user, root=root or rid, stamp=stamp_at)

    def _set_deleted(self, conn: Connection, schema: CrmSchema, object_name: str, rids: list[str], deleted: bool,
                     user: str) -> None:  # fmt: skip
        if deleted:
            self._delete_tree(conn, schema, object_name, rids, user)
            return
        for rid in rids:
            group = conn.execute(sa.select(t_bin.c.record_id, t_bin.c.object_name).where(
                sa.or_(t_bin.c.root_id == rid, t_bin.c.record_id == rid))).all()  # fmt: skip
            members: dict[str, list[str]] = {object_name: [rid]}
            for r in group:
                members.setdefault(r.object_name, [])
                if r.record_id not in members[r.object_name]:
                    members[r.object_name].append(r.record_id)
            for name, record_ids in members.items():
                table = schema.table(name)
                previous = conn.execute(sa.select(sa.func.max(table.c.SystemModstamp)).where(
                    table.c.Id.in_(record_ids))).scalar()  # fmt: skip
                conn.execute(table.update().where(table.c.Id.in_(record_ids), table.c.IsDeleted.is_(True)).values(
                    IsDeleted=False, SystemModstamp=self._modstamp(previous), LastModifiedDate=self.clock.now(),
                    LastModifiedById=user))  # fmt: skip
                conn.execute(t_bin.delete().where(t_bin.c.record_id.in_(record_ids)))

    def undelete(self, object_name: str, record_id: str) -> None:
        schema = self.schema()
        obj = schema.object(object_name)
        rid = self._norm_id(obj, record_id)
        with self._write() as conn:
            user = self._acting_user(conn, schema)
            row = self._row(conn, schema, obj, rid, for_update=True)
            if row is None:
                raise NotFoundError("The requested resource does not exist", code="NOT_FOUND")
            if not row["IsDeleted"]:
                raise InputError(
                    "undelete failed: the record is not in the recycle bin", code="UNDELETE_FAILED"
                )
            self._set_deleted(conn, schema, obj.name, [rid], False, user)

    def purge_recycle_bin(self, older_than_days: int = 15) -> int:
        """Hard-delete records that have been in the recycle bin longer than ``older_than_days``."""
        cutoff = self.clock.now() - dt.timedelta(days=older_than_days)
        schema = self.schema()
        total = 0
        with self._write() as conn:
            for name in schema.objects:
                table = schema.table(name)
                gone = [r.Id for r in conn.execute(sa.select(table.c.Id).where(
                    table.c.IsDeleted.is_(True), table.c.SystemModstamp < cutoff))]  # fmt: skip
                for start in range(0, len(gone), 1000):
                    chunk = gone[start : start + 1000]
                    conn.execute(table.delete().where(table.c.Id.in_(chunk)))
                    conn.execute(t_bin.delete().where(t_bin.c.record_id.in_(chunk)))
                total += len(gone)
        return total

    # -- merge and lead conversion -----------------------------------------------------------

    def merge(self, object_name: str, master_id: str, duplicate_ids: Sequence[str]) -> dict[str, Any]:
        schema = self.schema()
        obj = schema.object(object_name)
        if obj.name not in ("Lead", "Contact", "Account"):
            raise InputError(f"merge is not supported for {obj.name}", code="INVALID_TYPE")
        if not 1 <= len(duplicate_ids) <= 2:
            raise InputError("a merge takes a master and one or two duplicates (three records at most)",
                             code="INVALID_ARGUMENT")  # fmt: skip
        master = self._norm_id(obj, master_id)
        dups = [self._norm_id(obj, d) for d in duplicate_ids]
        if master in dups or len(set(dups)) != len(dups):
            raise InputError("a record cannot be merged with itself", code="INVALID_ARGUMENT")
        updated: list[str] = []
        with self._write() as conn:
            user = self._acting_user(conn, schema)
            master_row = self._live_row(conn, schema, obj, master)
            for d in dups:
                row = self._live_row(conn, schema, obj, d)
                if obj.name == "Lead" and (row.get("IsConverted") or master_row.get("IsConverted")):
                    raise InputError("cannot merge a converted lead", code="CANNOT_UPDATE_CONVERTED_LEAD")
            for child, field in _CHILD_REFS.get(obj.name, ()):
                ct = schema.table(child)
                moved = {field: master, "LastModifiedById": user}
                if child == "CampaignMember":  # the copied person id follows the person
                    moved["LeadOrContactId"] = master
                updated += self._touch(conn, ct, ct.c[field].in_(dups), moved)
            table = schema.table(obj.name)
            conn.execute(table.update().where(table.c.Id.in_(dups)).values(MasterRecordId=master))
            self._delete_tree(conn, schema, obj.name, dups, user)
            conn.execute(table.update().where(table.c.Id == master).values(
                SystemModstamp=self._modstamp(master_row["SystemModstamp"]), LastModifiedDate=self.clock.now(),
                LastModifiedById=user))  # fmt: skip
        return {
            "id": master,
            "success": True,
            "mergedRecordIds": dups,
            "updatedRelatedIds": updated,
            "errors": [],
        }

    def convert_lead(
        self, lead_id: str, *, account_id: str | None = None, contact_id: str | None = None,
        opportunity_name: str | None = None, do_not_create_opportunity: bool = False,
        converted_status: str | None = None, owner_id: str | None = None, overwrite_lead_source: bool = False,
    ) -> ConvertResult:  # fmt: skip
        schema = self.schema()
        lead_obj = schema.object("Lead")
        rid = self._norm_id(lead_obj, lead_id)
        status = converted_status or CONVERTED_STATUS
        if status not in s.CONVERTED_LEAD_STATUSES:
            raise InputError(f"invalid converted status: {status}", code="INVALID_STATUS")
        if contact_id and not account_id:
            raise InputError(
                "an existing contact requires its account (accountId)", code="REQUIRED_FIELD_MISSING"
            )
        with self._write() as conn:
            user = self._acting_user(conn, schema)
            lead = self._live_row(conn, schema, lead_obj, rid)
            if lead["IsConverted"]:
                raise InputError("this lead was already converted", code="CANNOT_UPDATE_CONVERTED_LEAD")
            owner = owner_id or lead["OwnerId"]
            now = self.clock.now()

            account_values = {"Name": lead["Company"], "Phone": lead["Phone"], "Website": lead["Website"],
                              "Industry": lead["Industry"], "AnnualRevenue": lead["AnnualRevenue"],
                              "NumberOfEmployees": lead["NumberOfEmployees"], "BillingStreet": lead["Street"],
                              "BillingCity": lead["City"], "BillingState": lead["State"],
                              "BillingPostalCode": lead["PostalCode"], "BillingCountry": lead["Country"],
                              "AccountSource": lead["LeadSource"], "OwnerId": owner}  # fmt: skip
            acc_id = self._convert_target(conn, schema, "Account", account_id, account_values, user, now,
                                          overwrite_lead_source=False)  # fmt: skip
            contact_values = {"FirstName": lead["FirstName"], "LastName": lead["LastName"],
                              "Salutation": lead["Salutation"], "Email": lead["Email"], "Phone": lead["Phone"],
                              "MobilePhone": lead["MobilePhone"], "Fax": lead["Fax"], "Title": lead["Title"],
                              "MailingStreet": lead["Street"], "MailingCity": lead["City"],
                              "MailingState": lead["State"], "MailingPostalCode": lead["PostalCode"],
                              "MailingCountry": lead["Country"], "LeadSource": lead["LeadSource"],
                              "Description": lead["Description"], "HasOptedOutOfEmail": lead["HasOptedOutOfEmail"],
                              "DoNotCall": lead["DoNotCall"], "AccountId": acc_id, "OwnerId": owner}  # fmt: skip
            # custom fields with the same API name on Lead and Contact travel with the conversion
            contact_obj = schema.object("Contact")
            for f in lead_obj.custom_fields:
                if contact_obj.field(f.name) is not None:
                    contact_values[f.name] = lead[f.name]
            con_id = self._convert_target(conn, schema, "Contact", contact_id, contact_values, user, now,
                                          overwrite_lead_source=overwrite_lead_source)  # fmt: skip
            opp_id = None
            if not do_not_create_opportunity and opportunity_name is not None:
                opp_id = self._insert(conn, schema, "Opportunity", {
                    "Name": opportunity_name, "AccountId": acc_id, "StageName": "Prospecting",
                    "CloseDate": (now + dt.timedelta(days=30)).date(), "LeadSource": lead["LeadSource"],
                    "OwnerId": owner}, user, now)  # fmt: skip
                self._insert(
                    conn,
                    schema,
                    "OpportunityContactRole",
                    {"OpportunityId": opp_id, "ContactId": con_id, "IsPrimary": True},
                    user,
                    now,
                )
            # campaign memberships and tasks follow the person to the contact
            # (a member keeps its LeadId and gains the ContactId, as in Salesforce)
            members, tasks = schema.table("CampaignMember"), schema.table("Task")
            contacts = schema.table("Contact")
            moved = {"LastModifiedDate": now, "LastModifiedById": user}
            self._touch(conn, members, members.c.LeadId == rid, {
                "ContactId": con_id, "LeadOrContactId": con_id, **moved,
                "LeadOrContactOwnerId": sa.select(contacts.c.OwnerId).where(contacts.c.Id == con_id).scalar_subquery(),
            })  # fmt: skip
            self._touch(conn, tasks, tasks.c.WhoId == rid,
                        {"WhoId": con_id, "AccountId": sa.func.coalesce(tasks.c.AccountId, acc_id), **moved})  # fmt: skip
            lt = schema.table("Lead")
            conn.execute(lt.update().where(lt.c.Id == rid).values(
                IsConverted=True, Status=status, ConvertedAccountId=acc_id, ConvertedContactId=con_id,
                ConvertedOpportunityId=opp_id, ConvertedDate=now.date(), LastModifiedDate=now, LastModifiedById=user,
                SystemModstamp=self._modstamp(lead["SystemModstamp"])))  # fmt: skip
        return ConvertResult(rid, acc_id, con_id, opp_id)

    def _insert(self, conn: Connection, schema: CrmSchema, object_name: str, values: Mapping[str, Any], user: str,
                now: dt.datetime) -> str:  # fmt: skip
        obj = schema.object(object_name)
        record, errors = self._prepare_create(
            conn, schema, obj, {k: val for k, val in values.items() if val is not None}, user
        )
        if record is None:
            raise ValidationError(errors)
        [rid] = self._allocate(conn, obj.name, 1)
        self._stamp_new(record, rid, user, now)
        conn.execute(schema.table(obj.name).insert().values(record))
        return rid

    def _convert_target(self, conn: Connection, schema: CrmSchema, object_name: str, existing: str | None,
                        values: Mapping[str, Any], user: str, now: dt.datetime, *,
                        overwrite_lead_source: bool) -> str:  # fmt: skip
        """A new record, or an existing one whose empty fields are filled from the lead."""
        if existing is None:
            return self._insert(conn, schema, object_name, values, user, now)
        obj = schema.object(object_name)
        rid = self._norm_id(obj, existing)
        row = self._live_row(conn, schema, obj, rid)
        fill = {k: val for k, val in values.items() if val is not None and row.get(k) in (None, "")
                and k not in ("OwnerId", "AccountId") and (k != "LeadSource" or overwrite_lead_source)}  # fmt: skip
        if overwrite_lead_source and values.get("LeadSource"):
            fill["LeadSource"] = values["LeadSource"]
        if fill:
            fill.update(
                SystemModstamp=self._modstamp(row["SystemModstamp"]),
                LastModifiedDate=now,
                LastModifiedById=user,
            )
            table = schema.table(obj.name)
            conn.execute(table.update().where(table.c.Id == rid).values(fill))
        return rid

    # -- change feed -------------------------------------------------------------------------

    def changes_since(
        self, object_name: str, watermark: Watermark | None, *, limit: int = 2000
    ) -> ChangePage:
        with self.engine.connect() as conn:
            table = dynamic.load_crm_schema(conn).table(object_name)
            q = sa.select(table).order_by(table.c.SystemModstamp, table.c.Id).limit(limit + 1)
            if watermark is not None:
                q = q.where(sa.tuple_(table.c.SystemModstamp, table.c.Id) > sa.tuple_(
                    sa.literal(watermark.modstamp, type_=table.c.SystemModstamp.type), sa.literal(watermark.id)))  # fmt: skip
            rows = row_dicts(conn.execute(q))
        done = len(rows) <= limit
        rows = rows[:limit]
        mark = Watermark(rows[-1]["SystemModstamp"], rows[-1]["Id"]) if rows else watermark
        return ChangePage(tuple(rows), mark, done)

    def _window(
        self, start: dt.datetime, end: dt.datetime, reach: dt.timedelta
    ) -> tuple[dt.datetime, dt.datetime]:
        now = self.clock.now()
        if start.tzinfo is None or end.tzinfo is None:
            raise InputError("start and end must carry a time zone", code="INVALID_REPLICATION_DATE")
        if end <= start:
            raise InputError("end date must be after start date", code="INVALID_REPLICATION_DATE")
        if start < now - reach:
            raise InputError(
                f"startDate cannot be more than {reach.days} days ago", code="INVALID_REPLICATION_DATE"
            )
        # seconds are ignored, as Salesforce does
        return start.replace(second=0, microsecond=0), min(end, now).replace(second=0, microsecond=0)

    def updated(self, object_name: str, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
        lo, hi = self._window(start, end, UPDATED_WINDOW)
        table = self.schema().table(object_name)
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(table.c.Id).where(
                table.c.SystemModstamp >= lo, table.c.SystemModstamp < hi, table.c.IsDeleted.is_(False),
            ).order_by(table.c.SystemModstamp, table.c.Id).limit(600_001)).all()  # fmt: skip
        if len(rows) > 600_000:
            raise InputError("more than 600,000 ids: narrow the window", code="EXCEEDED_ID_LIMIT")
        return {"ids": [r.Id for r in rows], "latestDateCovered": hi}

    def deleted(self, object_name: str, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
        lo, hi = self._window(start, end, DELETED_WINDOW)
        table = self.schema().table(object_name)
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(table.c.Id, table.c.SystemModstamp).where(
                table.c.SystemModstamp >= lo, table.c.SystemModstamp < hi, table.c.IsDeleted.is_(True),
            ).order_by(table.c.SystemModstamp, table.c.Id)).all()  # fmt: skip
        return {
            "deletedRecords": [{"id": r.Id, "deletedDate": r.SystemModstamp} for r in rows],
            "earliestDateAvailable": self.clock.now() - DELETED_WINDOW,
            "latestDateCovered": hi,
        }

    # -- custom fields -----------------------------------------------------------------------

    def add_field(
        self, object_name: str, api_name: str, type: str, *, length: int | None = None,
        precision: int | None = None, scale: int | None = None, values: Sequence[str] = (),
        restricted: bool = False, label: str | None = None, actor: str | None = None,
    ) -> FieldDef:  # fmt: skip
        schema = self.schema()
        obj = schema.object(object_name)
        field = make_custom_field(api_name, type, length=length, precision=precision, scale=scale, values=values,
                                  restricted=restricted, label=label)  # fmt: skip
        if obj.field(field.name) is not None:
            raise InputError(
                f"a field named {field.name} already exists on {obj.name}", code="DUPLICATE_DEVELOPER_NAME"
            )
        with self.engine.begin() as conn:
            conn.execute(t.crm_custom_field.insert().values(
                object_name=obj.name, api_name=field.name, definition=dynamic.field_to_json(field),
                created_at=self.clock.now(), created_by=actor))  # fmt: skip
            dynamic.add_column(conn, s.table_name(obj.name), field)
            dynamic.invalidate(conn)
        return field


def make_custom_field(
    api_name: str, type: str, *, length: int | None = None, precision: int | None = None, scale: int | None = None,
    values: Iterable[str] = (), restricted: bool = False, label: str | None = None,
) -> FieldDef:  # fmt: skip
    """A custom field definition checked the way Salesforce's setup checks it."""
    if not CUSTOM_NAME.match(api_name) or len(api_name) > 48:
        raise InputError(f"invalid custom field API name {api_name!r}: letters, digits and single underscores, "
                         "ending in __c (e.g. Billing_Contact__c)", code="INVALID_FIELD")  # fmt: skip
    kind = type.strip().lower()
    if kind not in CUSTOM_FIELD_TYPES:
        raise InputError(
            f"unknown field type {type!r} (use {', '.join(CUSTOM_FIELD_TYPES)})", code="INVALID_TYPE"
        )
    ftype = CUSTOM_FIELD_TYPES[kind]
    kw: dict[str, Any] = {"custom": True, "label": label or ""}
    if ftype in (FieldType.STRING,):
        kw["length"] = length or 255
        if not 1 <= kw["length"] <= 255:
            raise InputError("text fields are 1 to 255 characters long", code="INVALID_FIELD")
    elif ftype is FieldType.TEXTAREA:
        kw["length"] = length or (32768 if kind == "longtextarea" else 255)
        if not 1 <= kw["length"] <= 131072:
            raise InputError("text areas are 1 to 131,072 characters long", code="INVALID_FIELD")
    elif ftype is FieldType.EMAIL:
        kw["length"] = 80
    elif ftype is FieldType.PHONE:
        kw["length"] = 40
    elif ftype is FieldType.URL:
        kw["length"] = 255
    elif ftype in (FieldType.DOUBLE, FieldType.CURRENCY, FieldType.PERCENT):
        kw["precision"] = precision or 18
        kw["scale"] = scale if scale is not None else (2 if ftype is FieldType.CURRENCY else 0)
        if not (1 <= kw["precision"] <= 18 and 0 <= kw["scale"] <= kw["precision"]):
            raise InputError(
                "number fields have precision 1–18 and 0 ≤ scale ≤ precision", code="INVALID_FIELD"
            )
    elif ftype is FieldType.BOOLEAN:
        kw.update(nillable=False, defaulted_on_create=True, default_value=False)
    elif ftype in (FieldType.PICKLIST, FieldType.MULTIPICKLIST):
        vals = [x.strip() for x in values if x.strip()]
        if not vals:
            raise InputError("a picklist needs values (--values a,b,c)", code="INVALID_FIELD")
        kw["picklist_values"] = tuple(PicklistValue(x) for x in dict.fromkeys(vals))
        kw["restricted_picklist"] = restricted
        kw["length"] = 255 if ftype is FieldType.PICKLIST else 4099
    return FieldDef(api_name, ftype, **kw)


def _update_fields(
    obj: ObjectDef, rows: Sequence[Mapping[str, Any]], required: tuple[str, ...]
) -> frozenset[str]:
    """The fields an update of ``rows`` reads of the records as they are: the record's state, the
    required fields (checked on the merged record), those the rows name and those ``_derive`` reads or
    writes (a merged record holds no other field, so its changes are found among these)."""
    named = {
        f.name for row in rows for key in row if isinstance(key, str) and (f := obj.field(key)) is not None
    }
    return frozenset({"Id", "IsDeleted", "SystemModstamp", "IsConverted", *required, *named,
                      *_DERIVED.get(obj.name, ())})  # fmt: skip


def _known_rows(
    as_read: Mapping[str, Mapping[str, Any]] | None, record_ids: Sequence[str], fields: frozenset[str]
) -> dict[str, dict[str, Any]]:
    """The ``fields`` (the table's columns among those an update reads) of the records ``as_read``
    holds whole, with their ``SystemModstamp``."""
    if not as_read:
        return {}
    out = {}
    for rid in record_ids:
        row = as_read.get(rid)
        if row is not None and row.get("SystemModstamp") is not None and row.keys() >= fields:
            out[rid] = {f: row[f] for f in fields}
    return out


def _by_keys(rows: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """``rows`` grouped by their set of keys (one executemany each)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    return list(groups.values())


def _by_id(result: sa.CursorResult[Any]) -> dict[str, dict[str, Any]]:
    """Whole rows as dicts (``row_dicts``) by Id."""
    return {row["Id"]: row for row in row_dicts(result)}


def _rolled_back(
    errors: Sequence[Sequence[FieldError]], record_ids: Sequence[str | None] | None = None
) -> list[SaveResult]:
    out = []
    for i, errs in enumerate(errors):
        rid = record_ids[i] if record_ids else None
        if errs:
            out.append(SaveResult(rid, False, tuple(errs)))
        else:
            out.append(SaveResult(rid, False, (FieldError(
                "ALL_OR_NONE_OPERATION_ROLLED_BACK", "Record rolled back because not all records were valid and the "
                "request was using AllOrNone header"),)))  # fmt: skip
    return out


__all__ = [
    "ChangePage",
    "ConflictError",
    "ConvertResult",
    "CrmService",
    "SaveResult",
    "Watermark",
    "make_custom_field",
    "to_api",
]
