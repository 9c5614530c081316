"""Engines and connections: ``RENKEI_DATABASE_URL`` picks the database (SQLite by default, in WAL mode)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, processors

from renkei.errors import ConfigError

DEFAULT_URL = "sqlite:///./renkei.db"


def database_url(url: str | None = None) -> str:
    raw = url or os.environ.get("RENKEI_DATABASE_URL") or DEFAULT_URL
    # Accept the plain libpq spelling; renkei talks to PostgreSQL through psycopg 3.
    if raw.startswith("postgresql://") or raw.startswith("postgres://"):
        raw = "postgresql+psycopg://" + raw.split("://", 1)[1]
    return raw


def is_sqlite(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "sqlite"


#: The page size of a new SQLite database (``RENKEI_SQLITE_PAGE_SIZE``; an existing file keeps its own):
#: SQLite's 4 KiB by default. A trade-off, measured at a million records (docs/performance.md, fifth
#: session): 2 KiB pages take ~0.3 s off a sync cycle writing 10,000 prospects spread over the table
#: (every page a cycle changes is written to the WAL and again at the checkpoint: half the bytes),
#: but make bulk work — the initial sync, a raw copy — 30–70 % slower.
DEFAULT_PAGE_SIZE = 4096


def _page_size() -> int:
    raw = os.environ.get("RENKEI_SQLITE_PAGE_SIZE", "").strip()
    if not raw:
        return DEFAULT_PAGE_SIZE
    size = int(raw) if raw.isdigit() else 0
    if size < 512 or size > 65536 or size & (size - 1):
        raise ConfigError(f"RENKEI_SQLITE_PAGE_SIZE must be a power of two from 512 to 65536, not {raw!r}")
    return size


def _sqlite_pragmas(dbapi_conn: Any, _record: Any, page_size: int = DEFAULT_PAGE_SIZE) -> None:
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA page_size={page_size}")  # takes effect only while the file is still empty
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
        page_size = _page_size()
        engine = sa.create_engine(resolved, connect_args={"timeout": 30}, **kw)
        sa.event.listen(
            engine, "connect", lambda dbapi_conn, record: _sqlite_pragmas(dbapi_conn, record, page_size)
        )
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


#: rows a bulk insert must add before ``analyze_if_grown`` looks at the table's statistics
ANALYZE_AFTER = 1000


def analyze_if_grown(engine: Engine, table: str, inserted: int) -> bool:
    """PostgreSQL: refresh a table's statistics when a bulk insert of ``inserted`` rows has at least
    doubled it (``ANALYZE``; a few calls, whatever the load's size). Until autovacuum gets to it —
    and it may be off — the planner takes a freshly loaded table for an empty or small one and can
    scan it whole: e.g. the sync's change feed and the connector's lookups on every idle cycle right
    after a large load or initial sync. Returns whether it analysed."""
    if engine.dialect.name != "postgresql" or inserted < ANALYZE_AFTER:
        return False
    with engine.connect() as conn:
        quoted = conn.dialect.identifier_preparer.quote(table)
        known = conn.execute(sa.text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:t)"),
                             {"t": quoted}).scalar()  # fmt: skip
        if known is not None and inserted < float(known):  # -1 / 0: never analysed
            return False
        conn.execute(sa.text(f"ANALYZE {quoted}"))
        conn.commit()
    return True


def row_dicts(result: sa.CursorResult[Any]) -> list[dict[str, Any]]:
    """A result's rows as dicts: plain tuples zipped with the column names (what ``dict(mapping_row)``
    gives, for two thirds of its cost — felt by a sync cycle reading 10,000 rows)."""
    keys = tuple(result.keys())
    return [dict(zip(keys, row, strict=True)) for row in result]


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction: committed on success, rolled back on any error (nothing half-written)."""
    with engine.begin() as conn:
        yield conn


_UTC = dt.UTC
_from_iso = dt.datetime.fromisoformat
_combine = dt.datetime.combine
#: Instants SQLite's fused bind processor must write as SQLAlchemy's own does before it is used.
_PROBES = (
    dt.datetime(2026, 11, 23, 10, 43, 12, 123456, tzinfo=_UTC),
    dt.datetime(987, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=9))),
)


def _aware_utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store; use aware UTC datetimes")
    return value.astimezone(_UTC)


def _utc_to_text(value: dt.datetime | None) -> str | None:
    """An aware datetime as the naive UTC text SQLAlchemy's SQLite ``DATETIME`` writes."""
    if value is None:
        return None
    v = _aware_utc(value)
    # %-formatting: half the time of the f-string with format specs
    return "%04d-%02d-%02d %02d:%02d:%02d.%06d" % (v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond)  # noqa: UP031  # fmt: skip


def _utc_to_driver(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else _aware_utc(value)


def _utc_from_text(value: Any) -> dt.datetime | None:
    """SQLite's text as an aware UTC datetime, as SQLAlchemy's ``fromisoformat`` followed by
    ``process_result_value`` gives it."""
    if value is None:
        return None
    parsed = _from_iso(value)
    return _combine(parsed, parsed.time(), _UTC) if parsed.tzinfo is None else parsed.astimezone(_UTC)


def _utc_from_driver(value: dt.datetime | None) -> dt.datetime | None:
    """A driver's datetime (psycopg's: aware, in the session's zone) as an aware UTC datetime.
    ``combine`` gives what ``replace(tzinfo=UTC)`` does for a fraction of its cost (``replace`` parses
    keyword arguments: ~1 µs a value here)."""
    if value is None:
        return None
    return _combine(value, value.time(), _UTC) if value.tzinfo is None else value.astimezone(_UTC)


class UTCDateTime(sa.types.TypeDecorator[dt.datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, whatever the database keeps.

    ``process_bind_param``/``process_result_value`` say what it does; ``bind_processor`` and
    ``result_processor`` do the same with the driver type's own conversion in one function per
    value when that conversion is one they know (SQLite's text, psycopg's datetimes), and without
    ``replace(tzinfo=…)``: the generic pair cost most of reading a CRM row (10,000 rows with three
    date-times: ~0.1 s)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        value = _aware_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: sa.Dialect) -> dt.datetime | None:
        return _utc_from_driver(value)

    def bind_processor(self, dialect: sa.Dialect) -> Any:
        inner = self.impl_instance.bind_processor(dialect)
        if dialect.name == "sqlite":
            naive = [None if inner is None else inner(self.process_bind_param(p, dialect)) for p in _PROBES]
            if naive == [_utc_to_text(p) for p in _PROBES]:
                return _utc_to_text
        elif inner is None:
            return _utc_to_driver
        return super().bind_processor(dialect)

    def result_processor(self, dialect: sa.Dialect, coltype: Any) -> Any:
        inner = self.impl_instance.result_processor(dialect, coltype)
        if dialect.name == "sqlite":
            if inner is processors.str_to_datetime:
                return _utc_from_text
        elif inner is None:
            return _utc_from_driver
        return super().result_processor(dialect, coltype)
