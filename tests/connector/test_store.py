"""The connector's tables: the migration creates exactly what ``renkei.store.tables_sync`` declares,
on SQLite and PostgreSQL, and a link is one-to-one."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from renkei.store.tables_sync import SYNC_TABLES, sync_link


def test_the_migration_matches_the_declared_tables(engine: Engine) -> None:
    inspector = sa.inspect(engine)
    for table in SYNC_TABLES:
        migrated = {c["name"]: c["nullable"] for c in inspector.get_columns(table.name)}
        declared = {c.name: c.nullable for c in table.columns}
        assert migrated == declared, table.name
        assert set(inspector.get_pk_constraint(table.name)["constrained_columns"]) == {
            c.name for c in table.primary_key
        }, table.name


def test_a_crm_record_links_to_one_prospect(engine: Engine) -> None:
    now = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    with engine.begin() as conn:
        conn.execute(sync_link.insert().values(prospect_id=1, crm_object="Lead", crm_id="00Q5g0000000001AAA",
                                               linked_at=now))  # fmt: skip
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sync_link.insert().values(prospect_id=2, crm_object="Lead", crm_id="00Q5g0000000001AAA",
                                               linked_at=now))  # fmt: skip
    with engine.connect() as conn:
        assert conn.execute(sa.select(sync_link.c.prospect_id, sync_link.c.linked_at)).all() == [(1, now)]
