"""Benchmark: the built-in CRM's bulk calls a connector cycle makes, against raw SQL in the same run.

    .venv/bin/python bench/crm_bulk.py --records 100000 --changes 10000

Loads ``--records`` leads into the built-in CRM (SQLite in a temporary file, or ``--url``), then
times, best of ``--repeat`` (wall and CPU seconds of this process, records/s):

1. ``update_many`` of ``--changes`` random leads (``Description``) in calls of 200, as the
   connector writes marketing edits to the CRM; against the same writes as raw ``UPDATE``
   executemany, one transaction per 200 (what the calls cannot avoid) and one for all;
2. ``changes_since`` over those changed leads in pages of 2,000, as the adapter's ``changes``; against
   the same query as raw SQL (driver tuples, no conversion);
3. ``get_many`` of the same leads in pages of 2,000, as the adapter's ``read``; against raw SQL.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from _scratch import migrated

from renkei.clock import SystemClock
from renkei.crm.service import CrmService, Watermark

PAGE = 2_000  # what the connector asks the adapter for at a time
BATCH = 200  # records per write call


def _best(repeat: int, run: Callable[[int], Any]) -> tuple[float, float]:
    """The least wall and CPU seconds of ``repeat`` runs of ``run(i)``."""
    wall = cpu = float("inf")
    for i in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        run(i)
        wall, cpu = min(wall, time.perf_counter() - w0), min(cpu, time.process_time() - c0)
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--changes", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--url")
    args = ap.parse_args()
    n, k = args.records, args.changes
    print(f"load average at start      {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    engine = migrated(args.url, "crm.db")
    crm = CrmService(engine, clock=SystemClock())
    t0 = time.perf_counter()
    ids: list[str] = []
    for start in range(0, n, 50_000):
        ids += crm.insert_bulk("Lead", [{"LastName": f"山田{i}", "Company": f"会社{i % 500}", "Title": "課長",
                                         "LeadSource": "Web", "Email": f"l{i}@example.jp"}
                                        for i in range(start, min(n, start + 50_000))], validate=False)  # fmt: skip
    print(f"leads                      {n}, loaded in {time.perf_counter() - t0:.0f} s")
    rng = random.Random(5)
    samples = [rng.sample(ids, k) for _ in range(args.repeat * 3)]
    update_sql = sa.text('UPDATE crm_lead SET "Description" = :d WHERE "Id" = :i')

    def report(label: str, got: tuple[float, float], *baselines: tuple[str, tuple[float, float]]) -> None:
        vs = "".join(f"; {name} {b[0]:.3f} s (CPU {b[1]:.3f} s): {got[0] / b[0]:.1f}× wall, "
                     f"{got[1] / max(b[1], 1e-9):.1f}× CPU" for name, b in baselines)  # fmt: skip
        print(f"{label:<26} {got[0]:8.3f} s  (CPU {got[1]:.3f} s)  {k / got[0]:8.0f} records/s{vs}")

    def crm_update(i: int) -> None:
        chosen = samples[i]
        for start in range(0, k, BATCH):
            crm.update_many("Lead", [{"Id": rid, "Description": f"問い合わせ {i} {rid}"}
                                     for rid in chosen[start : start + BATCH]])  # fmt: skip

    def raw_update(i: int, per: int) -> None:
        chosen = samples[args.repeat + i]
        for start in range(0, k, per):
            with engine.begin() as conn:
                conn.execute(
                    update_sql, [{"d": f"raw {i} {rid}", "i": rid} for rid in chosen[start : start + per]]
                )

    update = _best(args.repeat, crm_update)
    raw_calls = _best(args.repeat, lambda i: raw_update(i, BATCH))
    raw_one = _best(args.repeat, lambda i: raw_update(i, k))
    report(
        f"update_many, calls of {BATCH}", update, (f"raw UPDATE per {BATCH}", raw_calls), ("in one", raw_one)
    )

    # the last k changes (the last update_many run's), from just before them, as a watermark would
    with engine.connect() as conn:
        before = conn.execute(sa.text('SELECT "SystemModstamp", "Id" FROM crm_lead ORDER BY "SystemModstamp" DESC, '
                                      '"Id" DESC LIMIT 1 OFFSET :k'), {"k": k}).one()  # fmt: skip
    start_mark = Watermark(crm.get("Lead", before.Id)["SystemModstamp"], before.Id)
    read: list[str] = []

    def crm_changes(_: int) -> None:
        read.clear()
        cursor: Watermark | None = start_mark
        while True:
            page = crm.changes_since("Lead", cursor, limit=PAGE)
            read.extend(r["Id"] for r in page.records)
            cursor = page.watermark
            if page.done:
                return

    changes_sql = sa.text('SELECT * FROM crm_lead WHERE ("SystemModstamp", "Id") > (:s, :i) '
                          'ORDER BY "SystemModstamp", "Id" LIMIT :n')  # fmt: skip

    def raw_changes(_: int) -> None:  # the stored values as the driver gives them, no conversion
        stamp, rid = before.SystemModstamp, before.Id
        while True:
            with engine.connect() as conn:
                rows = conn.execute(changes_sql, {"s": stamp, "i": rid, "n": PAGE + 1}).all()
            if len(rows) <= PAGE:
                return
            stamp, rid = rows[PAGE - 1].SystemModstamp, rows[PAGE - 1].Id

    changes = _best(args.repeat, crm_changes)
    assert len(read) == k, len(read)
    report(f"changes_since, pages of {PAGE}", changes, ("raw SELECT", _best(args.repeat, raw_changes)))

    def crm_read(_: int) -> None:
        for start in range(0, k, PAGE):
            crm.get_many("Lead", read[start : start + PAGE], include_deleted=True)

    read_sql = sa.text('SELECT * FROM crm_lead WHERE "Id" IN :ids').bindparams(
        sa.bindparam("ids", expanding=True)
    )

    def raw_read(_: int) -> None:
        for start in range(0, k, PAGE):
            with engine.connect() as conn:
                for at in range(start, min(k, start + PAGE), 1000):
                    conn.execute(read_sql, {"ids": read[at : min(at + 1000, start + PAGE)]}).all()

    report(
        f"get_many, pages of {PAGE}",
        _best(args.repeat, crm_read),
        ("raw SELECT", _best(args.repeat, raw_read)),
    )
    print(f"load average at end        {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
