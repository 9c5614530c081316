"""Demo-org load speed: rows per second for each size, into a fresh SQLite file (and PostgreSQL).

    .venv/bin/python bench/demo_load.py                       # small, medium, large on SQLite
    .venv/bin/python bench/demo_load.py --sizes small,medium  # pick sizes
    .venv/bin/python bench/demo_load.py --pg postgresql+psycopg://postgres@127.0.0.1:5432/postgres

Each run migrates a new database (a temporary SQLite file; with --pg a database created next to
the given one and dropped afterwards), loads the demo org with seed 1 and prints records, seconds
and records per second. The requirement is ``large`` in at most 180 s on SQLite on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from renkei.marketing.demo import SIZES, load_demo
from renkei.store import migrate
from renkei.store.db import dispose_engines, make_engine

LARGE_BUDGET_SECONDS = 180.0


def run(url: str, size: str) -> tuple[int, int, float, float]:
    """(CRM records, all records, wall seconds, CPU seconds of this process) for one load."""
    migrate.upgrade(url)
    dispose_engines()
    engine = make_engine(url)
    try:
        started, cpu = time.perf_counter(), time.process_time()
        result = load_demo(engine, size, seed=1)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        engine.dispose()
    crm = sum(n for name, n in result.counts.items() if name[0].isupper())
    return crm, sum(result.counts.values()), seconds, cpu


def sqlite_run(size: str) -> tuple[int, int, float, float]:
    with tempfile.TemporaryDirectory(prefix="renkei-bench-") as tmp:
        return run(f"sqlite:///{Path(tmp) / 'demo.db'}", size)


def pg_run(admin_url: str, size: str) -> tuple[int, int, float, float]:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"renkei_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        return run(admin_url.rsplit("/", 1)[0] + "/" + name, size)
    finally:
        dispose_engines()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default=",".join(SIZES), help="comma-separated: small,medium,large")
    parser.add_argument(
        "--pg", metavar="URL", help="also load into PostgreSQL (an admin URL, e.g. …/postgres)"
    )
    parser.add_argument("--no-sqlite", action="store_true", help="skip the SQLite runs")
    args = parser.parse_args()
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        parser.error(f"unknown sizes: {', '.join(unknown)}")
    print(f"cpus: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.1f}")
    header = ("backend", "size", "crm records", "all records", "seconds", "cpu s", "records/s")
    print("{:<10} {:<7} {:>12} {:>12} {:>8} {:>7} {:>10}".format(*header))
    backends = ([] if args.no_sqlite else ["sqlite"]) + (["postgresql"] if args.pg else [])
    for backend in backends:
        for size in sizes:
            crm, total, seconds, cpu = sqlite_run(size) if backend == "sqlite" else pg_run(args.pg, size)
            line = f"{backend:<10} {size:<7} {crm:>12,} {total:>12,} {seconds:>8.1f} {cpu:>7.1f} {total / seconds:>10,.0f}"
            print(f"{line}   (load average now {os.getloadavg()[0]:.1f})")
            if backend == "sqlite" and size == "large":
                verdict = "within" if seconds <= LARGE_BUDGET_SECONDS else "OVER"
                print(f"  large on SQLite: {seconds:.1f} s, {verdict} the {LARGE_BUDGET_SECONDS:.0f} s budget "
                      f"(ratio {seconds / LARGE_BUDGET_SECONDS:.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
