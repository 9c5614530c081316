"""``store.bulkexec.executemany`` stores exactly what SQLAlchemy's own ``conn.execute(stmt, rows)``
stores — date-times, JSON (``None`` as JSON null), literals of the statement, upserts — on both
backends."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from renkei.store.bulkexec import executemany
from renkei.store.tables_sync import sync_audit, sync_state

NOW = dt.datetime(2026, 11, 23, 15, 0, 0, 123456, tzinfo=dt.UTC)


def audit_rows(n: int) -> list[dict[str, Any]]:
    return [{"run_id": 1, "at": NOW + dt.timedelta(seconds=i % 2), "direction": "ma", "action": "update",
             "object": "prospect", "record_id": str(i), "prospect_id": i, "field": "jobTitle",
             "old": None if i % 3 else ["課長", 1.5], "new": {"a": [i, "部長"]} if i % 2 else "部長",
             "rule": "crm_wins", "evidence": "rule", "reason": "the CRM's value wins"} for i in range(1, n + 1)]  # fmt: skip


def stored(engine: Engine, sql: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql))]


def test_rows_are_stored_as_sqlalchemy_stores_them(engine: Engine) -> None:
    rows = audit_rows(7)
    with engine.begin() as conn:
        conn.execute(sync_audit.insert(), rows)
        executemany(conn, sync_audit.insert(), rows)
    raw = stored(engine, "SELECT at, CAST(old AS TEXT), CAST(new AS TEXT), old IS NULL, reason, prospect_id "
                         "FROM sync_audit ORDER BY id")  # fmt: skip
    assert raw[:7] == raw[7:]
    assert len(raw) == 14

    # an upsert (the agreed values' statement), a literal in the statement, and an UPDATE by a bind
    ins = (postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert)(sync_state)
    upsert = ins.on_conflict_do_update(index_elements=[sync_state.c.prospect_id], set_={
        "values": ins.excluded["values"], "synced_at": ins.excluded.synced_at, "crm_object": "Contact"})  # fmt: skip
    states = [{"prospect_id": i, "crm_object": "Lead", "values": {"email": f"{i}@example.jp", "t": [None, "x"]},
               "synced_at": NOW} for i in range(1, 4)]  # fmt: skip
    with engine.begin() as conn:
        executemany(conn, upsert, states)
        executemany(conn, upsert, [{**s, "values": {"email": "new"}} for s in states[:2]])
        executemany(conn, sync_audit.update().where(sync_audit.c.prospect_id == sa.bindparam("_pid")),
                    [{"_pid": 1, "reason": "changed"}, {"_pid": 2, "reason": "changed too"}])  # fmt: skip
        executemany(conn, sync_audit.insert(), [])  # nothing to do
    with engine.connect() as conn:
        got = {
            r.prospect_id: (r.crm_object, r.values, r.synced_at) for r in conn.execute(sa.select(sync_state))
        }
        reasons = sorted(
            conn.execute(sa.select(sync_audit.c.reason).where(sync_audit.c.prospect_id <= 2)).scalars()
        )
    assert got == {1: ("Contact", {"email": "new"}, NOW), 2: ("Contact", {"email": "new"}, NOW),
                   3: ("Lead", {"email": "3@example.jp", "t": [None, "x"]}, NOW)}  # fmt: skip
    assert reasons == ["changed", "changed", "changed too", "changed too"]
