"""Compiled queries can use the indexes that exist: the plan of each statement names the index.

On PostgreSQL sequential scans are switched off for the EXPLAIN, so the plan shows whether an
index *can* serve the statement rather than what the planner picks for a nearly empty table.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from renkei.crm.soql_sql import compile_query
from renkei.ids import make_id
from renkei.store.dynamic import load_crm_schema

from .helpers import NOW

PLANS = {
    "SELECT Id FROM Lead WHERE Email = 'Taro@Example.com'": "ix_crm_lead_lower_email",
    f"SELECT Id, Company FROM Lead WHERE OwnerId = '{make_id('005', 1)[:15]}'": "ix_crm_lead_ownerid",
    "SELECT Id FROM Lead WHERE CreatedDate = LAST_N_DAYS:7": "ix_crm_lead_createddate",
    "SELECT Id FROM Lead WHERE CreatedDate >= 2024-04-01T00:00:00Z AND CreatedDate < 2024-05-01T00:00:00+09:00": (
        "ix_crm_lead_createddate"
    ),
    f"SELECT Id FROM Lead WHERE Id IN ('{make_id('00Q', 1)}', '{make_id('00Q', 2)}')": "crm_lead",
    f"SELECT Id, Name FROM Contact WHERE AccountId = '{make_id('001', 1)}'": "ix_crm_contact_accountid",
    "SELECT Id FROM Account WHERE Name = 'アクメ'": "ix_crm_account_lower_name",
    "SELECT COUNT() FROM Opportunity WHERE StageName IN ('Closed Won', 'closed lost')": "ix_crm_opportunity_lower_stagename",
}


def explain(conn: Connection, statement: Any) -> str:
    captured: list[tuple[str, Any]] = []

    def capture(_c: Any, _cursor: Any, sql: str, params: Any, _ctx: Any, _many: bool) -> None:
        captured.append((sql, params))

    sa.event.listen(conn, "before_cursor_execute", capture)
    try:
        conn.execute(statement).all()
    finally:
        sa.event.remove(conn, "before_cursor_execute", capture)
    sql, params = captured[-1]
    if conn.dialect.name == "sqlite":
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params).all()
        return "\n".join(str(r[-1]) for r in rows)
    conn.exec_driver_sql("SET enable_seqscan = off")
    rows = conn.exec_driver_sql("EXPLAIN " + sql, params).all()
    return "\n".join(str(r[0]) for r in rows)


def _uses(plan: str, index: str) -> bool:
    return index in plan and "SCAN crm_" not in plan and "Seq Scan" not in plan


def test_compiled_queries_use_indexes(engine: Engine) -> None:
    with engine.connect() as conn:
        schema = load_crm_schema(conn)
        plans = {
            soql: explain(conn, compile_query(schema, soql, include_deleted=False, now=NOW).statement)
            for soql in PLANS
        }
    assert {soql: _uses(plan, PLANS[soql]) for soql, plan in plans.items()} == dict.fromkeys(PLANS, True), (
        plans
    )
