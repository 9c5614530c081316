"""Periodic jobs of the email feature (see ``renkei.jobs``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from renkei.clock import Clock
from renkei.jobs import PeriodicJob


def _work_queue(engine: Engine, clock: Clock) -> dict[str, Any]:
    from renkei.email.service import EmailService

    return EmailService(engine, clock=clock).work().to_dict()


def _run_programs(engine: Engine, clock: Clock) -> dict[str, Any]:
    from renkei.email.programs import ProgramService

    return ProgramService(engine, clock=clock).run_once()


JOBS = [
    PeriodicJob("email.work", 10, _work_queue, "send due queued email (scheduled list emails included)"),
    PeriodicJob("program.run", 60, _run_programs, "advance nurture programs"),
]
