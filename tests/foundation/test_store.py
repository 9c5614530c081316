from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from renkei.store import migrate
from renkei.store.tables import setting


def test_migrated_database_has_every_table(engine: Engine) -> None:
    names = set(sa.inspect(engine).get_table_names())
    assert {"crm_lead", "crm_contact", "prospect", "visitor_activity"} <= names


def test_datetimes_come_back_aware_utc(engine: Engine) -> None:
    when = dt.datetime(2026, 4, 1, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=9)))
    with engine.begin() as conn:
        conn.execute(setting.insert().values(key="k", value={"a": 1}, updatedAt=when))
        got = conn.execute(sa.select(setting.c.updatedAt)).scalar_one()
    assert got == when and got.tzinfo is not None and got.utcoffset() == dt.timedelta(0)


def test_no_pending_migrations_after_upgrade(db_url: str) -> None:
    assert migrate.pending(db_url) == set()
