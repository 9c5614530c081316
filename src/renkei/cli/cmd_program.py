"""``renkei program``: nurture programs (Engagement Studio)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from renkei.cli._common import JsonOpt, clock, emit, engine, handle_errors, print_table
from renkei.email.programs import ProgramService
from renkei.errors import InputError

program_app = typer.Typer(help="Nurture programs (Engagement Studio).", no_args_is_help=True)


def _service() -> ProgramService:
    return ProgramService(engine(), clock=clock())


@program_app.command("create")
@handle_errors
def create(
    name: Annotated[str, typer.Argument(help="Program name.")],
    definition: Annotated[Path, typer.Option("--definition", help="Program JSON (steps, start, schedule).")],
    lists: Annotated[list[int], typer.Option("--list", help="Recipient list id (repeatable).")],
    suppress: Annotated[list[int] | None, typer.Option("--suppress", help="Suppression list id.")] = None,
    paused: Annotated[bool, typer.Option(help="Create paused.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a program from a JSON definition."""
    try:
        data = json.loads(definition.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(
            f"cannot read program definition {definition}: {exc}", code="INVALID_PROGRAM"
        ) from None
    out = _service().create(name, data, lists, suppress or [], paused=paused)
    emit(out, as_json, lambda d: print(f"program {d['id']} created ({d['status']})"))


@program_app.command("show")
@handle_errors
def show(program_id: Annotated[int, typer.Argument()], as_json: JsonOpt = False) -> None:
    """A program with its per-step counts."""
    out = _service().get(program_id)
    emit(out, as_json, lambda d: print_table(
        [{"step": s, **c} for s, c in d["stepCounts"].items()], ["step", "done", "yes", "no", "waited", "end", "waiting"],
        title=f"program {d['id']}: {d['name']} ({d['status']})"))  # fmt: skip


@program_app.command("pause")
@handle_errors
def pause(program_id: Annotated[int, typer.Argument()], as_json: JsonOpt = False) -> None:
    """Pause a program (waits freeze; nobody advances)."""
    emit(_service().set_status(program_id, "paused"), as_json, lambda d: print(f"program {d['id']} paused"))


@program_app.command("resume")
@handle_errors
def resume(program_id: Annotated[int, typer.Argument()], as_json: JsonOpt = False) -> None:
    """Resume a paused program."""
    emit(_service().set_status(program_id, "running"), as_json, lambda d: print(f"program {d['id']} running"))


@program_app.command("run-once")
@handle_errors
def run_once(
    send: Annotated[bool, typer.Option(help="Also work the email send queue.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Advance every running program once (what the scheduler does), then send queued program email."""
    svc = _service()
    out = svc.run_once()
    if send:
        out["delivery"] = svc.email.work().to_dict()
    emit(out, as_json, lambda d: print(f"{d['programs']} programs: {d['enrolled']} enrolled, {d['advanced']} advanced, "
                                       f"{d['actions']} actions"))  # fmt: skip


@program_app.command("simulate")
@handle_errors
def simulate(
    program_id: Annotated[int, typer.Argument()],
    prospect_id: Annotated[int, typer.Argument()],
    assume: Annotated[
        list[str] | None,
        typer.Option(
            "--assume", help="KIND[:STEP]@HOURS, e.g. opened_email:s1@5 (it opens s1's email 5 h in)."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the path the prospect would take through the program (nothing is changed)."""
    parsed = []
    for item in assume or []:
        head, _, hours = item.partition("@")
        kind, _, step = head.partition(":")
        try:
            parsed.append((kind, step or None, float(hours or 0)))
        except ValueError:
            raise InputError(
                f"--assume expects KIND[:STEP]@HOURS, got {item!r}", code="INVALID_ARGUMENT"
            ) from None
    out = _service().simulate(program_id, prospect_id, assume=parsed)
    emit(out, as_json, lambda d: print_table(d["path"], ["step", "outcome", "at"]))


def register(app: typer.Typer) -> None:
    app.add_typer(program_app, name="program")
