"""Activity, scoring and grading commands.

Per-prospect commands join the ``renkei prospect`` group (``renkei prospect activities ID``,
``explain-score``, ``explain-grade``, ``adjust-score``); account-wide ones live under
``renkei activity``. The prospect group is imported from ``cmd_prospect`` directly, so the order
in which command modules are discovered does not matter.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from renkei.cli._common import JsonOpt, clock, emit, engine, handle_errors, parse_sets, print_table
from renkei.cli.cmd_prospect import prospect_app
from renkei.errors import InputError
from renkei.marketing.activity_config import apply_config
from renkei.marketing.activity_service import ActivityService
from renkei.marketing.automation_service import AutomationService
from renkei.marketing.importer import ProspectImporter, export_activities, export_prospects
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


# ---------------------------------------------------------------------------------------------
# Import and export


@prospect_app.command("import")
@handle_errors
def import_(
    path: Annotated[Path, typer.Argument(help="CSV file (UTF-8, UTF-8 with BOM, or Shift_JIS/CP932).")],
    map_: Annotated[list[str] | None, typer.Option("--map", help="Header=field (repeatable).")] = None,
    encoding: Annotated[
        str | None, typer.Option(help="Skip detection and decode with this encoding.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would happen; write nothing.")
    ] = False,
    keep_existing: Annotated[
        bool, typer.Option("--keep-existing", help="On existing prospects, fill blank fields only.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Import prospects from CSV: matched by email, created or updated, bad rows reported and skipped."""
    mapping = {k: v for k, v in parse_sets(map_).items() if v}
    report = ProspectImporter(engine(), clock=clock()).run(
        _read(path), mapping=mapping, encoding=encoding, dry_run=dry_run, keep_existing=keep_existing
    )

    def human(d: dict[str, Any]) -> None:
        verb = "would be" if d["dryRun"] else ""
        print(f"{d['rows']} rows ({d['encoding']}): {d['created']} {verb} created, {d['updated']} {verb} updated, "
              f"{len(d['errors'])} with errors")  # fmt: skip
        for e in d["errors"]:
            print(f"  row {e['row']} ({e['email'] or '-'}): {'; '.join(e['errors'])}")

    emit(report.to_dict(), as_json, human)
    if report.errors:
        raise typer.Exit(1)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", code="FILE_NOT_FOUND") from None


def _write(data: bytes, output: Path | None, count: int, as_json: bool) -> None:
    if output is None:
        sys.stdout.buffer.write(data)
        return
    output.write_bytes(data)
    emit(
        {"path": str(output), "rows": count},
        as_json,
        lambda d: print(f"{d['rows']} rows written to {d['path']}"),
    )


@prospect_app.command("export")
@handle_errors
def export(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
    bom: Annotated[bool, typer.Option("--bom", help="Start with a UTF-8 BOM (for Excel).")] = False,
    fields: Annotated[str | None, typer.Option(help="Comma-separated fields (default: all).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Export live prospects as CSV (v5 field names as headers)."""
    chosen = [f.strip() for f in fields.split(",") if f.strip()] if fields else None
    data, count = export_prospects(engine(), bom=bom, fields=chosen)
    _write(data, output, count, as_json)


@activity_app.command("export")
@handle_errors
def export_activity(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
    bom: Annotated[bool, typer.Option("--bom", help="Start with a UTF-8 BOM (for Excel).")] = False,
    prospect: Annotated[str | None, typer.Option(help="Only this prospect's activities.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Export visitor activities as CSV."""
    pid = parse_prospect_id(prospect) if prospect else None
    data, count = export_activities(engine(), bom=bom, prospect_id=pid)
    _write(data, output, count, as_json)


# ---------------------------------------------------------------------------------------------
# Configuration as data, rules


@activity_app.command("apply")
@handle_errors
def apply(
    path: Annotated[Path, typer.Argument(help="YAML file: scoring, grading, company_ranges, forms, …")],
    as_json: JsonOpt = False,
) -> None:
    """Create or update the scoring model, grading profiles, IP ranges, assets and rules from YAML."""
    try:
        config = yaml.safe_load(_read(path).decode("utf-8")) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML: {exc}", code="INVALID_CONFIG") from None
    result = apply_config(engine(), config, clock=clock())
    emit(result, as_json, lambda d: print("\n".join(f"{k}: {v}" for k, v in d.items())))


@activity_app.command("rules")
@handle_errors
def rules(as_json: JsonOpt = False) -> None:
    """List automation rules."""
    rows = [{"id": r["id"], "name": r["name"], "isPaused": r["isPaused"], **r["definition"]}
            for r in AutomationService(engine(), clock=clock()).rules()]  # fmt: skip
    emit(
        rows, as_json, lambda d: print_table(d, ["id", "name", "isPaused", "match", "repeat"], title="rules")
    )


@activity_app.command("rule-preview")
@handle_errors
def rule_preview(rule_id: int, as_json: JsonOpt = False) -> None:
    """Prospects the rule would act on now (works on paused rules; runs nothing)."""
    ids = AutomationService(engine(), clock=clock()).preview(rule_id)
    emit({"ruleId": rule_id, "prospectIds": ids}, as_json, lambda d: print(f"{len(ids)} prospects: {ids}"))


@activity_app.command("rule-pause")
@handle_errors
def rule_pause(
    rule_id: int,
    resume: Annotated[bool, typer.Option("--resume", help="Resume instead of pausing.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Pause (or with --resume, resume) an automation rule."""
    AutomationService(engine(), clock=clock()).set_paused(rule_id, not resume)
    emit(
        {"ruleId": rule_id, "isPaused": not resume},
        as_json,
        lambda d: print(f"rule {rule_id} paused={d['isPaused']}"),
    )


@activity_app.command("run-rules")
@handle_errors
def run_rules_cmd(as_json: JsonOpt = False) -> None:
    """Run every active rule over every live prospect now (the scheduled pass)."""
    ran = AutomationService(engine(), clock=clock()).run_all()
    emit(ran, as_json, lambda d: print(f"{len(d)} rule runs"))


@activity_app.command("regrade")
@handle_errors
def regrade_cmd(as_json: JsonOpt = False) -> None:
    """Regrade every live prospect from its grading profile."""
    changed = GradingService(engine(), clock=clock()).regrade_all()
    emit({"changed": changed}, as_json, lambda d: print(f"{d['changed']} grades changed"))


@activity_app.command("notifications")
@handle_errors
def notifications(user_id: int, as_json: JsonOpt = False) -> None:
    """In-app notifications of a marketing user (from notify-user actions)."""
    rows = AutomationService(engine(), clock=clock()).notifications(user_id)
    emit(
        rows,
        as_json,
        lambda d: print_table(
            d, ["id", "prospectId", "message", "isRead", "createdAt"], title="notifications"
        ),
    )


def register(app: typer.Typer) -> None:
    app.add_typer(activity_app, name="activity")
