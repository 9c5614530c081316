"""``renkei list``: dynamic, static and suppression lists over the rule language."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from renkei.cli._common import JsonOpt, clock, console, emit, engine, handle_errors, print_table
from renkei.errors import InputError
from renkei.segments.lists import SegmentService

list_app = typer.Typer(help="Prospect lists: dynamic (rule-kept), static, suppression.", no_args_is_help=True)

_COLUMNS = ["id", "name", "kind", "isSuppression", "memberCount", "refreshedAt"]


def service() -> SegmentService:
    return SegmentService(engine(), clock=clock())


def _show(data: dict[str, Any]) -> None:
    print_table(({"field": k, "value": v} for k, v in data.items() if k != "rule"), ["field", "value"])
    if data.get("rule"):
        console.print(data["rule"], highlight=False, markup=False)


def _ids(values: list[str]) -> list[int]:
    out = []
    for v in values:
        if not v.strip().isdigit():
            raise InputError(f"not a prospect id: {v!r}", code="MALFORMED_ID")
        out.append(int(v))
    return out


@list_app.command("create")
@handle_errors
def create(
    name: str,
    rule: Annotated[str | None, typer.Option("--rule", help="Rule text (docs/rules.md).")] = None,
    static: Annotated[bool, typer.Option("--static", help="A static list (rule fills it once).")] = False,
    suppression: Annotated[
        bool, typer.Option("--suppression", help="Mark it as a suppression list.")
    ] = False,
    description: Annotated[str | None, typer.Option(help="Free text.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a list: dynamic with --rule, or --static (optionally seeded by --rule)."""
    created = service().create(
        name, rule=rule, static=static, suppression=suppression, description=description
    )
    emit(created, as_json, _show)


@list_app.command("show")
@handle_errors
def show(list_id: int, as_json: JsonOpt = False) -> None:
    """One list with its kind, rule and member count."""
    emit(service().get(list_id), as_json, _show)


@list_app.command("ls")
@handle_errors
def ls(as_json: JsonOpt = False) -> None:
    """Every list with its kind and member count."""
    emit(service().lists(), as_json, lambda rows: print_table(rows, _COLUMNS))


@list_app.command("members")
@handle_errors
def members(
    list_id: int,
    limit: Annotated[int, typer.Option(help="Most members to show.", min=0)] = 1000,
    offset: Annotated[int, typer.Option(help="Skip this many first.", min=0)] = 0,
    as_json: JsonOpt = False,
) -> None:
    """The prospects on a list, by prospect id."""
    rows = service().members(list_id, limit=limit, offset=offset)
    emit(rows, as_json, lambda r: print_table(r, ["id", "email", "firstName", "lastName", "score", "grade"]))


@list_app.command("refresh")
@handle_errors
def refresh(
    list_id: Annotated[int | None, typer.Argument(help="One list; all dynamic lists when left out.")] = None,
    full: Annotated[bool, typer.Option("--full", help="Re-evaluate every prospect.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Bring dynamic lists up to date (incrementally unless --full)."""
    results = [r.to_dict() for r in service().refresh(list_id, full=full)]
    emit(
        results,
        as_json,
        lambda rows: print_table(rows, ["listId", "mode", "evaluated", "added", "removed", "memberCount"]),
    )


@list_app.command("explain")
@handle_errors
def explain_(list_id: int, prospect_id: int, as_json: JsonOpt = False) -> None:
    """Which predicates of the list's rule a prospect meets and which it does not."""

    def human(data: dict[str, Any]) -> None:
        verdict = "matches" if data["matches"] else "does not match"
        member = "is" if data["isMember"] else "is not"
        console.print(
            f"prospect {prospect_id} {verdict} list {list_id} (and {member} a member)", markup=False
        )
        _tree(data["explanation"], 0)

    emit(service().explain(list_id, prospect_id), as_json, human)


def _tree(node: dict[str, Any], depth: int) -> None:
    mark = "✓" if node["matched"] else "✗"
    console.print(f"{'  ' * depth}{mark} {node['rule']}", markup=False, highlight=False)
    for child in node.get("children", []):
        _tree(child, depth + 1)


@list_app.command("add")
@handle_errors
def add(list_id: int, prospect_ids: list[str], as_json: JsonOpt = False) -> None:
    """Add prospects to a static list."""
    n = service().add(list_id, _ids(prospect_ids))
    emit({"listId": list_id, "added": n}, as_json, lambda d: print(f"{d['added']} prospects added"))


@list_app.command("remove")
@handle_errors
def remove(list_id: int, prospect_ids: list[str], as_json: JsonOpt = False) -> None:
    """Remove prospects from a static list."""
    n = service().remove(list_id, _ids(prospect_ids))
    emit({"listId": list_id, "removed": n}, as_json, lambda d: print(f"{d['removed']} prospects removed"))


@list_app.command("set-rule")
@handle_errors
def set_rule(
    list_id: int, rule: Annotated[str, typer.Option("--rule", help="Rule text.")], as_json: JsonOpt = False
) -> None:
    """Replace a dynamic list's rule (the list is refreshed fully)."""
    emit(service().set_rule(list_id, rule), as_json, _show)


@list_app.command("count")
@handle_errors
def count(rule: Annotated[str, typer.Option("--rule", help="Rule text.")], as_json: JsonOpt = False) -> None:
    """How many live prospects match a rule now (nothing is stored)."""
    emit({"count": service().count(rule)}, as_json, lambda d: print(d["count"]))


def register(app: typer.Typer) -> None:
    app.add_typer(list_app, name="list")
