"""``renkei sync``, ``renkei connector`` and ``renkei config``: the CRM connector."""

from __future__ import annotations

import getpass
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from renkei.cli._common import JsonOpt, clock, dumps, emit, engine, handle_errors, print_table
from renkei.connector import config as c
from renkei.connector import settings
from renkei.connector.check import check_config
from renkei.crm.service import CrmService
from renkei.errors import ConfigError, InputError

sync_app = typer.Typer(help="Sync prospects ↔ leads and contacts.", no_args_is_help=True)
connector_app = typer.Typer(
    help="Connector set-up: connector.yaml and the CRM package fields.", no_args_is_help=True
)
config_app = typer.Typer(help="Check the connector configuration against both sides.", no_args_is_help=True)
explain_app = typer.Typer(help="Why a value is what it is.", no_args_is_help=True)
sync_app.add_typer(explain_app, name="explain")


def _svc() -> Any:
    return settings.service(engine(), clock())


def _summary(d: dict[str, Any]) -> None:
    counts = d.get("counts") or {}
    print(f"run {d.get('runId')}: {d.get('status')}; CRM {counts.get('crm')}, marketing {counts.get('ma')}, "
          f"links {counts.get('link')}, skipped {counts.get('skip')}, errors {len(d.get('errors') or [])}"
          + (f", tasks {counts['tasks']}" if "tasks" in counts else ""))  # fmt: skip


@sync_app.command("run")
@handle_errors
def run(as_json: JsonOpt = False) -> None:
    """Run one sync cycle."""
    emit(_svc().run(), as_json, _summary)


@sync_app.command("daemon")
@handle_errors
def daemon(interval: Annotated[float, typer.Option(help="Seconds between cycles.")] = 2.0,
           cycles: Annotated[int | None, typer.Option(help="Stop after this many cycles.")] = None,
           as_json: JsonOpt = False) -> None:  # fmt: skip
    """Keep syncing: a cycle every --interval seconds (one JSON line per cycle with --json)."""
    n = 0
    while cycles is None or n < cycles:
        out = _svc().run()
        if as_json:
            print(dumps(out).replace("\n", ""), flush=True)
        else:
            _summary(out)
        n += 1
        time.sleep(interval)


@sync_app.command("plan")
@handle_errors
def plan(as_json: JsonOpt = False) -> None:
    """Dry run of the next cycle: every create/update/delete/skip with fields and reasons; writes nothing."""
    out = _svc().plan()

    def human(d: dict[str, Any]) -> None:
        print_table([{**o, "fields": ", ".join(f"{f['field']}: {f['from']} → {f['value']} ({f['rule']})"
                                              for f in o.get("fields", []))} for o in d["operations"]],
                    ["action", "object", "recordId", "prospectId", "fields", "reason"])  # fmt: skip
        print(d["counts"])

    emit(out, as_json, human)


@explain_app.command("prospect")
@handle_errors
def explain(prospect_id: Annotated[int, typer.Argument(metavar="ID")],
            field: Annotated[str | None, typer.Option("--field", help="One field (prospect or CRM name).")] = None,
            as_json: JsonOpt = False) -> None:  # fmt: skip
    """For each field: values on both sides, the rule, the last write and why, and what the next cycle does."""
    out = _svc().explain(prospect_id, field)
    emit(out, as_json, lambda d: print_table(
        [{**f, "lastWrite": _last_write_text(f["lastWrite"]), "nextCycle": _next_cycle_text(f["nextCycle"])}
         for f in d["fields"]], ["field", "crmField", "rule", "marketingValue", "crmValue", "lastWrite", "nextCycle"]))  # fmt: skip


def _side(side: str) -> str:
    return "marketing" if side == "ma" else "CRM"


def _last_write_text(w: dict[str, Any] | None) -> str:
    """``run 3, 2026-11-23 09:00 → marketing: 'a' → 'b' (why)``; blank when nothing was written."""
    if not w:
        return ""
    what = f"created with {w['to']!r}" if w.get("action") == "create" else f"{w['from']!r} → {w['to']!r}"
    return f"run {w['runId']}, {str(w['at'])[:16].replace('T', ' ')} → {_side(w['writtenTo'])}: {what} ({w['why']})"


def _next_cycle_text(n: dict[str, Any] | None) -> str:
    """``→ CRM: 'b' (why)`` when the next cycle writes the field, else why not; blank when unlinked."""
    if not n:
        return "not linked"
    if n.get("write"):
        return f"→ {_side(n['write'])}: {n['value']!r} ({n['reason']})"
    return str(n["reason"])


@sync_app.command("rollback")
@handle_errors
def rollback(run_id: Annotated[int, typer.Argument(metavar="RUN_ID")], as_json: JsonOpt = False) -> None:
    """Restore every value a run overwrote, on both sides (itself audited as a run)."""
    emit(_svc().rollback(run_id), as_json, lambda d: print(f"run {d['runId']}: restored {d['restored']} values, "
                                                          f"skipped {len(d['skipped'])}"))  # fmt: skip


@sync_app.command("errors")
@handle_errors
def errors(
    all_: Annotated[bool, typer.Option("--all", help="Resolved ones too.")] = False, as_json: JsonOpt = False
) -> None:
    """Typed sync errors: validation, cap_reached, not_found, conflict, collision, unavailable."""
    rows = _svc().errors(include_resolved=all_)
    emit(
        rows,
        as_json,
        lambda d: print_table(
            d, ["id", "kind", "object", "record_id", "prospect_id", "field", "code", "message"]
        ),
    )


@sync_app.command("retry")
@handle_errors
def retry(error_id: Annotated[int | None, typer.Argument(metavar="ERROR_ID")] = None,
          all_: Annotated[bool, typer.Option("--all", help="Retry every open error.")] = False,
          as_json: JsonOpt = False) -> None:  # fmt: skip
    """Retry one error (or --all): its record is synced again in a cycle run now."""
    if error_id is None and not all_:
        raise InputError("give an ERROR_ID or --all", code="INVALID_ARGUMENT")
    out = _svc().retry(error_id)
    emit(out, as_json, lambda d: print(f"retried {d['retried']}; run {d['run']['runId']}"))


@sync_app.command("queue")
@handle_errors
def queue(as_json: JsonOpt = False) -> None:
    """Pending queued changes, the rate and the ETA."""
    emit(_svc().queue(), as_json, lambda d: print_table([d], list(d)))


@connector_app.command("init")
@handle_errors
def init(path: Annotated[Path | None, typer.Option(help="Where to write (default connector.yaml).")] = None,
         force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
         install_package: Annotated[bool, typer.Option(help="Also add the pi__ fields to the built-in CRM.")] = True,
         as_json: JsonOpt = False) -> None:  # fmt: skip
    """Write a commented default connector.yaml (AE's default mappings) and install the pi__ fields."""
    target = path or c.config_path()
    if target.exists() and not force:
        raise ConfigError(f"{target} exists (use --force to overwrite)")
    target.write_text(c.DEFAULT_YAML, encoding="utf-8")
    added = _install(engine()) if install_package else []
    emit({"path": str(target), "packageFieldsAdded": added}, as_json,
         lambda d: print(f"wrote {d['path']}; added {len(d['packageFieldsAdded'])} CRM fields"))  # fmt: skip


def _install(eng: Any) -> list[str]:
    crm = CrmService(eng, clock=clock())
    added = []
    for obj, fields in (
        ("Lead", c.PACKAGE_FIELDS),
        ("Contact", c.PACKAGE_FIELDS),
        ("Task", c.PACKAGE_TASK_FIELDS),
    ):
        existing = {f["name"] for f in crm.describe(obj)["fields"]}
        for name, kind, kw in fields:
            if name not in existing:
                crm.add_field(obj, name, kind, **kw)
                added.append(f"{obj}.{name}")
    return added


@connector_app.command("install-package")
@handle_errors
def install_package(as_json: JsonOpt = False) -> None:
    """Add the managed package's pi__ fields (score, grade, dates, UTM …) to Lead and Contact, and the
    activity key to Task."""
    if c.load().crm.type != "builtin":
        raise ConfigError("crm.type is salesforce: the pi__ fields are added in the org itself (install the "
                          "Account Engagement package, or create them in Setup); `renkei config check` then "
                          "confirms them")  # fmt: skip
    emit({"added": _install(engine())}, as_json, lambda d: print(f"added {len(d['added'])} fields"))


@connector_app.command("set")
@handle_errors
def set_(key: Annotated[str, typer.Argument(metavar="KEY")], value: Annotated[str, typer.Argument(metavar="VALUE")],
         as_json: JsonOpt = False) -> None:  # fmt: skip
    """Change a setting (validated, recorded with who and when): e.g. cap 10000, objects.Lead.filter "…",
    fields.company.rule crm_wins."""
    out = settings.set_value(engine(), clock(), key, value, actor=getpass.getuser())
    emit(out, as_json, lambda d: print(f"{d['key']}: {d['old']} → {d['new']}"))


@connector_app.command("show")
@handle_errors
def show(as_json: JsonOpt = False) -> None:
    """The effective configuration (connector.yaml or the defaults)."""
    cfg = c.load()
    emit(cfg.model_dump(mode="json"), as_json, lambda d: print(c.dump(cfg)))


@connector_app.command("test")
@handle_errors
def connection_test(
    salesforce: Annotated[
        Path | None,
        typer.Option("--salesforce", help="The org's settings in their own file (default: crm.salesforce "
                     "in connector.yaml, else ./salesforce.yaml)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Check the Salesforce org: credentials, API version, mapped objects and fields, API budget. Failures exit 1."""
    from renkei.connector.adapters.salesforce import (
        SalesforceClient,
        check_connection,
        load_salesforce_config,
    )

    cfg = c.load()
    if salesforce is None and cfg.crm.salesforce is not None:
        org = cfg.crm.salesforce
    elif salesforce is None and not Path("salesforce.yaml").exists():
        raise ConfigError("no Salesforce org configured: set crm.type: salesforce and crm.salesforce in "
                          f"{c.config_path()}, or pass --salesforce FILE")  # fmt: skip
    else:
        org = load_salesforce_config(salesforce or Path("salesforce.yaml"))
    client = SalesforceClient(org, clock=clock())
    try:
        checks = check_connection(client, {o: [f for _, f in cfg.mappings(o)] for o in c.CRM_OBJECTS})
    finally:
        client.close()
    out = {"ok": all(ch.ok for ch in checks), "checks": [ch.to_dict() for ch in checks]}
    emit(out, as_json, lambda d: print_table(d["checks"], ["name", "ok", "message"]))
    if not out["ok"]:
        raise typer.Exit(1)


@config_app.command("check")
@handle_errors
def check(as_json: JsonOpt = False) -> None:
    """Check connector.yaml against both sides: unknown fields, mismatched types and picklists, truncation,
    filters, mass-sync and cap warnings, creation gating. Errors exit 1."""
    cfg = c.load()
    out = check_config(engine(), cfg, clock().now(), settings.adapter_for(cfg, clock()))
    emit(out, as_json, lambda d: print_table([*d["errors"], *d["warnings"]], ["level", "code", "message"]))
    if out["errors"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(sync_app, name="sync")
    app.add_typer(connector_app, name="connector")
    app.add_typer(config_app, name="config")
