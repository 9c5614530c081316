"""A small stand-in for ``renkei.crm.service.CrmService`` (the contract in notes/CONTRACTS.md),
used only while the real service has not landed. It keeps records in the real CRM tables and
queries them with the real SOQL engine (``renkei.crm.soql_sql.run_query``)."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from renkei.clock import Clock, SystemClock, TickingClock, sf_datetime
from renkei.crm.schema import FieldType, ObjectDef
from renkei.crm.soql_sql import run_query
from renkei.errors import FieldError, NotFoundError, ValidationError
from renkei.ids import make_id, normalize
from renkei.store.dynamic import CrmSchema, load_crm_schema

_counter = itertools.count(1)
SYSTEM_USER = make_id("005", 1)


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


def to_api(record: Mapping[str, Any], obj: ObjectDef) -> dict[str, Any]:
    out: dict[str, Any] = {
        "attributes": {"type": obj.name, "url": f"/services/data/v60.0/sobjects/{obj.name}/{record['Id']}"}
    }
    for k, v in record.items():
        out[k] = (
            sf_datetime(v) if isinstance(v, dt.datetime) else v.isoformat() if isinstance(v, dt.date) else v
        )
    return out


class FakeCrmService:
    def __init__(self, engine: Engine, *, clock: Clock | None = None, user_id: str | None = None) -> None:
        self.engine = engine
        self.clock = TickingClock(clock or SystemClock())
        self.user_id = user_id or SYSTEM_USER

    def schema(self) -> CrmSchema:
        with self.engine.connect() as conn:
            return load_crm_schema(conn)

    def describe(self, object_name: str) -> dict[str, Any]:
        return self.schema().object(object_name).to_describe()

    def describe_global(self) -> dict[str, Any]:
        objs = self.schema().objects.values()
        return {"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": [
            {k: v for k, v in o.to_describe().items() if k not in ("fields", "childRelationships")} for o in objs
        ]}  # fmt: skip

    def _values(self, obj: ObjectDef, values: Mapping[str, Any], *, create: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        errors = []
        for key, value in values.items():
            f = obj.field(key)
            if f is None:
                raise ValidationError(
                    [
                        FieldError(
                            "INVALID_FIELD", f"No such column '{key}' on sobject of type {obj.name}", (key,)
                        )
                    ]
                )  # noqa: E501
            if not (f.createable if create else f.updateable):
                errors.append(
                    FieldError(
                        "INVALID_FIELD_FOR_INSERT_UPDATE",
                        f"Unable to create/update fields: {f.name}",
                        (f.name,),
                    )
                )  # noqa: E501
            out[f.name] = value
        if create:
            for f in obj.fields:
                if f.name not in out and f.default_value is not None:
                    out[f.name] = f.default_value
            missing = [f.name for f in obj.fields if f.required_on_create and out.get(f.name) in (None, "")]
            if missing:
                errors.append(
                    FieldError(
                        "REQUIRED_FIELD_MISSING",
                        f"Required fields are missing: [{', '.join(missing)}]",
                        tuple(missing),
                    )
                )  # noqa: E501
        if errors:
            raise ValidationError(errors)
        return out

    def create(self, object_name: str, values: Mapping[str, Any]) -> str:
        schema = self.schema()
        obj = schema.object(object_name)
        row = self._values(obj, values, create=True)
        now = self.clock.now()
        new_id = make_id(obj.key_prefix, 10_000 + next(_counter))
        row |= {"Id": new_id, "IsDeleted": False, "CreatedDate": now, "LastModifiedDate": now, "SystemModstamp": now,
                "CreatedById": self.user_id, "LastModifiedById": self.user_id}  # fmt: skip
        if obj.field("OwnerId") is not None:
            row.setdefault("OwnerId", self.user_id)
        for f in obj.fields:
            if f.type is FieldType.BOOLEAN:
                row.setdefault(f.name, False)
        with self.engine.begin() as conn:
            conn.execute(schema.table(obj.name).insert().values(row))
        return new_id

    def _row(self, object_name: str, record_id: str, *, include_deleted: bool = False) -> dict[str, Any]:
        schema = self.schema()
        table = schema.table(object_name)
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(table).where(table.c.Id == normalize(record_id))).mappings().first()
        if row is None or (row["IsDeleted"] and not include_deleted):
            raise NotFoundError("The requested resource does not exist")
        return dict(row)

    def get(
        self,
        object_name: str,
        record_id: str,
        fields: Sequence[str] | None = None,
        *,
        include_deleted: bool = False,
    ) -> dict[str, Any]:  # noqa: E501
        row = self._row(object_name, record_id, include_deleted=include_deleted)
        return {k: v for k, v in row.items() if fields is None or k in fields or k == "Id"}

    def update(self, object_name: str, record_id: str, values: Mapping[str, Any]) -> None:
        schema = self.schema()
        obj = schema.object(object_name)
        self._row(object_name, record_id)
        row = self._values(obj, values, create=False)
        now = self.clock.now()
        row |= {"LastModifiedDate": now, "SystemModstamp": now, "LastModifiedById": self.user_id}
        table = schema.table(obj.name)
        with self.engine.begin() as conn:
            conn.execute(table.update().where(table.c.Id == normalize(record_id)).values(row))

    def delete(self, object_name: str, record_id: str) -> None:
        schema = self.schema()
        self._row(object_name, record_id)
        table = schema.table(object_name)
        now = self.clock.now()
        with self.engine.begin() as conn:
            conn.execute(
                table.update()
                .where(table.c.Id == normalize(record_id))
                .values(IsDeleted=True, SystemModstamp=now)
            )

    def _many(self, fn: Any, items: Sequence[Any], all_or_none: bool) -> list[SaveResult]:
        results = []
        for item in items:
            try:
                results.append(SaveResult(fn(item), True))
            except (ValidationError, NotFoundError) as exc:
                results.append(SaveResult(None, False, exc.errors))
        if all_or_none and not all(r.success for r in results):
            raise AssertionError("the fake does not roll back")
        return results

    def create_many(
        self, object_name: str, rows: Sequence[Mapping[str, Any]], *, all_or_none: bool = False
    ) -> list[SaveResult]:  # noqa: E501
        return self._many(lambda r: self.create(object_name, r), rows, all_or_none)

    def update_many(
        self, object_name: str, rows: Sequence[Mapping[str, Any]], *, all_or_none: bool = False
    ) -> list[SaveResult]:  # noqa: E501
        def one(r: Mapping[str, Any]) -> str:
            self.update(object_name, r["Id"], {k: v for k, v in r.items() if k != "Id"})
            return str(r["Id"])

        return self._many(one, rows, all_or_none)

    def delete_many(
        self, object_name: str, ids: Sequence[str], *, all_or_none: bool = False
    ) -> list[SaveResult]:
        def one(i: str) -> str:
            self.delete(object_name, i)
            return i

        return self._many(one, ids, all_or_none)

    def query(self, soql: str, *, include_deleted: bool = False) -> dict[str, Any]:
        with self.engine.connect() as conn:
            return run_query(
                conn, load_crm_schema(conn), soql, include_deleted=include_deleted, now=self.clock.now()
            )

    def updated(self, object_name: str, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
        table = self.schema().table(object_name)
        with self.engine.connect() as conn:
            ids = (
                conn.execute(
                    sa.select(table.c.Id)
                    .where(
                        table.c.SystemModstamp >= start,
                        table.c.SystemModstamp < end,
                        table.c.IsDeleted.is_(False),
                    )
                    .order_by(table.c.Id)
                )
                .scalars()
                .all()
            )  # noqa: E501
        return {"ids": list(ids), "latestDateCovered": sf_datetime(end)}

    def deleted(self, object_name: str, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
        table = self.schema().table(object_name)
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(table.c.Id, table.c.SystemModstamp).where(
                    table.c.SystemModstamp >= start, table.c.SystemModstamp < end, table.c.IsDeleted.is_(True)
                )
            ).all()  # noqa: E501
        return {"deletedRecords": [{"id": r.Id, "deletedDate": sf_datetime(r.SystemModstamp)} for r in rows],
                "earliestDateAvailable": sf_datetime(start), "latestDateCovered": sf_datetime(end)}  # fmt: skip
