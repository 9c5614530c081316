"""``renkei db``: the store's migrations."""

from __future__ import annotations

import typer

from renkei.cli._common import JsonOpt, emit, handle_errors
from renkei.store import migrate
from renkei.store.db import database_url

db_app = typer.Typer(help="Database: migrations.", no_args_is_help=True)


@db_app.command("upgrade")
@handle_errors
def upgrade(as_json: JsonOpt = False) -> None:
    """Apply every pending migration (all heads) to RENKEI_DATABASE_URL."""
    url = database_url()
    before = migrate.pending(url) if _exists(url) else {"(new database)"}
    migrate.upgrade(url)
    safe = url.split("@")[-1] if "@" in url else url
    emit(
        {"database": safe, "applied": sorted(before), "status": "up to date"},
        as_json,
        lambda d: print(f"database {d['database']} is up to date"),
    )


def _exists(url: str) -> bool:
    if url.startswith("sqlite:///"):
        from pathlib import Path

        path = url.removeprefix("sqlite:///")
        return path == ":memory:" or Path(path).exists()
    return True


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
