"""Benchmark: visitor activities → CRM tasks (``activity_tasks``) against the cycle without it.

    .venv/bin/python bench/task_export.py --leads 5000 --activities 2000

Loads N leads into the built-in CRM (SQLite in a temporary file, or --url), syncs them (each becomes
a linked prospect), records --activities form successes spread over the prospects, then measures in
one run: an idle cycle with the export off (the baseline), the cycle with the export on that turns
the activities into tasks (seconds, tasks/s, CRM write calls against ⌈N/200⌉ + 3), and an idle
cycle with the export on (its ratio to the baseline is what the opt-in costs a quiet connector).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import time
from typing import Any

import sqlalchemy as sa
from _scratch import migrated

from renkei.cli.cmd_sync import _install
from renkei.clock import SystemClock
from renkei.connector import config as c
from renkei.connector.service import SyncService
from renkei.core.activities import ActivityType, AssetKind
from renkei.crm.service import CrmService
from renkei.marketing.activity_service import NewActivity, record_activities
from renkei.store import tables as t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--leads", type=int, default=5_000)
    ap.add_argument("--activities", type=int, default=2_000)
    ap.add_argument("--url")
    args = ap.parse_args()
    engine = migrated(args.url, "tasks.db")
    clock = SystemClock()
    crm = CrmService(engine, clock=clock)
    _install(engine)
    crm.insert_bulk("Lead", [{"LastName": f"山田{i}", "Company": f"会社{i % 500}", "Email": f"l{i}@example.jp"}
                             for i in range(args.leads)])  # fmt: skip
    off = c.parse(c.DEFAULT_YAML)
    on = off.model_copy(update={"activity_tasks": off.activity_tasks.model_copy(update={"enabled": True})})

    def cycle(cfg: c.ConnectorConfig) -> tuple[float, float, dict[str, Any]]:
        svc = SyncService(engine, cfg, clock=clock)
        cpu, start = time.process_time(), time.perf_counter()
        out = svc.run()
        return time.perf_counter() - start, time.process_time() - cpu, out

    cycle(off)  # the initial sync: every lead becomes a linked prospect
    cycle(on)  # the export's first run sets its watermarks (nothing to export yet)
    with engine.begin() as conn:
        pids = conn.execute(sa.select(t.prospect.c.id).order_by(t.prospect.c.id)).scalars().all()
        now = dt.datetime.now(dt.UTC)
        record_activities(conn, [NewActivity(ActivityType.SUCCESS, AssetKind.FORM, prospect_id=pids[i % len(pids)],
                                             details=f"資料請求 {i}") for i in range(args.activities)], now)  # fmt: skip
    idle_off = min(cycle(off)[:2] for _ in range(3))  # the export off: the activities are not looked at
    export_wall, export_cpu, out = cycle(on)
    idle_on = min(cycle(on)[:2] for _ in range(3))
    tasks = out["counts"]["tasks"]
    with engine.connect() as conn:
        in_crm = conn.execute(sa.text("SELECT COUNT(*) FROM crm_task")).scalar_one()
    print(f"leads (linked prospects)   {args.leads}")
    print(
        f"idle cycle, export off     {idle_off[0] * 1000:8.1f} ms wall  {idle_off[1] * 1000:8.0f} ms CPU  (baseline)"
    )
    print(f"export of {args.activities} activities {export_wall:8.2f} s wall  {export_cpu:8.2f} s CPU  "
          f"{args.activities / export_wall:6.0f} tasks/s  counts {tasks}  tasks in CRM {in_crm}")  # fmt: skip
    print(
        f"  CRM write calls          {out['crmCalls']['write']:8d}  (target ≤ {math.ceil(args.activities / 200) + 3})"
    )
    print(f"idle cycle, export on      {idle_on[0] * 1000:8.1f} ms wall  {idle_on[1] * 1000:8.0f} ms CPU  "
          f"({idle_on[0] / idle_off[0]:.2f}x the baseline; target ≤ 50 ms)")  # fmt: skip


if __name__ == "__main__":
    main()
