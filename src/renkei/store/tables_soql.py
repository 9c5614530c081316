"""Expression indexes for SOQL: text compares case-insensitively as ``lower(column) = lower(:value)``,
which a plain index cannot serve, so each indexed text column of the CRM also gets an index on
``lower(column)`` (SQLite and PostgreSQL both use it for that shape)."""

from __future__ import annotations

import sqlalchemy as sa

from renkei.store.tables import CRM_TABLES

#: (object, text field) pairs whose plain index gets a ``lower()`` twin.
LOWER_INDEXED: tuple[tuple[str, str], ...] = (
    ("Lead", "Email"),
    ("Contact", "Email"),
    ("Account", "Name"),
    ("Opportunity", "StageName"),
    ("User", "Username"),
)


def lower_index_name(object_name: str, field: str) -> str:
    return f"ix_{CRM_TABLES[object_name].name}_lower_{field.lower()}"


LOWER_INDEXES: tuple[sa.Index, ...] = tuple(
    sa.Index(lower_index_name(obj, field), sa.func.lower(CRM_TABLES[obj].c[field]))
    for obj, field in LOWER_INDEXED
)
