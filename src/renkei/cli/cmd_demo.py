"""``renkei demo load``: the Japanese demo org, with progress bars."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from renkei.cli._common import JsonOpt, clock, emit, engine, err_console, handle_errors, print_table
from renkei.marketing.demo import SIZES, load_demo

demo_app = typer.Typer(help="The demo org.", no_args_is_help=True)


@demo_app.command("load")
@handle_errors
def load(
    size: Annotated[str, typer.Option(help=f"One of: {', '.join(SIZES)}.")] = "small",
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same org.")] = 1,
    if_empty: Annotated[
        bool, typer.Option("--if-empty", help="Do nothing when the database already holds CRM records.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Load the demo org (Japanese companies, people, opportunities, prospects and their activity)."""
    with Progress(
        TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err_console, transient=as_json, disable=not err_console.is_terminal,
    ) as bars:  # fmt: skip
        tasks: dict[str, TaskID] = {}

        def progress(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = bars.add_task(step, total=max(total, 1))
            bars.update(tasks[step], completed=done, total=max(total, done, 1))

        result = load_demo(engine(), size, seed=seed, clock=clock(), if_empty=if_empty, progress=progress)
    emit(result.to_dict(), as_json, _human)


def _human(data: dict[str, object]) -> None:
    if data["skipped"]:
        print("the database already holds CRM records: demo org not loaded")
        return
    counts = data["counts"]
    assert isinstance(counts, dict)
    print_table(
        ({"records": k, "count": v} for k, v in counts.items()), ["records", "count"], title="demo org"
    )
    print(f"loaded {data['total']} records ({data['size']}, seed {data['seed']}) in {data['seconds']} s")


def register(app: typer.Typer) -> None:
    app.add_typer(demo_app, name="demo")
