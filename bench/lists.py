"""Dynamic-list benchmark: a rule with CRM and activity predicates over N prospects and 10·N
activities, timed beside a single-table ``COUNT(*)`` scan of ``visitor_activity`` in the same run.

    .venv/bin/python bench/lists.py [--scale 1.0] [--url sqlite:///bench-lists.db] [--pg URL]

``--scale 1`` = 1,000,000 prospects, 10,000,000 activities, 200,000 opportunities linked to
prospects, 50,000 accounts; all generated with set-based ``INSERT … SELECT`` (``generate_series``
on PostgreSQL, a recursive CTE on SQLite). Targets at scale 1: the rule's count ≤ 2 s on
PostgreSQL, ≤ 5 s on SQLite. Also timed: a full refresh of a dynamic list with that rule (the
count plus writing the memberships), an incremental refresh a day later after 1,000 changed
prospects, and one 15 minutes after that with 100 changed prospects.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import time
from typing import Any

import sqlalchemy as sa

from renkei.clock import FixedClock
from renkei.core.rules.evaluate import Moment
from renkei.core.rules.text import parse_rule
from renkei.segments.compile import context_for, members_query
from renkei.segments.lists import SegmentService
from renkei.store import migrate
from renkei.store.db import dispose_engines, make_engine

NOW = dt.datetime(2026, 6, 15, 3, 0, tzinfo=dt.UTC)
RULE = """all(
  score >= 40,
  has activity(type in (VISIT, SUCCESS), within last 30 days),
  has opportunity(stageName = "Closed Lost", closeDate within last 12 months),
  account.industry in ("Manufacturing", "Retail")
)"""


def _series(dialect: str, n: int) -> str:
    if dialect == "postgresql":
        return f"generate_series(1::bigint, {n}) AS s(i)"
    return f"(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) SELECT i FROM s) AS s"


def _ts(dialect: str, days_expr: str) -> str:
    """A timestamp ``days_expr`` days before NOW, in each store's representation."""
    if dialect == "postgresql":
        return f"(TIMESTAMPTZ '2026-06-15 03:00:00+00' - ({days_expr}) * INTERVAL '1 day')"
    return f"(strftime('%Y-%m-%d %H:%M:%S', '2026-06-15 03:00:00', (-({days_expr})) || ' days') || '.000000')"


def _day(dialect: str, days_expr: str) -> str:
    if dialect == "postgresql":
        return f"(DATE '2026-06-15' - ({days_expr})::int)"
    return f"date('2026-06-15', '-' || ({days_expr}) || ' days')"


def _rand(dialect: str, n: int | str) -> str:
    """A random integer in 0 .. n-1 per row (arithmetic patterns would correlate the tables)."""
    if dialect == "postgresql":
        return f"floor(random() * {n})::bigint"
    return f"(abs(random()) % {n})"


_BULK_TABLES = ("prospect", "visitor_activity", "opportunity", "opportunity_prospect", "prospect_account")


def _drop_indexes(conn: sa.Connection) -> list[str]:
    """Drop the secondary indexes of the bulk tables; return the statements that rebuild them."""
    d = conn.dialect.name
    names = ", ".join(f"'{t}'" for t in _BULK_TABLES)
    if d == "postgresql":
        rows = conn.execute(sa.text(
            f"SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ({names}) "
            "AND indexname NOT LIKE 'pk_%' AND indexname NOT LIKE 'uq_%'"
        )).all()  # fmt: skip
    else:
        rows = conn.execute(sa.text(
            f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name IN ({names}) AND sql IS NOT NULL"
        )).all()  # fmt: skip
    for name, _ in rows:
        conn.execute(sa.text(f'DROP INDEX "{name}"'))
    return [sql for _, sql in rows]


def load(url: str, scale: float) -> dict[str, int]:
    n = int(1_000_000 * scale)
    sizes = {"prospects": n, "activities": 10 * n, "opportunities": n // 5, "accounts": max(n // 20, 1)}
    engine = make_engine(url)
    d = engine.dialect.name
    with engine.begin() as conn:
        if d == "sqlite":
            conn.exec_driver_sql("PRAGMA journal_mode=OFF")
        rebuild = _drop_indexes(conn)
        x = conn.execute
        x(sa.text(
            'INSERT INTO prospect_account (id, name, industry, "isDeleted", "createdAt", "updatedAt") '
            f"SELECT i, 'Account ' || i, CASE {_rand(d, 4)} WHEN 0 THEN 'Manufacturing' WHEN 1 THEN 'Retail' "
            f"WHEN 2 THEN 'Finance' ELSE NULL END, false, {_ts(d, '400')}, {_ts(d, '400')} "
            f"FROM {_series(d, sizes['accounts'])}"
        ))  # fmt: skip
        x(sa.text(
            'INSERT INTO prospect (id, email, score, grade, "isDeleted", "prospectAccountId", "salesforceContactId", '
            '"createdAt", "updatedAt") '
            f"SELECT i, 'p' || i || '@example.jp', {_rand(d, 150)}, CASE {_rand(d, 3)} WHEN 0 THEN 'A' WHEN 1 THEN 'B' "
            f"ELSE 'C' END, false, {_rand(d, sizes['accounts'])} + 1, CASE WHEN i % 2 = 0 THEN '003' || i ELSE NULL END, "
            f"{_ts(d, 'i % 700')}, {_ts(d, 'i % 700')} FROM {_series(d, n)}"
        ))  # fmt: skip
        # 10 activities per prospect on average: types cycle over visit, success, open, click, sent;
        # createdAt spread over a year; a campaign on every third.
        x(sa.text(
            'INSERT INTO visitor_activity (type, "prospectId", "campaignId", "createdAt", "updatedAt") '
            "SELECT CASE i % 5 WHEN 0 THEN 20 WHEN 1 THEN 4 WHEN 2 THEN 11 WHEN 3 THEN 1 ELSE 6 END, "
            f"{_rand(d, n)} + 1, CASE WHEN i % 3 = 0 THEN (i % 20) + 1 ELSE NULL END, ts, ts "
            f"FROM (SELECT i, {_ts(d, _rand(d, 365))} AS ts FROM {_series(d, sizes['activities'])}) AS g"
        ))  # fmt: skip
        stage = f"CASE {_rand(d, 4)} WHEN 0 THEN 'Closed Lost' WHEN 1 THEN 'Closed Won' WHEN 2 THEN 'Prospecting' ELSE 'Negotiation/Review' END"
        x(sa.text(
            'INSERT INTO opportunity (id, name, "stageName", "isWon", "isClosed", amount, "closeDate", "customFields", '
            '"isDeleted", "createdAt", "updatedAt") '
            f"SELECT i, 'Deal ' || i, {stage}, i % 4 = 1, i % 4 < 2, (i % 100) * 1000.0, {_day(d, _rand(d, 900))}, "
            f"{'NULL' if d == 'sqlite' else 'NULL::json'}, false, {_ts(d, '(i * 11) % 900 + 30')}, {_ts(d, '(i * 11) % 900')} "
            f"FROM {_series(d, sizes['opportunities'])}"
        ))  # fmt: skip
        x(sa.text(
            'INSERT INTO opportunity_prospect ("opportunityId", "prospectId", "isPrimary") '
            f"SELECT i, {_rand(d, n)} + 1, true FROM {_series(d, sizes['opportunities'])}"
        ))  # fmt: skip
        x(sa.text("DELETE FROM segment_change"))
        for statement in rebuild:
            x(sa.text(statement))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        # PostgreSQL: VACUUM also sets the visibility map, so index-only scans need no heap reads.
        conn.exec_driver_sql("VACUUM ANALYZE" if d == "postgresql" else "ANALYZE")
    engine.dispose()
    return sizes


def timed(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def measure(url: str, scale: float, *, reuse: bool) -> None:
    migrate.upgrade(url)  # with --reuse: brings an older bench database to the current schema
    dispose_engines()
    if not reuse:
        seconds, sizes = timed(lambda: load(url, scale))
        print(f"  generated {sizes} in {seconds:.1f} s")
    engine = make_engine(url)
    d = engine.dialect.name
    if reuse:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE" if d == "postgresql" else "ANALYZE")
    node = parse_rule(RULE)
    with engine.connect() as conn:
        scan_s, rows = timed(
            lambda: conn.execute(sa.text("SELECT COUNT(*) FROM visitor_activity")).scalar_one()
        )
        ctx = context_for(conn, Moment(NOW))
        query = sa.select(sa.func.count()).select_from(members_query(node, ctx).subquery())
        rule_s, members = timed(lambda: conn.execute(query).scalar_one())
        rule2_s, _ = timed(lambda: conn.execute(query).scalar_one())
    target = 2.0 if d == "postgresql" else 5.0
    best = min(rule_s, rule2_s)
    print(f"  COUNT(*) visitor_activity: {rows:,} rows in {scan_s:.3f} s")
    verdict = ("OK" if best <= target else "OVER") if scale >= 1 else "(the target applies at scale 1)"
    print(f"  rule count: {members:,} members in {rule_s:.3f} s (again: {rule2_s:.3f} s); "
          f"{best / scan_s:.1f}x the COUNT(*) scan; target <= {target:.0f} s: {verdict}")  # fmt: skip
    clock = FixedClock(NOW)
    service = SegmentService(engine, clock=clock)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM list"))
        # --reuse: forget the later stamps an earlier run wrote, so this run's writes are the newest.
        conn.execute(
            sa.text(f'UPDATE prospect SET "updatedAt" = {_ts(d, "1")} WHERE "updatedAt" > {_ts(d, "0")}')
        )
    create_s, created = timed(lambda: service.create("bench", rule=RULE))
    print(f"  list create (full refresh, {created['memberCount']:,} members written): {create_s:.3f} s")
    with engine.begin() as conn:
        conn.execute(sa.text(
            f'UPDATE prospect SET score = (score + 50) % 150, "updatedAt" = {_ts(d, "-1")} WHERE id % 1000 = 7'
        ))  # fmt: skip
    clock.advance(days=1, hours=1)
    inc_s, [result] = timed(lambda: service.refresh(created["id"]))
    print(
        f"  incremental refresh a day later ({result.evaluated:,} prospects looked at, +{result.added} "
        f"-{result.removed}): {inc_s:.3f} s"
    )
    with engine.begin() as conn:
        conn.execute(sa.text(
            f'UPDATE prospect SET score = (score + 50) % 150, "updatedAt" = {_ts(d, "-1.01")} WHERE id % 10000 = 3'
        ))  # fmt: skip
    clock.advance(minutes=15)
    inc2_s, [result] = timed(lambda: service.refresh(created["id"]))
    print(
        f"  incremental refresh 15 minutes later, 100 prospects changed ({result.evaluated:,} looked at, "
        f"+{result.added} -{result.removed}): {inc2_s:.3f} s"
    )
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = 1M prospects, 10M activities")
    parser.add_argument("--url", help="SQLite URL (default: a temporary file)")
    parser.add_argument("--pg", help="PostgreSQL URL of an EMPTY database to fill (also measured)")
    parser.add_argument("--reuse", action="store_true", help="Measure existing data; do not generate")
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    print(f"rule:\n{RULE}\nscale {args.scale} ({int(1_000_000 * args.scale):,} prospects)")
    if not args.skip_sqlite:
        url = args.url
        if url is None:
            url = f"sqlite:///{os.path.join(tempfile.mkdtemp(), 'bench-lists.db')}"
        print(f"SQLite {url}")
        measure(url, args.scale, reuse=args.reuse)
    if args.pg:
        print(f"PostgreSQL {args.pg}")
        measure(args.pg, args.scale, reuse=args.reuse)


if __name__ == "__main__":
    main()
