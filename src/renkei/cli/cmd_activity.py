"""Activity, scoring and grading commands.

Per-prospect commands join the ``renkei prospect`` group (``renkei prospect activities ID``,
``explain-score``, ``explain-grade``, ``adjust-score``); account-wide ones live under
``renkei activity``. The prospect group is imported from ``cmd_prospect`` directly, so the order
in which command modules are discovered does not matter.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from renkei.cli._common import JsonOpt, clock, emit, engine, handle_errors, print_table
from renkei.cli.cmd_prospect import prospect_app
from renkei.marketing.activity_service import ActivityService
from renkei.marketing.scoring_service import GradingService, ScoringService
from renkei.marketing.service import parse_prospect_id

activity_app = typer.Typer(
    help="Visitor activities, scoring, grading and marketing assets.", no_args_is_help=True
)


def _timeline_human(rows: list[dict[str, Any]]) -> None:
    shown = [
        {
            "at": r["createdAt"].isoformat(timespec="seconds"),
            "what": r["typeLabel"] if r["kind"] == "activity" else "Page view",
            "on": r.get("typeName") or "",
            "details": r.get("details") or r.get("url") or "",
            "points": r["points"],
            "active": "yes" if r["movesLastActivity"] else "no",
        }
        for r in rows
    ]
    print_table(shown, ["at", "what", "on", "details", "points", "active"], title="activities")


@prospect_app.command("activities")
@handle_errors
def activities(
    prospect_id: str,
    limit: Annotated[int, typer.Option(help="Most entries to show.", min=1)] = 200,
    no_page_views: Annotated[bool, typer.Option("--no-page-views", help="Activities only.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """The prospect's timeline: activities and page views, newest first, with their points."""
    rows = ActivityService(engine(), clock=clock()).timeline(
        parse_prospect_id(prospect_id), limit=limit, page_views=not no_page_views
    )
    emit(rows, as_json, _timeline_human)


@prospect_app.command("explain-score")
@handle_errors
def explain_score(prospect_id: str, as_json: JsonOpt = False) -> None:
    """Every contribution to the prospect's score (they sum to the score)."""
    data = ScoringService(engine(), clock=clock()).explain(parse_prospect_id(prospect_id))

    def human(d: dict[str, Any]) -> None:
        rows = [
            {**c, "at": c["at"].isoformat(timespec="seconds") if c["at"] else ""} for c in d["contributions"]
        ]
        print_table(rows, ["at", "kind", "description", "points"], title=f"score {d['score']}")

    emit(data, as_json, human)


@prospect_app.command("explain-grade")
@handle_errors
def explain_grade(prospect_id: str, as_json: JsonOpt = False) -> None:
    """The prospect's grading profile, each criterion's state and the grade it gives."""
    data = GradingService(engine(), clock=clock()).explain(parse_prospect_id(prospect_id))

    def human(d: dict[str, Any]) -> None:
        title = f"grade {d['grade'] or 'hidden (D)'} — profile {d['profile']['name']}, start {d['start']}"
        print_table(
            d["criteria"], ["label", "field", "operator", "value", "weight", "state", "thirds"], title=title
        )

    emit(data, as_json, human)


@prospect_app.command("adjust-score")
@handle_errors
def adjust_score(
    prospect_id: str,
    points: Annotated[int, typer.Argument(help="Points to add (negative to subtract).")],
    reason: Annotated[str, typer.Option(help="Why (kept in the score ledger).")],
    as_json: JsonOpt = False,
) -> None:
    """Add or subtract points, recorded in the score ledger."""
    pid = parse_prospect_id(prospect_id)
    score = ScoringService(engine(), clock=clock(), actor="cli").adjust(pid, points, reason=reason)
    emit(
        {"prospectId": pid, "score": score},
        as_json,
        lambda d: print(f"prospect {d['prospectId']}: score {d['score']}"),
    )


@activity_app.command("rescore")
@handle_errors
def rescore(as_json: JsonOpt = False) -> None:
    """Rebuild every prospect's score from its activities, page views and ledger."""
    changed = ScoringService(engine(), clock=clock()).rescore_all()
    emit({"rescored": changed}, as_json, lambda d: print(f"{d['rescored']} scores changed"))


def register(app: typer.Typer) -> None:
    app.add_typer(activity_app, name="activity")
