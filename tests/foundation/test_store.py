from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from renkei.store import migrate
from renkei.store.db import UTCDateTime
from renkei.store.tables import setting


def test_migrated_database_has_every_table(engine: Engine) -> None:
    names = set(sa.inspect(engine).get_table_names())
    assert {"crm_lead", "crm_contact", "prospect", "visitor_activity"} <= names


def test_datetimes_come_back_aware_utc(engine: Engine) -> None:
    when = dt.datetime(2026, 4, 1, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=9)))
    with engine.begin() as conn:
        conn.execute(setting.insert().values(key="k", value={"a": 1}, updatedAt=when))
        got = conn.execute(sa.select(setting.c.updatedAt)).scalar_one()
    assert got == when and got.tzinfo is not None and got.utcoffset() == dt.timedelta(0)


def test_no_pending_migrations_after_upgrade(db_url: str) -> None:
    assert migrate.pending(db_url) == set()


class _GenericUTCDateTime(UTCDateTime):
    """UTCDateTime through the TypeDecorator's generic processing (what the fused processors replace)."""

    cache_ok = True
    bind_processor = sa.types.TypeDecorator.bind_processor  # type: ignore[assignment]
    result_processor = sa.types.TypeDecorator.result_processor  # type: ignore[assignment]


_PAIR = sa.Table(
    "utc_pair_test", sa.MetaData(), sa.Column("k", sa.Integer, primary_key=True),
    sa.Column("fast", UTCDateTime()), sa.Column("generic", _GenericUTCDateTime()),
)  # fmt: skip


def _read_both(conn: sa.Connection) -> list[tuple[Any, Any]]:
    """(fast, generic) per row: the value read, or the error's type and text."""

    def one(column: sa.Column[Any], k: int) -> Any:
        try:
            return conn.execute(sa.select(column).where(_PAIR.c.k == k)).scalar_one()
        except Exception as exc:  # a malformed stored value fails the same way through both
            return (type(exc).__name__, str(exc).split("\n")[0])

    keys = [r.k for r in conn.execute(sa.select(_PAIR.c.k).order_by(_PAIR.c.k))]
    return [(one(_PAIR.c.fast, k), one(_PAIR.c.generic, k)) for k in keys]


def test_fused_date_time_processing_stores_and_reads_what_the_generic_one_does(engine: Engine) -> None:
    zones = [dt.UTC, dt.timezone(dt.timedelta(hours=9)), dt.timezone(dt.timedelta(hours=-5, minutes=-30))]
    instants = [dt.datetime(2026, 11, 23, 10, 43, 12, 123456, tzinfo=z) for z in zones]
    instants += [dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.datetime(987, 6, 5, 4, 3, 2, 1, tzinfo=zones[1])]
    fused = UTCDateTime().dialect_impl(engine.dialect)
    for proc in (fused.bind_processor(engine.dialect), fused.result_processor(engine.dialect, None)):
        assert proc is not None and proc.__module__ == "renkei.store.db"  # not the TypeDecorator's pair
    _PAIR.create(engine)
    try:
        with engine.begin() as conn:
            conn.execute(_PAIR.insert(), [{"k": k, "fast": w, "generic": w} for k, w in enumerate(instants)])
            conn.execute(_PAIR.insert().values(k=99, fast=None, generic=None))
            stored = conn.execute(
                sa.select(sa.cast(_PAIR.c.fast, sa.Text), sa.cast(_PAIR.c.generic, sa.Text)).order_by(
                    _PAIR.c.k
                )
            ).all()
            assert all(a == b for a, b in stored)
            got = _read_both(conn)
            assert got == [(w, w) for w in instants] + [(None, None)]
            assert all(a.tzinfo is dt.UTC and b.tzinfo is dt.UTC for a, b in got[:-1])
            for column in ("fast", "generic"):
                with pytest.raises(sa.exc.StatementError, match="naive datetime"):
                    conn.execute(_PAIR.insert().values(k=100, **{column: dt.datetime(2026, 1, 1)}))
        if (
            engine.dialect.name == "sqlite"
        ):  # text written by others: offsets, Z, no fraction, a date alone, junk
            texts = ["2026-11-23 10:43:12", "2026-11-23T10:43:12.5Z", "2026-11-23 10:43:12.123456+09:00",
                     "2026-11-23", "2026-11-23 10:43", "2026-11-23123456", "2026-11-23 10:43:12.1234567", "x"]  # fmt: skip
            with engine.begin() as conn:
                conn.execute(_PAIR.delete())
                conn.execute(_PAIR.insert(), [{"k": k} for k in range(len(texts))])
                for k, text in enumerate(texts):
                    conn.exec_driver_sql(
                        "UPDATE utc_pair_test SET fast = ?, generic = ? WHERE k = ?", (text, text, k)
                    )
                got = _read_both(conn)
            assert [a == b for a, b in got] == [True] * len(texts)
            assert got[1][0] == dt.datetime(2026, 11, 23, 10, 43, 12, 500000, tzinfo=dt.UTC)
            assert got[2][0] == dt.datetime(2026, 11, 23, 1, 43, 12, 123456, tzinfo=dt.UTC)
            assert got[-1][0][0] == "ValueError"
    finally:
        _PAIR.drop(engine)


def test_a_new_sqlite_database_takes_the_page_size_setting_and_an_existing_one_keeps_its_own(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from renkei.errors import ConfigError
    from renkei.store.db import DEFAULT_PAGE_SIZE, make_engine

    def page_size(path: Any) -> int:
        engine = make_engine(f"sqlite:///{path}")
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("CREATE TABLE IF NOT EXISTS t (x INTEGER)"))
                conn.commit()
                return int(conn.execute(sa.text("PRAGMA page_size")).scalar_one())
        finally:
            engine.dispose()

    monkeypatch.delenv("RENKEI_SQLITE_PAGE_SIZE", raising=False)
    assert page_size(tmp_path / "new.db") == DEFAULT_PAGE_SIZE == 4096
    monkeypatch.setenv("RENKEI_SQLITE_PAGE_SIZE", "2048")
    assert page_size(tmp_path / "other.db") == 2048
    assert page_size(tmp_path / "new.db") == 4096  # a file with tables keeps the size it was made with
    for bad in ("3000", "abc", "256", "131072"):
        monkeypatch.setenv("RENKEI_SQLITE_PAGE_SIZE", bad)
        with pytest.raises(ConfigError, match="RENKEI_SQLITE_PAGE_SIZE must be a power of two"):
            make_engine(f"sqlite:///{tmp_path / 'bad.db'}")
