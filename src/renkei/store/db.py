"""Engines and connections: ``RENKEI_DATABASE_URL`` picks the database (SQLite by default, in WAL mode)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

DEFAULT_URL = "sqlite:///./renkei.db"


def database_url(url: str | None = None) -> str:
    raw = url or os.environ.get("RENKEI_DATABASE_URL") or DEFAULT_URL
    # Accept the plain libpq spelling; renkei talks to PostgreSQL through psycopg 3.
    if raw.startswith("postgresql://") or raw.startswith("postgres://"):
        raw = "postgresql+psycopg://" + raw.split("://", 1)[1]
    return raw


def is_sqlite(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "sqlite"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


_ENGINES: dict[str, Engine] = {}


def make_engine(url: str | None = None, **kw: Any) -> Engine:
    """A new engine for ``url`` (or the environment's), with renkei's connection settings."""
    resolved = database_url(url)
    if resolved.startswith("sqlite"):
        engine = sa.create_engine(resolved, connect_args={"timeout": 30}, **kw)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    else:
        kw.setdefault("pool_pre_ping", True)
        engine = sa.create_engine(resolved, **kw)
    return engine


def get_engine(url: str | None = None) -> Engine:
    """A process-wide engine per URL (the CLI and the web app share it)."""
    resolved = database_url(url)
    if resolved not in _ENGINES:
        _ENGINES[resolved] = make_engine(resolved)
    return _ENGINES[resolved]


def dispose_engines() -> None:
    for engine in _ENGINES.values():
        engine.dispose()
    _ENGINES.clear()


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction: committed on success, rolled back on any error (nothing half-written)."""
    with engine.begin() as conn:
        yield conn


class UTCDateTime(sa.types.TypeDecorator[dt.datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, whatever the database keeps."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use aware UTC datetimes")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)
