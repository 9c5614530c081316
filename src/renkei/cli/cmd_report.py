"""``renkei report``: built-in and saved reports (JSON, table or CSV) and the marketing calendar."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from renkei.cli._common import JsonOpt, clock, emit, engine, handle_errors, print_table
from renkei.errors import InputError
from renkei.segments.reports import ReportService, marketing_calendar

report_app = typer.Typer(
    help="Reports on marketing and CRM data, and the marketing calendar.", no_args_is_help=True
)


def service() -> ReportService:
    return ReportService(engine(), clock=clock())


@report_app.command("list")
@handle_errors
def list_(as_json: JsonOpt = False) -> None:
    """Built-in and saved reports."""
    emit(service().reports(), as_json, lambda rows: print_table(rows, ["name", "kind", "title"]))


@report_app.command("run")
@handle_errors
def run(
    name: str,
    csv: Annotated[bool, typer.Option("--csv", help="Print CSV instead of a table.")] = False,
    bom: Annotated[bool, typer.Option("--bom", help="Start the CSV with a UTF-8 BOM (for Excel).")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the CSV to this file.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a report by name: a table, --json, or --csv [--bom] [--output FILE]."""
    report = service().run(name)
    if csv or output is not None:
        text = report.to_csv(bom=bom)
        if output is not None:
            output.write_text(text, encoding="utf-8", newline="")
            emit(
                {"name": name, "rows": len(report.rows), "output": str(output)},
                as_json,
                lambda d: print(f"{d['rows']} rows written to {d['output']}"),
            )
        else:
            sys.stdout.write(text)
        return
    emit(report.to_dict(), as_json, lambda d: print_table(d["rows"], d["columns"], title=d["title"]))


@report_app.command("save")
@handle_errors
def save(
    name: str,
    rule: Annotated[str | None, typer.Option("--rule", help="Rule text filtering prospects.")] = None,
    group_by: Annotated[
        list[str] | None, typer.Option("--group-by", help="Prospect field or scoreBand (repeatable).")
    ] = None,
    measure: Annotated[
        list[str] | None, typer.Option("--measure", help="count, sum:FIELD or avg:FIELD (repeatable).")
    ] = None,
    description: Annotated[str | None, typer.Option(help="Title shown in lists.")] = None,
    soql: Annotated[str | None, typer.Option("--soql", help="A CRM-side report: a SOQL query.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Save (or replace) a report over prospects, or a CRM-side report (--soql)."""
    saved = service().save(
        name,
        rule=rule,
        group_by=group_by or [],
        measures=measure or ["count"],
        description=description,
        soql=soql,
    )
    emit(saved, as_json, lambda d: print(f"report {d['name']} saved"))


@report_app.command("delete")
@handle_errors
def delete(name: str, as_json: JsonOpt = False) -> None:
    """Delete a saved report."""
    service().delete(name)
    emit({"name": name, "deleted": True}, as_json, lambda d: print(f"report {name} deleted"))


def _date(value: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InputError(f"{option} expects YYYY-MM-DD, got {value!r}", code="INVALID_ARGUMENT") from None


@report_app.command("calendar")
@handle_errors
def calendar(
    start: Annotated[str, typer.Option("--start", help="First day, YYYY-MM-DD.")],
    end: Annotated[str, typer.Option("--end", help="Last day, YYYY-MM-DD.")],
    as_json: JsonOpt = False,
) -> None:
    """The marketing calendar: scheduled list emails, campaign starts and ends, by date."""
    items: list[dict[str, Any]] = marketing_calendar(engine(), _date(start, "--start"), _date(end, "--end"))
    emit(items, as_json, lambda rows: print_table(rows, ["date", "kind", "id", "title"]))


def register(app: typer.Typer) -> None:
    app.add_typer(report_app, name="report")
