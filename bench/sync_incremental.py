"""Benchmark: incremental connector cycles among many synced records.

    .venv/bin/python bench/sync_incremental.py --records 1000000 --changes 10000

Loads ``--records`` leads and contacts (half each) into the built-in CRM (SQLite in a temporary
file, or ``--url``) and gets them synced, then measures in one run:

1. an idle cycle (nothing changed; target ≤ 50 ms whatever the size);
2. the cycles after ``--changes`` CRM edits (``Title`` of as many leads and contacts, through the
   CRM's own ``update_many``) until every edit is on its prospect (target ≤ 2 s for 10k);
3. the cycles after ``--changes`` prospect edits (``comments``, marketing wins → ``Description``,
   through ``ProspectService.update`` like a user's edit) until every edit is in the CRM;

   after steps 2 and 3, a baseline: the rows the cycles wrote (prospects, then CRM records) written
   again as one raw ``UPDATE`` executemany, so each cycle's time reads as a ratio to the machine's
   pace in the same run;
4. the echo cycle after that (sees the connector's own CRM writes come back; writes nothing);
5. an idle cycle again.

For each: seconds (wall and CPU of this process), records/s, the CRM adapter's read and write
calls against ⌈N/200⌉ + 3, and what the cycle did; peak RSS at the end. Each step checks its
outcome (all edits arrived; echo and idle cycles write nothing).

**How the synced state is built.** ``--initial cycle`` (default) runs ``SyncService.run()``: the
real initial sync, whose set-based path (``connector/bulk.py``) creates the new prospects. ``--initial
bulk`` builds the same state through the connector's per-record create code minus the planning:
every CRM record is read through the adapter (``changes``, pages of 5,000), turned into prospect
values by ``SyncService._prospect_values`` and created, linked, audited and given agreed values by
``SyncService._create_prospects`` — what the initial sync does for a record whose email matches no
prospect, which is every record here (unique emails, no filters); the watermarks are then set as a
cycle would set them (it predates the set-based path and is kept to reproduce earlier figures). The
first measured step (an idle cycle that must write nothing) checks the state is a settled one.

The records carry a ``LeadSource``: a new prospect takes ``source: CRM`` when its record has none,
and ``source`` is ``crm_wins_unless_blank``, so the first change of such a record also writes
``LeadSource = CRM`` back to the CRM — the 10k CRM edits would then cost 10k CRM writes as well
(the connector's rule, not a cost of the cycle; bench/sync_cycle.py shows that case).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import resource
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from _scratch import migrated

from renkei.clock import SystemClock
from renkei.connector import config as c
from renkei.connector.adapters.builtin import BuiltinCrmAdapter
from renkei.connector.service import SyncService
from renkei.core.sync.judge import Side
from renkei.core.sync.messages import Action, Op
from renkei.crm.service import CrmService
from renkei.marketing.service import ProspectService
from renkei.store import tables as t
from renkei.store.tables_sync import sync_run


def _load(crm: CrmService, records: int) -> dict[str, list[str]]:
    ids: dict[str, list[str]] = {"Lead": [], "Contact": []}
    half = records // 2
    for start in range(0, half, 50_000):
        n = min(50_000, half - start)
        ids["Lead"] += crm.insert_bulk("Lead", [{"LastName": f"山田{i}", "Company": f"会社{i % 500}", "Title": "課長",
                                                 "LeadSource": "Web", "Email": f"l{i}@example.jp"} for i in range(start, start + n)],
                                       validate=False)  # fmt: skip
        ids["Contact"] += crm.insert_bulk("Contact", [{"LastName": f"佐藤{i}", "Title": "係長", "LeadSource": "Web",
                                                       "Email": f"c{i}@example.jp"}
                                                      for i in range(start, start + n)], validate=False)  # fmt: skip
    return ids


def _bulk_initial(engine: sa.Engine, cfg: c.ConnectorConfig, clock: SystemClock) -> None:
    svc = SyncService(engine, cfg, clock=clock)
    now = clock.now()
    with engine.begin() as conn:
        run_id = int(conn.execute(sync_run.insert().values(kind="cycle", started_at=now, status="done",
                                                           finished_at=now).returning(sync_run.c.id)).scalar_one())  # fmt: skip
    for obj in ("Contact", "Lead", "Account", "Opportunity", "OpportunityContactRole"):
        cursor = None
        while True:
            batch = svc.adapter.changes(obj, cursor, limit=5000)
            if obj in ("Lead", "Contact") and batch.records:
                with engine.begin() as conn:
                    ops = [Op(Action.CREATE, Side.MA, obj, str(r["Id"]), None, f"new {obj} with email {r.get('Email')}",
                              values=svc._prospect_values(conn, obj, r)) for r in batch.records]  # fmt: skip
                    for start in range(0, len(ops), 500):
                        svc._create_prospects(conn, run_id, ops[start : start + 500], now)
            cursor = batch.cursor or cursor
            if batch.done:
                break
        if cursor is not None:
            with engine.begin() as conn:
                svc._save_mark(conn, f"crm:{obj}", cursor.modstamp, cursor.id)
    with engine.begin() as conn:
        p = t.prospect
        last = conn.execute(sa.select(p.c.updatedAt, p.c.id).order_by(p.c.updatedAt.desc(), p.c.id.desc()).limit(1)).first()  # fmt: skip
        if last is not None:
            svc._save_mark(conn, "ma:prospect", last.updatedAt, str(last.id))


def _cycles(engine: sa.Engine, cfg: c.ConnectorConfig, clock: SystemClock, done: Callable[[], bool],
            limit: int = 20) -> dict[str, Any]:  # fmt: skip
    """Cycles until ``done()`` (at most ``limit``): wall and CPU seconds, adapter calls, counts."""
    wall = cpu = 0.0
    calls = {"read": 0, "write": 0}
    counts: list[Any] = []
    n = 0
    while True:
        svc = SyncService(engine, cfg, clock=clock)
        w0, c0 = time.perf_counter(), time.process_time()
        out = svc.run()
        wall += time.perf_counter() - w0
        cpu += time.process_time() - c0
        n += 1
        assert isinstance(svc.adapter, BuiltinCrmAdapter)
        for k in calls:
            calls[k] += svc.adapter.calls[k]
        counts.append(out["counts"])
        if done() or n >= limit:
            return {"wall": wall, "cpu": cpu, "calls": calls, "cycles": n, "counts": counts, "done": done()}


def _nothing_written(counts: dict[str, Any]) -> bool:
    return (
        not any(counts[s][k] for s in ("crm", "ma") for k in ("create", "update", "delete"))
        and not counts["link"]
    )


def _baseline(engine: sa.Engine, cycle: dict[str, Any], label: str,
              targets: list[tuple[str, str, str, str]]) -> None:  # fmt: skip
    """Time one raw ``UPDATE`` executemany per (table, column, key, which rows) — the rows a cycle
    wrote, set to another value (SQLite writes no page for an unchanged one) — then put the values
    back, and print it beside ``cycle`` (a ``_cycles`` result) as a ratio."""
    with engine.connect() as conn:
        rows = {(table, column, key): [{"v": v, "k": i} for i, v in conn.execute(
            sa.text(f"SELECT {key}, {column} FROM {table} WHERE {where}"))]
                for table, column, key, where in targets}  # fmt: skip

    def write(change: Callable[[str], str]) -> None:
        with engine.begin() as conn:
            for (table, column, key), values in rows.items():
                conn.execute(sa.text(f"UPDATE {table} SET {column} = :v WHERE {key} = :k"),
                             [{**e, "v": change(e["v"])} for e in values])  # fmt: skip

    w0, c0 = time.perf_counter(), time.process_time()
    write(lambda v: v + "+")
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    write(lambda v: v)
    n = sum(len(values) for values in rows.values())
    print(f"{'baseline: raw UPDATE':<26} {wall:8.3f} s  (CPU {cpu:.3f} s) of the same {n} {label}; "
          f"the cycle took {cycle['wall'] / wall:.0f}× (CPU {cycle['cpu'] / max(cpu, 1e-9):.0f}×)")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--changes", type=int, default=10_000)
    ap.add_argument("--initial", choices=("bulk", "cycle"), default="cycle")
    ap.add_argument("--url")
    args = ap.parse_args()
    print(f"load average at start      {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    engine = migrated(args.url, "sync.db")
    clock = SystemClock()
    crm = CrmService(engine, clock=clock)
    cfg = c.parse(c.DEFAULT_YAML)
    n, k = args.records, args.changes
    target_calls = math.ceil(k / 200) + 3

    t0 = time.perf_counter()
    ids = _load(crm, n)
    print(f"records                    {n} ({len(ids['Lead'])} leads, {len(ids['Contact'])} contacts), "
          f"loaded in {time.perf_counter() - t0:.0f} s")  # fmt: skip
    t0 = time.perf_counter()
    if args.initial == "bulk":
        _bulk_initial(engine, cfg, clock)
    else:
        while SyncService(engine, cfg, clock=clock).run()["counts"]["ma"]["create"]:
            pass
    with engine.connect() as conn:
        synced = conn.execute(sa.text("SELECT count(*) FROM sync_link")).scalar_one()
    print(f"synced state ({args.initial})      {synced} links in {time.perf_counter() - t0:.0f} s")

    def report(label: str, r: dict[str, Any], changes: int | None = None) -> None:
        rate = f"  {changes / r['wall']:8.0f} records/s" if changes else ""
        print(f"{label:<26} {r['wall']:8.3f} s  (CPU {r['cpu']:.3f} s, {r['cycles']} cycle(s)){rate}  "
              f"CRM calls: read {r['calls']['read']}, write {r['calls']['write']}"
              + (f" (target ≤ {target_calls})" if changes else "") + ("" if r["done"] else "  NOT DONE"))  # fmt: skip
        print(f"{'':<26} counts {r['counts'][-1] if r['cycles'] == 1 else r['counts']}")

    idle = _cycles(engine, cfg, clock, lambda: True)
    report("idle cycle", idle)
    assert _nothing_written(idle["counts"][0]), "the synced state is not settled"

    rng = random.Random(5)
    per_obj = {"Lead": k // 2, "Contact": k - k // 2}
    crm_edits = {obj: rng.sample(ids[obj], m) for obj, m in per_obj.items()}
    for obj, chosen in crm_edits.items():
        for start in range(0, len(chosen), 200):
            crm.update_many(obj, [{"Id": rid, "Title": f"部長-{rid}"} for rid in chosen[start : start + 200]])

    def crm_edits_arrived() -> bool:
        with engine.connect() as conn:
            got = conn.execute(sa.select(sa.func.count()).select_from(t.prospect)
                               .where(t.prospect.c.jobTitle.like("部長-%"))).scalar_one()  # fmt: skip
        return bool(int(got) == k)

    r = _cycles(engine, cfg, clock, crm_edits_arrived)
    report(f"{k} CRM edits → prospects", r, k)
    # the machine's pace in this run: the same 10k prospects written as raw SQL (one executemany, no
    # planning, agreed values or audit; a value that differs from the stored one, or SQLite would
    # write no page), so a loaded machine shows as a slower baseline; then the values put back
    _baseline(engine, r, "prospects", [("prospect", '"jobTitle"', "id", "\"jobTitle\" LIKE '部長-%'")])

    with engine.connect() as conn:
        pids = [row.id for row in conn.execute(sa.select(t.prospect.c.id).where(t.prospect.c.jobTitle.not_like("部長-%")))]  # fmt: skip
    chosen_pids = rng.sample(pids, k)
    prospects = ProspectService(engine, clock=clock)
    t0 = time.perf_counter()
    for pid in chosen_pids:
        prospects.update(pid, {"comments": f"問い合わせ {pid}"})
    print(f"{'(prospect edits made in)':<26} {time.perf_counter() - t0:8.1f} s")

    def ma_edits_arrived() -> bool:
        with engine.connect() as conn:
            got = sum(int(conn.execute(sa.text(f"SELECT count(*) FROM crm_{o} WHERE \"Description\" LIKE '問い合わせ %'")).scalar_one())
                      for o in ("lead", "contact"))  # fmt: skip
        return bool(got == k)

    r = _cycles(engine, cfg, clock, ma_edits_arrived)
    report(f"{k} prospect edits → CRM", r, k)
    # the same baseline for this direction: the 10k CRM records the cycle wrote, per object
    # (SystemModstamp untouched, so the echo cycle below sees only the connector's own writes)
    _baseline(engine, r, "CRM records", [(f"crm_{o}", '"Description"', '"Id"', '"Description" LIKE \'問い合わせ %\'')
                                         for o in ("lead", "contact")])  # fmt: skip
    echo = _cycles(engine, cfg, clock, lambda: True)
    report("echo cycle", echo)
    idle2 = _cycles(engine, cfg, clock, lambda: True)
    report("idle cycle", idle2)
    for label, out in (("echo", echo), ("idle", idle2)):
        if not _nothing_written(out["counts"][0]):
            print(f"!! the {label} cycle wrote something")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS                   {rss:8.0f} MB")
    print(f"load average at end        {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
