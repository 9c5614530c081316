"""Benchmark: the connector's initial sync, an incremental cycle and an idle cycle.

    .venv/bin/python bench/sync_cycle.py --leads 20000 --contacts 20000 --changes 1000

Loads N leads and contacts into the built-in CRM (SQLite in a temporary file, or --url), then
measures in one run: a raw ``INSERT … SELECT`` copy of the same rows into a scratch table (the
baseline), the initial sync (every record becomes a linked prospect), an incremental cycle after
``--changes`` CRM edits, and an idle cycle (nothing changed). Prints seconds, records/s, the ratio
to the baseline and the CRM write calls (≤ ⌈N/200⌉ + 3 is the target per direction).
"""

from __future__ import annotations

import argparse
import math
import resource
import time

import sqlalchemy as sa
from _scratch import migrated

from renkei.clock import SystemClock
from renkei.connector import config as c
from renkei.connector.service import SyncService
from renkei.crm.service import CrmService


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--leads", type=int, default=20_000)
    ap.add_argument("--contacts", type=int, default=20_000)
    ap.add_argument("--changes", type=int, default=1_000)
    ap.add_argument("--url")
    args = ap.parse_args()
    engine = migrated(args.url, "sync.db")
    clock = SystemClock()
    crm = CrmService(engine, clock=clock)
    leads = crm.insert_bulk("Lead", [{"LastName": f"山田{i}", "Company": f"会社{i % 500}", "Email": f"l{i}@example.jp",
                                      "Title": "課長"} for i in range(args.leads)])  # fmt: skip
    crm.insert_bulk(
        "Contact", [{"LastName": f"佐藤{i}", "Email": f"c{i}@example.jp"} for i in range(args.contacts)]
    )
    n = args.leads + args.contacts
    cfg = c.parse(c.DEFAULT_YAML)

    t0 = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                'CREATE TABLE bench_copy AS SELECT "Id", "Email", "LastName", "FirstName", "Title" FROM crm_lead WHERE 0'
            )
        )
        conn.execute(
            sa.text(
                'INSERT INTO bench_copy SELECT "Id", "Email", "LastName", "FirstName", "Title" FROM crm_lead'
            )
        )
        conn.execute(
            sa.text(
                'INSERT INTO bench_copy SELECT "Id", "Email", "LastName", "FirstName", "Title" FROM crm_contact'
            )
        )
    baseline = time.perf_counter() - t0

    def cycle() -> tuple[float, dict[str, object]]:
        svc = SyncService(engine, cfg, clock=clock)
        start = time.perf_counter()
        out = svc.run()
        return time.perf_counter() - start, out

    initial, out = cycle()
    created = out["counts"]["ma"]["create"]  # type: ignore[index]
    for rid in leads[: args.changes]:
        crm.update("Lead", rid, {"Title": "部長"})
    incremental, out2 = cycle()
    echo, out_echo = cycle()  # sees the CRM writes of the incremental cycle come back, writes nothing
    idle, out3 = cycle()
    writes = out2["crmCalls"]["write"]  # type: ignore[index]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"records                    {n}")
    print(f"baseline INSERT … SELECT   {baseline:8.3f} s")
    print(
        f"initial sync               {initial:8.1f} s  {n / initial:8.0f} records/s  {initial / baseline:8.0f}x baseline"
        f"  ({created} prospects created)"
    )
    print(
        f"incremental ({args.changes} changes)  {incremental:8.2f} s  CRM write calls {writes} "
        f"(target ≤ {math.ceil(args.changes / 200) + 3})"
    )
    print(f"echo cycle                 {echo * 1000:8.0f} ms  (counts: {out_echo['counts']})")
    print(f"idle cycle                 {idle * 1000:8.0f} ms  (counts: {out3['counts']})")
    print(f"peak RSS                   {rss:8.0f} MB")


if __name__ == "__main__":
    main()
