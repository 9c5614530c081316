"""Rescoring benchmark: rebuild every prospect's score after a scoring-model change.

    .venv/bin/python bench/rescore.py [--prospects 1000000] [--url sqlite:///bench-rescore.db]

Loads N prospects, each with 3 activities (form success, file view, email open), one visitor and
2 page views, and one ledger adjustment for every 10th — all with set-based INSERT … SELECT —
then times ``rescore_all`` twice: under AE's baseline, then under a changed model (per-asset
points, a page action, two decay steps). Target: 1M prospects in ≤ 30 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time

import sqlalchemy as sa

from renkei.core.scoring import ScoreModel
from renkei.marketing.scoring_service import ScoringService
from renkei.store import migrate
from renkei.store.db import make_engine

NOW = dt.datetime(2026, 4, 1, tzinfo=dt.UTC)


def _series(conn: sa.Connection, n: int) -> str:
    """A FROM clause yielding integers 1..n as column ``i``."""
    if conn.dialect.name == "postgresql":
        return f"generate_series(1, {n}) AS s(i)"
    return f"(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) SELECT i FROM s) AS s"


def load(url: str, n: int) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        series = _series(conn, n)
        ts = (
            "'2026-03-01 00:00:00.000000'"
            if conn.dialect.name == "sqlite"
            else "TIMESTAMPTZ '2026-03-01 00:00:00+00'"
        )
        old = (
            "'2025-06-01 00:00:00.000000'"
            if conn.dialect.name == "sqlite"
            else "TIMESTAMPTZ '2025-06-01 00:00:00+00'"
        )
        f = "false"
        conn.execute(sa.text(
            f'INSERT INTO prospect (id, email, "emailKey", score, "isDeleted", "optedOut", "createdAt", "updatedAt") '
            f"SELECT i, 'p' || i || '@example.jp', 'p' || i || '@example.jp', 0, {f}, {f}, {ts}, {ts} FROM {series}"
        ))  # fmt: skip
        conn.execute(sa.text(
            f'INSERT INTO visitor (id, "prospectId", "pageViewCount", "isIdentified", "doNotSell", "createdAt", "updatedAt") '
            f"SELECT i, i, 2, true, {f}, {ts}, {ts} FROM {series}"
        ))  # fmt: skip
        for k, (type_, name, col, created) in enumerate(
            [(4, "Form", '"formId"', ts), (2, "File", '"fileId"', old), (11, "Email", '"emailId"', ts)]
        ):
            conn.execute(sa.text(
                f'INSERT INTO visitor_activity (type, "typeName", "prospectId", "visitorId", {col}, "createdAt", "updatedAt") '
                f"SELECT {type_}, '{name}', i, i, 1 + (i % 5), {created}, {created} FROM {series}"
            ))  # fmt: skip
            del k
        for page in ("https://example.jp/", "https://example.jp/pricing"):
            conn.execute(sa.text(
                f'INSERT INTO visitor_page_view ("visitorId", "prospectId", url, "durationInSeconds", "createdAt") '
                f"SELECT i, i, '{page}', 0, {ts} FROM {series}"
            ))  # fmt: skip
        conn.execute(sa.text(
            f'INSERT INTO score_adjustment ("prospectId", points, source, reason, "createdAt") '
            f"SELECT i, -10, 'automation', 'bench', {ts} FROM {series} WHERE i % 10 = 0"
        ))  # fmt: skip
        if conn.dialect.name == "postgresql":
            for table in ("prospect", "visitor"):
                conn.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {n})"))
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("ANALYZE"))
    engine.dispose()


class _Clock:
    def now(self) -> dt.datetime:
        return NOW


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prospects", type=int, default=1_000_000)
    parser.add_argument("--url", default="sqlite:///bench-rescore.db")
    args = parser.parse_args()
    if args.url.startswith("sqlite:///") and os.path.exists(args.url.removeprefix("sqlite:///")):
        os.remove(args.url.removeprefix("sqlite:///"))
    migrate.upgrade(args.url)
    started = time.perf_counter()
    load(args.url, args.prospects)
    print(f"loaded {args.prospects:,} prospects, {3 * args.prospects:,} activities, "
          f"{2 * args.prospects:,} page views in {time.perf_counter() - started:.1f} s")  # fmt: skip
    engine = make_engine(args.url)
    scoring = ScoringService(engine, clock=_Clock())
    started, cpu = time.perf_counter(), time.process_time()
    changed = scoring.rescore_all()
    baseline = time.perf_counter() - started
    print(
        f"rescore, AE baseline: {changed:,} scores changed in {baseline:.1f} s (CPU {time.process_time() - cpu:.1f} s)"
    )
    model = ScoreModel.from_dict({
        "assets": [{"kind": "Form", "id": 1, "type": 4, "points": 80}],
        "page_actions": [{"url": "https://example.jp/pricing", "points": 10}],
        "decay": [{"after_days": 90, "percent": 50}, {"after_days": 365, "percent": 0}],
    })  # fmt: skip
    started, cpu = time.perf_counter(), time.process_time()
    result = scoring.set_model(model)
    changed_model = time.perf_counter() - started
    print(f"rescore, changed model: {result['rescored']:,} scores changed in {changed_model:.1f} s "
          f"(CPU {time.process_time() - cpu:.1f} s)")  # fmt: skip
    worst = max(baseline, changed_model)
    rate = args.prospects / worst
    print(f"worst: {worst:.1f} s for {args.prospects:,} prospects ({rate:,.0f} prospects/s); "
          f"target 30 s per 1M → ratio {30 / (worst * 1_000_000 / args.prospects):.2f}x")  # fmt: skip
    engine.dispose()


if __name__ == "__main__":
    main()
