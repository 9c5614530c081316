"""Tables whose columns include fields defined at run time (CRM and prospect custom fields).

Custom field definitions are stored as JSON (``field_to_json``/``field_from_json``); the live
schema is loaded per connection and cached per database until a field is added.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from renkei.crm.schema import STANDARD_OBJECTS, FieldDef, FieldType, ObjectDef, PicklistValue, table_name
from renkei.errors import NotFoundError
from renkei.marketing.schema import PROSPECT_FIELDS
from renkei.store import tables as t


def field_to_json(f: FieldDef) -> dict[str, Any]:
    return {
        "name": f.name,
        "type": f.type.value,
        "label": f.label,
        "length": f.length,
        "precision": f.precision,
        "scale": f.scale,
        "nillable": f.nillable,
        "picklistValues": [
            {"value": v.value, "label": v.label, "default": v.default} for v in f.picklist_values
        ],
        "restrictedPicklist": f.restricted_picklist,
        "defaultValue": f.default_value,
        "referenceTo": list(f.reference_to),
    }


def field_from_json(d: dict[str, Any]) -> FieldDef:
    type_ = FieldType(d["type"])
    boolean = type_ is FieldType.BOOLEAN
    return FieldDef(
        d["name"],
        type_,
        label=d.get("label") or "",
        length=int(d.get("length") or 0),
        precision=int(d.get("precision") or 0),
        scale=int(d.get("scale") or 0),
        nillable=bool(d.get("nillable", True)) and not boolean,
        defaulted_on_create=boolean,
        default_value=d.get("defaultValue", False if boolean else None),
        custom=True,
        picklist_values=tuple(
            PicklistValue(v["value"], v.get("label"), default=bool(v.get("default")))
            for v in d.get("picklistValues", [])
        ),
        restricted_picklist=bool(d.get("restrictedPicklist")),
        reference_to=tuple(d.get("referenceTo") or ()),
    )


@dataclass(frozen=True)
class CrmSchema:
    """The CRM's live metadata: standard objects plus custom fields, and a table per object."""

    objects: dict[str, ObjectDef]
    tables: dict[str, sa.Table]
    _lower: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lower.update({name.lower(): name for name in self.objects})

    def object(self, name: str) -> ObjectDef:
        """Case-insensitive object lookup; unknown objects raise NOT_FOUND (Salesforce: INVALID_TYPE)."""
        real = self._lower.get(name.lower())
        if real is None:
            raise NotFoundError(f"sObject type '{name}' is not supported.", code="INVALID_TYPE")
        return self.objects[real]

    def table(self, name: str) -> sa.Table:
        return self.tables[self.object(name).name]


@dataclass(frozen=True)
class ProspectSchema:
    fields: dict[str, FieldDef]
    custom_fields: tuple[FieldDef, ...]
    table: sa.Table


_lock = threading.Lock()
_crm_cache: dict[tuple[str, int, tuple[int, str]], CrmSchema] = {}
_prospect_cache: dict[tuple[str, int, tuple[int, str]], ProspectSchema] = {}
_versions: dict[str, int] = {}


def _db_key(conn: Connection) -> str:
    return str(conn.engine.url)


def invalidate(conn: Connection) -> None:
    """Forget cached schemas of this database (call after adding a custom field)."""
    with _lock:
        key = _db_key(conn)
        _versions[key] = _versions.get(key, 0) + 1


def _custom_columns(base: sa.Table, md: sa.MetaData, extra: Iterable[FieldDef]) -> sa.Table:
    cols = [c._copy() for c in base.columns]
    cols += [sa.Column(f.name, t.column_type(f), nullable=True) for f in extra]
    return sa.Table(base.name, md, *cols)


def _stamp(conn: Connection, table: sa.Table) -> tuple[int, str]:
    """A cheap version of the custom fields in the database, so that a field added by another
    process (the CLI while the server runs) is seen at once."""
    count, latest = conn.execute(sa.select(sa.func.count(), sa.func.max(table.c.created_at))).one()
    return int(count), str(latest)


def load_crm_schema(conn: Connection) -> CrmSchema:
    key = (_db_key(conn), _versions.get(_db_key(conn), 0), _stamp(conn, t.crm_custom_field))
    cached = _crm_cache.get(key)
    if cached is not None:
        return cached
    rows = (
        conn.execute(sa.select(t.crm_custom_field).order_by(t.crm_custom_field.c.created_at)).mappings().all()
    )
    custom: dict[str, list[FieldDef]] = {}
    for row in rows:
        custom.setdefault(row["object_name"], []).append(field_from_json(row["definition"]))
    md = sa.MetaData()
    objects: dict[str, ObjectDef] = {}
    tables: dict[str, sa.Table] = {}
    for name, obj in STANDARD_OBJECTS.items():
        extra = custom.get(name, [])
        full = obj.with_fields(extra) if extra else obj
        objects[name] = full
        tables[name] = _custom_columns(t.CRM_TABLES[name], md, extra) if extra else t.CRM_TABLES[name]
    # Read-only objects backed by SQL views: segmentation's activity connector (VisitorActivity …).
    from renkei.store.tables_segments import VIRTUAL_OBJECTS

    for name, (obj, table) in VIRTUAL_OBJECTS.items():
        objects[name], tables[name] = obj, table
    schema = CrmSchema(objects, tables)
    with _lock:
        _crm_cache[key] = schema
    return schema


def load_prospect_schema(conn: Connection) -> ProspectSchema:
    key = (_db_key(conn), _versions.get(_db_key(conn), 0), _stamp(conn, t.prospect_custom_field))
    cached = _prospect_cache.get(key)
    if cached is not None:
        return cached
    rows = conn.execute(
        sa.select(t.prospect_custom_field).order_by(t.prospect_custom_field.c.created_at)
    ).all()
    custom = tuple(field_from_json(r.definition) for r in rows)
    table = _custom_columns(t.prospect, sa.MetaData(), custom) if custom else t.prospect
    fields = dict(PROSPECT_FIELDS)
    fields.update({f.name: f for f in custom})
    schema = ProspectSchema(fields, custom, table)
    with _lock:
        _prospect_cache[key] = schema
    return schema


def add_column(conn: Connection, table: str, f: FieldDef) -> None:
    """``ALTER TABLE … ADD COLUMN`` for a new custom field (both SQLite and PostgreSQL)."""
    col_type = t.column_type(f).compile(dialect=conn.dialect)
    preparer = conn.dialect.identifier_preparer
    conn.execute(
        sa.text(f"ALTER TABLE {preparer.quote(table)} ADD COLUMN {preparer.quote(f.name)} {col_type}")
    )


__all__ = [
    "CrmSchema",
    "ProspectSchema",
    "add_column",
    "field_from_json",
    "field_to_json",
    "invalidate",
    "load_crm_schema",
    "load_prospect_schema",
    "table_name",
]
