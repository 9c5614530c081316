"""sync_0002: the per-field agreed values (``sync_field_state``) become one ``sync_state`` row per
prospect, on SQLite and PostgreSQL, and back on downgrade."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import command

from renkei.store import migrate
from renkei.store.db import dispose_engines, make_engine
from renkei.store.tables_sync import sync_state


def test_field_rows_are_grouped_into_one_row_per_prospect(db_url: str) -> None:
    command.downgrade(migrate.alembic_config(db_url), "sync_0001")
    dispose_engines()
    at = dt.datetime(2026, 5, 1, 9, 30, tzinfo=dt.UTC)
    field_state = sa.Table("sync_field_state", sa.MetaData(), sa.Column("prospect_id", sa.Integer()),
                           sa.Column("field", sa.String(80)), sa.Column("value", sa.JSON()),
                           sa.Column("synced_at", sa.DateTime(timezone=True)))  # fmt: skip
    link = sa.Table("sync_link", sa.MetaData(), autoload_with=make_engine(db_url))
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(link.insert().values(prospect_id=1, crm_object="Contact", crm_id="0035g0000000001AAA",
                                          linked_at=at))  # fmt: skip
        conn.execute(field_state.insert(), [
            {"prospect_id": 1, "field": "email", "value": ["a@example.jp", "a@example.jp"], "synced_at": at},
            {"prospect_id": 1, "field": "score", "value": [12, 12], "synced_at": at},
            {"prospect_id": 1, "field": "assignedToId", "value": [None, None], "synced_at": at},
            {"prospect_id": 2, "field": "lastName", "value": ["山田", "山田 "], "synced_at": at},
        ])  # fmt: skip
    engine.dispose()
    migrate.upgrade(db_url)
    dispose_engines()
    engine = make_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(sync_state).order_by(sync_state.c.prospect_id)).all()
    assert rows == [  # not sparse (sync_0004): a field a migrated row does not name was never synced
        (1, "Contact", {"email": ["a@example.jp", "a@example.jp"], "score": [12, 12], "assignedToId": [None, None]},
         at, False, None),
        (2, None, {"lastName": ["山田", "山田 "]}, at, False, None),
    ]  # fmt: skip
    engine.dispose()
    command.downgrade(migrate.alembic_config(db_url), "sync_0001")
    dispose_engines()
    engine = make_engine(db_url)
    with engine.connect() as conn:
        back = conn.execute(sa.select(field_state.c.prospect_id, field_state.c.field, field_state.c.value)
                            .order_by(field_state.c.prospect_id, field_state.c.field)).all()  # fmt: skip
    assert back == [(1, "assignedToId", [None, None]), (1, "email", ["a@example.jp", "a@example.jp"]),
                    (1, "score", [12, 12]), (2, "lastName", ["山田", "山田 "])]  # fmt: skip
    engine.dispose()
