"""Rows for SOQL tests, written straight into the CRM tables (no service in between)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from renkei.crm.schema import FieldDef, FieldType, PicklistValue
from renkei.ids import make_id
from renkei.store import dynamic
from renkei.store import tables as t
from renkei.store.dynamic import CrmSchema

NOW = dt.datetime(2024, 5, 1, 1, 30, tzinfo=dt.UTC)  # 10:30 on 1 May in Tokyo
TAGS = FieldDef(
    "Tags__c",
    FieldType.MULTIPICKLIST,
    length=4099,
    custom=True,
    picklist_values=tuple(PicklistValue(v) for v in ("a", "b", "c", "D")),
)


def add_custom_field(conn: Connection, object_name: str, f: FieldDef) -> CrmSchema:
    conn.execute(
        t.crm_custom_field.insert().values(
            object_name=object_name, api_name=f.name, definition=dynamic.field_to_json(f), created_at=NOW
        )
    )
    dynamic.add_column(conn, dynamic.table_name(object_name), f)
    dynamic.invalidate(conn)
    return dynamic.load_crm_schema(conn)


def system_values(prefix: str, number: int, owner_id: str | None) -> dict[str, Any]:
    values: dict[str, Any] = {
        "Id": make_id(prefix, number),
        "IsDeleted": False,
        "CreatedDate": NOW,
        "CreatedById": make_id("005", 1),
        "LastModifiedDate": NOW,
        "LastModifiedById": make_id("005", 1),
        "SystemModstamp": NOW,
    }
    if owner_id is not None:
        values["OwnerId"] = owner_id
    return values


def insert(conn: Connection, schema: CrmSchema, object_name: str, rows: list[Mapping[str, Any]]) -> None:
    """Insert rows (keys missing from some rows are null in those rows)."""
    keys = {k for r in rows for k in r}
    if rows:
        conn.execute(sa.insert(schema.tables[object_name]), [dict.fromkeys(keys) | dict(r) for r in rows])


def user(number: int, last_name: str, first_name: str | None = None) -> dict[str, Any]:
    name = f"{first_name} {last_name}" if first_name else last_name
    return system_values("005", number, None) | {
        "Username": f"u{number}@example.com",
        "LastName": last_name,
        "FirstName": first_name,
        "Name": name,
        "Alias": f"u{number}",
        "Email": f"u{number}@example.com",
        "IsActive": True,
        "TimeZoneSidKey": "Asia/Tokyo",
        "LocaleSidKey": "ja_JP",
        "EmailEncodingKey": "UTF-8",
        "LanguageLocaleKey": "ja",
    }


def lead(number: int, owner_number: int = 1, **values: Any) -> dict[str, Any]:
    return (
        system_values("00Q", number, make_id("005", owner_number))
        | {
            "LastName": f"L{number}",
            "Company": "C",
            "Status": "Open - Not Contacted",
            "HasOptedOutOfEmail": False,
            "DoNotCall": False,
            "IsConverted": False,
            "IsUnreadByOwner": False,
        }
        | values
    )
