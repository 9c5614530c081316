"""SOQL query speed on a large Lead table: indexed filters against a full scan.

    .venv/bin/python bench/soql.py                 # 200,000 leads in a temporary SQLite file
    .venv/bin/python bench/soql.py --leads 50000 --pg postgresql+psycopg://postgres@127.0.0.1:5432/postgres

Inserts the leads straight into ``crm_lead`` (bulk), runs each query a few times through
``renkei.crm.soql_sql.run_query`` and prints the best time, the rows returned and the ratio to a
query that has to scan the table (a leading-wildcard LIKE). Indexed queries should stay within a
few milliseconds whatever the table size.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from renkei.crm.soql_sql import run_query
from renkei.ids import make_id
from renkei.store import migrate
from renkei.store.db import dispose_engines, make_engine
from renkei.store.dynamic import load_crm_schema

NOW = dt.datetime(2024, 5, 1, 3, 0, tzinfo=dt.UTC)
OWNERS = [make_id("005", i) for i in range(1, 21)]


def _leads(count: int) -> list[dict[str, Any]]:
    rnd = random.Random(1)
    rows = []
    for i in range(1, count + 1):
        created = NOW - dt.timedelta(minutes=rnd.randrange(0, 60 * 24 * 1000))
        rows.append(
            {
                "Id": make_id("00Q", i), "IsDeleted": i % 50 == 0, "CreatedDate": created,
                "CreatedById": OWNERS[0], "LastModifiedDate": created, "LastModifiedById": OWNERS[0],
                "SystemModstamp": created, "OwnerId": OWNERS[i % len(OWNERS)], "LastName": f"L{i}",
                "Company": f"Company {i % 5000}", "Email": f"User{i}@Example{i % 97}.jp",
                "Status": "Open - Not Contacted", "Industry": rnd.choice(["Banking", "Retail", None]),
                "HasOptedOutOfEmail": False, "DoNotCall": False, "IsConverted": False, "IsUnreadByOwner": False,
            }
        )  # fmt: skip
    return rows


QUERIES = [
    ("scan: Company LIKE '%99'", "SELECT Id FROM Lead WHERE Company LIKE '%99'"),
    ("Email = (lower index)", "SELECT Id, Name, Owner.Name FROM Lead WHERE Email = 'user777@example1.jp'"),
    (
        "Id IN (primary key)",
        f"SELECT Id, Email FROM Lead WHERE Id IN ('{make_id('00Q', 5)}', '{make_id('00Q', 9)}')",
    ),
    ("CreatedDate = TODAY", "SELECT Id FROM Lead WHERE CreatedDate = TODAY"),
    ("OwnerId = … LIMIT 100", f"SELECT Id FROM Lead WHERE OwnerId = '{OWNERS[3]}' LIMIT 100"),
    ("COUNT() Industry", "SELECT COUNT() FROM Lead WHERE Industry = 'banking'"),
]


def run(url: str, leads: int) -> None:
    migrate.upgrade(url)
    dispose_engines()
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            table = load_crm_schema(conn).tables["Lead"]
            rows = _leads(leads)
            for start in range(0, len(rows), 5000):
                conn.execute(sa.insert(table), rows[start : start + 5000])
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("ANALYZE crm_lead")
            else:
                conn.exec_driver_sql("ANALYZE")
        results = []
        with engine.connect() as conn:
            schema = load_crm_schema(conn)
            for label, soql in QUERIES:
                best, size = float("inf"), 0
                for _ in range(3):
                    started = time.perf_counter()
                    out = run_query(conn, schema, soql, include_deleted=False, now=NOW)
                    best = min(best, time.perf_counter() - started)
                    size = out["totalSize"]
                results.append((label, best, size))
        scan = results[0][1]
        print(f"{engine.dialect.name}: {leads} leads")
        for label, best, size in results:
            print(f"  {label:28s} {best * 1000:9.2f} ms  {size:7d} rows  scan/this = {scan / best:8.1f}")
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=200_000)
    parser.add_argument("--pg", help="PostgreSQL admin URL: a database is created next to it and dropped")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run(f"sqlite:///{Path(tmp) / 'soql.db'}", args.leads)
    if args.pg:
        admin = sa.create_engine(args.pg, isolation_level="AUTOCOMMIT")
        name = f"renkei_bench_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            run(args.pg.rsplit("/", 1)[0] + "/" + name, args.leads)
        finally:
            dispose_engines()
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()


if __name__ == "__main__":
    main()
