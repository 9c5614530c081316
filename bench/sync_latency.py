"""Benchmark: CRM edit → prospect latency with the sync daemon running.

    .venv/bin/python bench/sync_latency.py --records 2000 --edits 40 --interval 2

Loads N leads into the built-in CRM (SQLite in a temporary file, or --url), runs the initial sync
in this process, then starts ``renkei sync daemon --interval SECONDS`` as a separate process and,
one at a time, edits a random synced lead's Title in the CRM and polls the prospect until its
jobTitle shows the new value. Prints p50/p95/max latency (target: p95 ≤ 5 s) and the daemon's
cycle count. Edits are spaced by a random pause (0–interval s) so they land at any point of
the daemon's cycle.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from renkei.clock import SystemClock
from renkei.connector import config as c
from renkei.connector.service import SyncService
from renkei.crm.service import CrmService
from renkei.store import migrate
from renkei.store import tables as t
from renkei.store.db import make_engine


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--records", type=int, default=2_000)
    ap.add_argument("--edits", type=int, default=40)
    ap.add_argument("--interval", type=float, default=2.0)
    ap.add_argument("--timeout", type=float, default=60.0, help="give up on one edit after this many seconds")
    ap.add_argument("--url")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp())
    url = args.url or f"sqlite:///{work / 'latency.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    clock = SystemClock()
    crm = CrmService(engine, clock=clock)
    leads: list[str] = []
    for start in range(0, args.records, 50_000):  # a million records in parts: memory stays flat
        leads += crm.insert_bulk("Lead", [{"LastName": f"山田{i}", "Company": f"会社{i % 50}", "Email": f"l{i}@example.jp",
                                           "Title": "課長"} for i in range(start, min(start + 50_000, args.records))])  # fmt: skip
    config = work / "connector.yaml"
    config.write_text(c.DEFAULT_YAML, encoding="utf-8")
    t0 = time.perf_counter()
    SyncService(engine, c.load(config), clock=clock).run()
    SyncService(engine, c.load(config), clock=clock).run()  # the echo of the initial sync
    print(f"records {args.records}; initial sync {time.perf_counter() - t0:.1f} s")
    with engine.connect() as conn:
        prospect_of = {
            r.salesforceId: r.id
            for r in conn.execute(sa.select(t.prospect.c.id, t.prospect.c.salesforceId))
            if r.salesforceId
        }

    env = {**os.environ, "RENKEI_DATABASE_URL": url, "RENKEI_CONNECTOR_CONFIG": str(config)}
    log = (work / "daemon.log").open("w")
    daemon = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("renkei")),
            "sync",
            "daemon",
            "--interval",
            str(args.interval),
            "--json",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    rng = random.Random(5)
    latencies: list[float] = []
    missed = 0
    try:
        time.sleep(args.interval)  # let the daemon start
        for n in range(args.edits):
            lead = rng.choice(leads)
            title = f"部長{n}"
            time.sleep(rng.uniform(0, args.interval))
            start = time.perf_counter()
            crm.update("Lead", lead, {"Title": title})
            pid = prospect_of[lead]
            while True:
                with engine.connect() as conn:
                    seen = conn.execute(
                        sa.select(t.prospect.c.jobTitle).where(t.prospect.c.id == pid)
                    ).scalar()
                elapsed = time.perf_counter() - start
                if seen == title:
                    latencies.append(elapsed)
                    break
                if elapsed > args.timeout:
                    missed += 1
                    break
                time.sleep(0.05)
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
        log.close()
    cycles = sum(1 for line in (work / "daemon.log").read_text().splitlines() if line.startswith("{"))
    if latencies:
        q = (
            statistics.quantiles(latencies, n=20, method="inclusive")
            if len(latencies) > 1
            else latencies * 19
        )
        p95 = q[18]
        print(f"edits {len(latencies)} (missed {missed}); latency p50 {statistics.median(latencies):.2f} s, "
              f"p95 {p95:.2f} s, max {max(latencies):.2f} s; target p95 ≤ 5 s: "
              f"{'met' if p95 <= 5 and not missed else 'NOT met'}; daemon cycles {cycles}")  # fmt: skip
    else:
        print(f"no edit arrived within {args.timeout} s (missed {missed}); see {work / 'daemon.log'}")


if __name__ == "__main__":
    main()
