"""``renkei crm``: the built-in CRM (Salesforce API names, ids, errors)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated, Any

import typer

from renkei.cli._common import (
    JsonOpt,
    SetOpt,
    clock,
    console,
    emit,
    engine,
    handle_errors,
    parse_sets,
    print_table,
)
from renkei.crm.service import CrmService, SaveResult, Watermark, to_api
from renkei.errors import InputError, NotFoundError, ValidationError

crm_app = typer.Typer(
    help="The built-in CRM: records, queries, describe, custom fields.", no_args_is_help=True
)
field_app = typer.Typer(help="Custom fields.", no_args_is_help=True)
crm_app.add_typer(field_app, name="field")


def _service() -> CrmService:
    return CrmService(engine(), clock=clock())


def _record_out(svc: CrmService, object_name: str, record: dict[str, Any]) -> dict[str, Any]:
    return to_api(record, svc.schema().object(object_name))


def _show_record(d: dict[str, Any]) -> None:
    print_table([{"field": k, "value": v} for k, v in d.items() if k != "attributes"], ["field", "value"])


@crm_app.command("create")
@handle_errors
def create(object_name: Annotated[str, typer.Argument(metavar="OBJECT")], sets: SetOpt = None,
           as_json: JsonOpt = False) -> None:  # fmt: skip
    """Create a record: renkei crm create Lead --set LastName=山田 --set Company=連携商事."""
    [result] = _service().create_many(object_name, [parse_sets(sets)], all_or_none=True)
    _save_result(result, as_json, lambda d: print(d["id"]))


def _save_result(result: SaveResult, as_json: bool, human: Callable[[dict[str, Any]], None]) -> None:
    """A write's ``{"id","success","errors"}``; a failure is also printed on stdout with --json
    (Salesforce's shape, for scripts) and raised so that the error line and exit code follow."""
    if result.success:
        emit(result.to_dict(), as_json, human)
        return
    if as_json:
        emit(result.to_dict(), True)
    if result.errors[0].code == "NOT_FOUND":
        raise NotFoundError(result.errors[0].message)
    raise ValidationError(result.errors)


@crm_app.command("get")
@handle_errors
def get(
    object_name: Annotated[str, typer.Argument(metavar="OBJECT")],
    record_id: Annotated[str, typer.Argument(metavar="ID")],
    fields: Annotated[str | None, typer.Option(help="Comma-separated fields.")] = None,
    deleted: Annotated[bool, typer.Option("--deleted", help="Also from the recycle bin.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """A record by id (15 or 18 characters)."""
    svc = _service()
    rec = svc.get(object_name, record_id, fields.split(",") if fields else None, include_deleted=deleted)
    emit(_record_out(svc, object_name, rec), as_json, _show_record)


@crm_app.command("update")
@handle_errors
def update(object_name: Annotated[str, typer.Argument(metavar="OBJECT")],
           record_id: Annotated[str, typer.Argument(metavar="ID")], sets: SetOpt = None,
           as_json: JsonOpt = False) -> None:  # fmt: skip
    """Update fields of a record (only the fields given change)."""
    values = parse_sets(sets)
    if not values:
        raise InputError("nothing to update: give --set Field=Value", code="INVALID_ARGUMENT")
    [result] = _service().update_many(object_name, [{**values, "Id": record_id}], all_or_none=True)
    _save_result(result, as_json, lambda d: print(f"{d['id']} updated"))


@crm_app.command("delete")
@handle_errors
def delete(object_name: Annotated[str, typer.Argument(metavar="OBJECT")],
           record_id: Annotated[str, typer.Argument(metavar="ID")], as_json: JsonOpt = False) -> None:  # fmt: skip
    """Move a record (and the children Salesforce deletes with it) to the recycle bin."""
    [result] = _service().delete_many(object_name, [record_id], all_or_none=True)
    _save_result(result, as_json, lambda d: print(f"{d['id']} deleted (recycle bin)"))


@crm_app.command("undelete")
@handle_errors
def undelete(object_name: Annotated[str, typer.Argument(metavar="OBJECT")],
             record_id: Annotated[str, typer.Argument(metavar="ID")], as_json: JsonOpt = False) -> None:  # fmt: skip
    """Restore a record from the recycle bin."""
    svc = _service()
    svc.undelete(object_name, record_id)
    emit({"id": svc.get(object_name, record_id, ["Id"])["Id"], "success": True, "errors": []}, as_json,
         lambda d: print(f"{d['id']} restored"))  # fmt: skip


@crm_app.command("merge")
@handle_errors
def merge(
    object_name: Annotated[str, typer.Argument(metavar="OBJECT")],
    master_id: Annotated[str, typer.Argument(metavar="MASTER_ID")],
    duplicate_ids: Annotated[list[str], typer.Argument(metavar="DUPLICATE_ID...")],
    as_json: JsonOpt = False,
) -> None:
    """Merge up to two duplicates into a master (Lead, Contact, Account)."""
    out = _service().merge(object_name, master_id, duplicate_ids)
    emit(out, as_json, lambda d: print(f"merged {', '.join(d['mergedRecordIds'])} into {d['id']}"))


@crm_app.command("convert-lead")
@handle_errors
def convert_lead(
    lead_id: Annotated[str, typer.Argument(metavar="LEAD_ID")],
    account_id: Annotated[str | None, typer.Option("--account-id", help="Existing account.")] = None,
    contact_id: Annotated[
        str | None, typer.Option("--contact-id", help="Existing contact (needs --account-id).")
    ] = None,
    opportunity_name: Annotated[
        str | None, typer.Option("--opportunity-name", help="Create an opportunity.")
    ] = None,
    converted_status: Annotated[str | None, typer.Option("--converted-status")] = None,
    owner_id: Annotated[str | None, typer.Option("--owner-id")] = None,
    overwrite_lead_source: Annotated[bool, typer.Option("--overwrite-lead-source")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Convert a lead into an account, a contact and optionally an opportunity."""
    out = _service().convert_lead(lead_id, account_id=account_id, contact_id=contact_id,
                                  opportunity_name=opportunity_name, converted_status=converted_status,
                                  owner_id=owner_id, overwrite_lead_source=overwrite_lead_source)  # fmt: skip
    emit(
        out.to_dict(),
        as_json,
        lambda d: print_table([d], ["leadId", "accountId", "contactId", "opportunityId"]),
    )


@crm_app.command("query")
@handle_errors
def query(
    soql: Annotated[str, typer.Argument(metavar="SOQL")],
    all_rows: Annotated[bool, typer.Option("--all", help="queryAll: include the recycle bin.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run a SOQL query: {"totalSize","done","records"}."""
    out = _service().query(soql, include_deleted=all_rows)

    def human(d: dict[str, Any]) -> None:
        rows = [{k: v for k, v in r.items() if k != "attributes"} for r in d["records"]]
        if rows:
            print_table(rows, list(rows[0]))
        console.print(f"totalSize: {d['totalSize']}")

    emit(out, as_json, human)


@crm_app.command("describe")
@handle_errors
def describe(object_name: Annotated[str, typer.Argument(metavar="OBJECT")], as_json: JsonOpt = False) -> None:
    """Salesforce-shaped describe of an object."""
    out = _service().describe(object_name)
    emit(out, as_json, lambda d: print_table(d["fields"], ["name", "label", "type", "length", "nillable", "custom"],
                                             title=d["name"]))  # fmt: skip


@crm_app.command("changes")
@handle_errors
def changes(
    object_name: Annotated[str, typer.Argument(metavar="OBJECT")],
    since: Annotated[
        str | None, typer.Option(help="Watermark time (ISO-8601); with --after-id for ties.")
    ] = None,
    after_id: Annotated[str | None, typer.Option("--after-id")] = None,
    limit: Annotated[int, typer.Option(help="Page size.")] = 2000,
    as_json: JsonOpt = False,
) -> None:
    """The change feed: records changed (deleted ones included) after a watermark."""
    mark = None
    if since:
        try:
            when = dt.datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError:
            raise InputError(f"--since expects ISO-8601, got {since!r}", code="INVALID_ARGUMENT") from None
        mark = Watermark(when if when.tzinfo else when.replace(tzinfo=dt.UTC), after_id or "")
    svc = _service()
    page = svc.changes_since(object_name, mark, limit=limit)
    obj = svc.schema().object(object_name)
    out = {"records": [to_api(r, obj) for r in page.records], "done": page.done,
           "watermark": page.watermark.to_dict() if page.watermark else None}  # fmt: skip
    emit(out, as_json, lambda d: print_table([{"Id": r["Id"], "SystemModstamp": r["SystemModstamp"],
                                               "IsDeleted": r["IsDeleted"]} for r in d["records"]],
                                             ["Id", "SystemModstamp", "IsDeleted"]))  # fmt: skip


@crm_app.command("purge-recycle-bin")
@handle_errors
def purge(
    days: Annotated[int, typer.Option(help="Older than this many days.")] = 15, as_json: JsonOpt = False
) -> None:
    """Hard-delete records that have been in the recycle bin longer than --days (default 15)."""
    emit(
        {"purged": _service().purge_recycle_bin(days)},
        as_json,
        lambda d: print(f"purged {d['purged']} records"),
    )


@field_app.command("add")
@handle_errors
def field_add(
    object_name: Annotated[str, typer.Argument(metavar="OBJECT")],
    api_name: Annotated[str, typer.Argument(metavar="API_NAME")],
    type_: Annotated[str, typer.Option("--type", help="text, textarea, longtextarea, email, phone, url, number, "
                                                      "currency, percent, checkbox, date, datetime, picklist, multipicklist")],
    length: Annotated[int | None, typer.Option(help="Text length.")] = None,
    precision: Annotated[int | None, typer.Option(help="Number precision (digits).")] = None,
    scale: Annotated[int | None, typer.Option(help="Number scale (decimals).")] = None,
    values: Annotated[str | None, typer.Option(help="Picklist values a,b,c.")] = None,
    restricted: Annotated[bool, typer.Option("--restricted", help="Restricted picklist.")] = False,
    label: Annotated[str | None, typer.Option(help="Label.")] = None,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Add a custom field (e.g. renkei crm field add Lead Billing_Contact__c --type checkbox)."""
    svc = _service()
    f = svc.add_field(object_name, api_name, type_, length=length, precision=precision, scale=scale,
                      values=values.split(",") if values else (), restricted=restricted, label=label)  # fmt: skip
    emit(f.to_describe(), as_json, lambda d: print(f"{object_name}.{d['name']} ({d['type']}) added"))


@crm_app.command("activities")
@handle_errors
def activities(
    object_name: Annotated[str, typer.Argument(metavar="OBJECT")],
    record_id: Annotated[str, typer.Argument(metavar="ID")],
    limit: Annotated[int, typer.Option(help="Most recent N.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """What sales sees on a lead or contact: the linked prospect's score, grade, dates and recent engagement."""
    import sqlalchemy as sa

    from renkei.store import tables as t
    from renkei.store.tables_sync import sync_link

    svc = _service()
    rec = svc.get(object_name, record_id, ["Id"])
    with svc.engine.connect() as conn:
        pid = conn.execute(sa.select(sync_link.c.prospect_id).where(sync_link.c.crm_id == rec["Id"])).scalar()
        if pid is None:
            raise InputError(f"{object_name} {rec['Id']} is not linked to a prospect", code="NOT_LINKED")
        p = t.prospect
        prospect = conn.execute(sa.select(p.c.id, p.c.score, p.c.grade, p.c.createdAt, p.c.lastActivityAt,
                                          p.c.firstActivityAt).where(p.c.id == pid)).mappings().one()  # fmt: skip
        va = t.visitor_activity
        rows = conn.execute(sa.select(va.c.id, va.c.type, va.c.typeName, va.c.details, va.c.createdAt)
                            .where(va.c.prospectId == pid).order_by(va.c.createdAt.desc(), va.c.id.desc())
                            .limit(limit)).mappings().all()  # fmt: skip
    from renkei.core.activities import type_label

    out = {"recordId": rec["Id"], "prospect": {"id": prospect["id"], "score": prospect["score"], "grade": prospect["grade"],
                                               "createdAt": prospect["createdAt"], "firstActivityAt": prospect["firstActivityAt"],
                                               "lastActivityAt": prospect["lastActivityAt"]},
           "activities": [{"id": r["id"], "type": r["type"], "typeLabel": type_label(r["type"]), "typeName": r["typeName"],
                           "details": r["details"], "createdAt": r["createdAt"]} for r in rows]}  # fmt: skip
    emit(out, as_json, lambda d: print_table(d["activities"], ["createdAt", "typeLabel", "typeName", "details"],
                                             title=f"score {d['prospect']['score']} grade {d['prospect']['grade']}"))  # fmt: skip


def register(app: typer.Typer) -> None:
    app.add_typer(crm_app, name="crm")
