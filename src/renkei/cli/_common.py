"""Shared pieces of the CLI: ``--json``, output, errors → exit codes, the store for a command."""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import json
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import Engine

from renkei.clock import Clock, SystemClock
from renkei.errors import InputError, RenkeiError, RetriableError
from renkei.store.db import get_engine

P = ParamSpec("P")
R = TypeVar("R")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Field=Value (repeatable). Use Field= to blank a field."),
]

console = Console()
err_console = Console(stderr=True)

EXIT_OK, EXIT_INPUT, EXIT_USAGE, EXIT_RETRY, EXIT_INTERNAL = 0, 1, 2, 3, 4


def _default(o: Any) -> Any:
    if isinstance(o, dt.datetime):
        from renkei.clock import sf_datetime

        return sf_datetime(o)
    if isinstance(o, dt.date):
        return o.isoformat()
    if isinstance(o, decimal.Decimal):
        return float(o)
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    if hasattr(o, "to_dict"):
        return o.to_dict()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def dumps(data: Any) -> str:
    return json.dumps(data, default=_default, ensure_ascii=False, indent=2)


def emit(data: Any, as_json: bool, human: Callable[[Any], None] | None = None) -> None:
    """Print ``data`` as JSON, or through ``human`` (default: JSON too, pretty)."""
    if as_json or human is None:
        sys.stdout.write(dumps(data) + "\n")
    else:
        human(data)


def print_table(rows: Iterable[Mapping[str, Any]], columns: list[str], title: str | None = None) -> None:
    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    console.print(table)


def fail(message: str, code: int = EXIT_INPUT) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn renkei's errors into one clear stderr line and the documented exit code."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except InputError as exc:
            raise fail(str(exc), EXIT_INPUT) from None
        except RetriableError as exc:
            raise fail(str(exc), EXIT_RETRY) from None
        except RenkeiError as exc:
            raise fail(str(exc), EXIT_INTERNAL) from None

    return wrapper


def parse_sets(values: list[str] | None) -> dict[str, str | None]:
    """``--set Field=Value`` pairs; ``Field=`` means blank (None)."""
    out: dict[str, str | None] = {}
    for item in values or []:
        if "=" not in item:
            raise InputError(f"--set expects Field=Value, got {item!r}", code="INVALID_ARGUMENT")
        key, _, value = item.partition("=")
        key = key.strip()
        if not key:
            raise InputError(f"--set has an empty field name in {item!r}", code="INVALID_ARGUMENT")
        out[key] = value if value != "" else None
    return out


def engine() -> Engine:
    return get_engine()


def clock() -> Clock:
    return SystemClock()
