"""The connector's periodic job (see ``renkei.jobs``): one sync cycle every 2 seconds."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from renkei.clock import Clock
from renkei.jobs import PeriodicJob


def _cycle(engine: Engine, clock: Clock) -> dict[str, Any]:
    from renkei.connector.settings import service

    return service(engine, clock).run()


JOBS = [PeriodicJob("sync.cycle", 2, _cycle, "connector: sync prospects ↔ leads/contacts")]
