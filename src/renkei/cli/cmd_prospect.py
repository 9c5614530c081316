"""``renkei prospect``: create, read, update, recycle-bin and custom fields of prospects (v5 names)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from renkei.cli._common import JsonOpt, SetOpt, clock, emit, engine, handle_errors, parse_sets, print_table
from renkei.crm.schema import FieldDef
from renkei.marketing.service import ProspectService, parse_prospect_id, to_json
from renkei.store.dynamic import field_to_json

prospect_app = typer.Typer(
    help="Marketing prospects (Account Engagement API v5 field names).", no_args_is_help=True
)
field_app = typer.Typer(help="Prospect custom fields.", no_args_is_help=True)
prospect_app.add_typer(field_app, name="field")

_LIST_COLUMNS = ["id", "email", "firstName", "lastName", "company", "score", "grade", "updatedAt"]


def service() -> ProspectService:
    return ProspectService(engine(), clock=clock(), actor="cli")


def _show(record: dict[str, Any]) -> None:
    print_table(
        ({"field": k, "value": v} for k, v in to_json(record).items() if v is not None),
        ["field", "value"],
        title=f"prospect {record['id']}",
    )


@prospect_app.command("create")
@handle_errors
def create(values: SetOpt = None, as_json: JsonOpt = False) -> None:
    """Create a prospect: --set email=… (required) --set firstName=… …"""
    emit(to_json(service().create(parse_sets(values))), as_json, _show)


@prospect_app.command("get")
@handle_errors
def get(id_or_email: str, as_json: JsonOpt = False) -> None:
    """Show one prospect by id or email (the latest updated when several share the email)."""
    emit(to_json(service().find(id_or_email)), as_json, _show)


@prospect_app.command("update")
@handle_errors
def update(prospect_id: str, values: SetOpt = None, as_json: JsonOpt = False) -> None:
    """Change writable fields: --set field=value (field= blanks it)."""
    emit(to_json(service().update(parse_prospect_id(prospect_id), parse_sets(values))), as_json, _show)


@prospect_app.command("delete")
@handle_errors
def delete(prospect_id: str, as_json: JsonOpt = False) -> None:
    """Move a prospect to the recycle bin."""
    pid = parse_prospect_id(prospect_id)
    service().delete(pid)
    emit(
        {"id": pid, "isDeleted": True},
        as_json,
        lambda d: print(f"prospect {d['id']} moved to the recycle bin"),
    )


@prospect_app.command("undelete")
@handle_errors
def undelete(prospect_id: str, as_json: JsonOpt = False) -> None:
    """Restore a prospect from the recycle bin."""
    emit(to_json(service().undelete(parse_prospect_id(prospect_id))), as_json, _show)


@prospect_app.command("list")
@handle_errors
def list_(
    limit: Annotated[int, typer.Option(help="Most prospects to show.", min=0)] = 50,
    offset: Annotated[int, typer.Option(help="Skip this many first.", min=0)] = 0,
    deleted: Annotated[bool, typer.Option("--deleted", help="List the recycle bin instead.")] = False,
    order_by: Annotated[str, typer.Option(help="Field to sort by; -field for descending.")] = "id",
    as_json: JsonOpt = False,
) -> None:
    """List prospects (live ones, or the recycle bin with --deleted)."""
    rows = [
        to_json(r)
        for r in service().list(limit=limit, offset=offset, include_deleted=deleted, order_by=order_by)
    ]
    emit(rows, as_json, lambda data: print_table(data, _LIST_COLUMNS, title="prospects"))


@field_app.command("add")
@handle_errors
def field_add(
    name: str,
    type_: Annotated[
        str,
        typer.Option(
            "--type",
            help="text, textarea, longtextarea, email, phone, url, number, "
            "currency, percent, checkbox, date, datetime, picklist, multipicklist",
        ),
    ],
    length: Annotated[int | None, typer.Option(help="Length of a text field.")] = None,
    precision: Annotated[int | None, typer.Option(help="Digits of a number.")] = None,
    scale: Annotated[int | None, typer.Option(help="Decimal places of a number.")] = None,
    values: Annotated[str | None, typer.Option(help="Picklist values, comma-separated.")] = None,
    restricted: Annotated[
        bool, typer.Option("--restricted", help="Only the listed picklist values.")
    ] = False,
    label: Annotated[str | None, typer.Option(help="Label shown in the UI.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a prospect custom field (its name gets __c when missing)."""
    f: FieldDef = service().add_field(
        name, type_, length=length, precision=precision, scale=scale,
        values=values.split(",") if values else (), restricted=restricted, label=label,
    )  # fmt: skip
    emit(field_to_json(f), as_json, lambda d: print(f"prospect field {d['name']} ({d['type']}) added"))


def register(app: typer.Typer) -> None:
    app.add_typer(prospect_app, name="prospect")
