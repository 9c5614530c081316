"""Periodic work of segmentation: keep dynamic lists current (incremental refresh)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from renkei.clock import Clock
from renkei.jobs import PeriodicJob
from renkei.segments.lists import SegmentService


def refresh_lists(engine: Engine, clock: Clock) -> dict[str, Any]:
    results = SegmentService(engine, clock=clock).refresh()
    return {
        "lists": len(results),
        "added": sum(r.added for r in results),
        "removed": sum(r.removed for r in results),
    }


JOBS = [PeriodicJob("lists.refresh", 60, refresh_lists, "Incremental refresh of every dynamic list")]
