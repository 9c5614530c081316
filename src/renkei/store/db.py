"""Engines and connections: ``RENKEI_DATABASE_URL`` picks the database (SQLite by default, in WAL mode)."""

from __future__ import annotations

import atexit
import datetime as dt
import logging
import os
import sqlite3
import threading
import urllib.parse
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


class _Checkpointer:
    """One background thread that copies SQLite write-ahead logs into their database files
    (``PRAGMA wal_checkpoint(PASSIVE)``: never blocks readers or writers), for ``deferred_checkpoint``."""

    #: Rows changed in deferred commits that make a checkpoint worth running (SQLite's own runs at
    #: 1,000 pages of WAL; a changed row spread over a large table is about a page, an index entry more).
    ROWS = 1000

    def __init__(self) -> None:
        self._pending: dict[str, int] = {}
        self._wanted: set[str] = set()
        self._running: set[str] = set()
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self.runs = 0  #: checkpoints run (for tests)

    def changed(self, path: str, rows: int) -> None:
        """``rows`` rows were committed to ``path`` without a checkpoint: ask for one once enough were."""
        with self._cv:
            self._pending[path] = self._pending.get(path, 0) + rows
            if self._pending[path] < self.ROWS:
                return
            del self._pending[path]
            self._wanted.add(path)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="renkei-checkpoint", daemon=True)
                self._thread.start()
            self._cv.notify_all()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._wanted:
                    self._cv.wait()
                paths, self._wanted = self._wanted, set()
                self._running |= paths
            for path in paths:
                try:
                    # mode=rw: a database file that went away (a test's) is not created anew
                    con = sqlite3.connect(f"file:{urllib.parse.quote(path)}?mode=rw", uri=True, timeout=0,
                                          isolation_level=None)  # fmt: skip
                    try:
                        con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                        self.runs += 1
                    finally:
                        con.close()
                except sqlite3.Error as exc:  # the file went away: nothing to copy
                    logging.getLogger(__name__).warning("checkpoint of %s failed: %s", path, exc)
            with self._cv:
                self._running -= paths
                self._cv.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Until every requested checkpoint has run (at exit, and for tests and benchmarks)."""
        with self._cv:
            return self._cv.wait_for(lambda: not self._wanted and not self._running, timeout)

    def settle(self, path: str) -> None:
        """Until no checkpoint of ``path`` is asked for or running: a writer that would add to the WAL
        while one runs waits for it, so the WAL is copied out and starts over (SQLite restarts it at
        the next write once every frame is in the file) instead of growing under a steady load."""
        with self._cv:
            self._cv.wait_for(lambda: path not in self._wanted and path not in self._running)


_CHECKPOINTS = _Checkpointer()
atexit.register(_CHECKPOINTS.wait)


def wait_for_checkpoints(timeout: float | None = None) -> bool:
    """Block until the background checkpoints ``deferred_checkpoint`` asked for have run."""
    return _CHECKPOINTS.wait(timeout)


@contextmanager
def deferred_checkpoint(conn: Connection) -> Iterator[None]:
    """SQLite: the commits made on ``conn`` inside the block do not run the automatic checkpoint
    (which, once the WAL passes 1,000 pages, copies every page the WAL holds into the database file
    and syncs both, inside the commit: ~0.45 s of a sync cycle's commit of 30,000 rows spread over
    million-row tables); after the block — once such blocks have changed 1,000 rows — a background
    thread runs the same checkpoint (``PASSIVE``) while the caller goes on (a smaller WAL is left to
    the next checkpoint, as SQLite's own rule leaves it). What is committed is as durable either way (with
    ``synchronous=NORMAL`` a commit never waited for the checkpoint's sync to be safe). Other
    databases: nothing."""
    database = conn.engine.url.database
    if not is_sqlite(conn) or not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    raw = conn.connection.driver_connection
    assert raw is not None
    path = os.path.abspath(database)
    _CHECKPOINTS.settle(path)  # at most one deferred checkpoint at a time: the WAL stays bounded
    raw.execute("PRAGMA wal_autocheckpoint=0")
    before = raw.total_changes
    try:
        yield
    finally:
        raw.execute("PRAGMA wal_autocheckpoint=1000")  # SQLite's default, for the pool's next user
        _CHECKPOINTS.changed(path, raw.total_changes - before)


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
