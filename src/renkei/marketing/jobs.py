"""Periodic jobs of the marketing-activity feature (see ``renkei.jobs``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from renkei.clock import Clock
from renkei.jobs import PeriodicJob


def _run_rules(engine: Engine, clock: Clock) -> dict[str, Any]:
    from renkei.marketing.automation_service import AutomationService

    return {"runs": len(AutomationService(engine, clock=clock).run_all())}


def _opportunity_events(engine: Engine, clock: Clock) -> dict[str, Any]:
    from renkei.marketing.activity_service import record_opportunity_events

    with engine.begin() as conn:
        return {"recorded": record_opportunity_events(conn, clock.now())}


def _decay(engine: Engine, clock: Clock) -> dict[str, Any]:
    """With decay on, scores drift as contributions age: rebuild them daily."""
    from renkei.marketing.scoring_service import ScoringService

    scoring = ScoringService(engine, clock=clock)
    if not scoring.model().decay:
        return {"rescored": 0, "decay": False}
    return {"rescored": scoring.rescore_all(), "decay": True}


def _regrade(engine: Engine, clock: Clock) -> dict[str, Any]:
    from renkei.marketing.scoring_service import GradingService

    return {"changed": GradingService(engine, clock=clock).regrade_all()}


JOBS = [
    PeriodicJob(
        "grading.regrade", 900, _regrade, "regrade every prospect (catches field edits made elsewhere)"
    ),
    PeriodicJob("automation.rules", 300, _run_rules, "run active automation rules over all prospects"),
    PeriodicJob(
        "activity.opportunities", 300, _opportunity_events, "record opportunity created/won/lost activities"
    ),
    PeriodicJob("scoring.decay", 86400, _decay, "rescore everyone daily when score decay is on"),
]
