"""``checkpoints_alongside``: during the block commits do not checkpoint the WAL, a background
thread does; as the block ends the WAL is wholly copied back and connections checkpoint again."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from renkei.store.checkpoints import DEFAULT_AUTOCHECKPOINT, _Checkpoints, checkpoints_alongside
from renkei.store.db import make_engine


def _engine(path: Path) -> sa.Engine:
    """A SQLite file database with one table ``t``."""
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
    return engine


def _thread_running() -> bool:
    return "renkei-checkpoints" in {th.name for th in threading.enumerate()}


def _fill(engine: sa.Engine, start: int, n: int) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO t (id, v) VALUES (:i, :v)"),
                     [{"i": i, "v": "x" * 2000} for i in range(start, start + n)])  # fmt: skip


def test_the_wal_is_checkpointed_alongside_and_wholly_at_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[tuple[str, bool]] = []  # (thread, whether the block was still open)
    real = _Checkpoints._checkpoint
    open_ = threading.Event()

    def recorded(self: _Checkpoints) -> None:
        real(self)
        runs.append((threading.current_thread().name, open_.is_set()))

    monkeypatch.setattr(_Checkpoints, "_checkpoint", recorded)
    path = tmp_path / "c.db"
    engine = _engine(path)
    with checkpoints_alongside(engine):
        open_.set()
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
        for part in range(4):  # ~4 × 1,500 pages: each commit alone would have checkpointed
            _fill(engine, part * 3000, 3000)
            for _ in range(500):  # the thread, woken by the commit, checkpoints while the block goes on
                if len(runs) > part:
                    break
                time.sleep(0.01)
        open_.clear()
    with sa.create_engine(f"sqlite:///{path}").connect() as other:
        busy, log, done = other.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
    assert busy == 0 and log == done  # nothing left to copy once the block is over
    assert [r for r in runs if r[1]] and all(name == "renkei-checkpoints" for name, during in runs if during)
    assert runs[-1] == ("MainThread", False)  # the rest, as the block ended, in the block's thread
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == DEFAULT_AUTOCHECKPOINT
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 12000
    engine.dispose()


def test_overlapping_blocks_share_one_thread_and_finish_with_the_last(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    engine = _engine(path)
    inner_done = threading.Event()

    def other_block() -> None:
        with checkpoints_alongside(engine):
            _fill(engine, 100_000, 2000)
        inner_done.set()

    with checkpoints_alongside(engine):
        assert _thread_running()
        worker = threading.Thread(target=other_block)
        worker.start()
        worker.join(30)
        assert inner_done.is_set()
        assert _thread_running()  # still this block's
        _fill(engine, 0, 2000)
    assert not _thread_running()
    with engine.connect() as conn:
        busy, log, done = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        assert busy == 0 and log == done
    engine.dispose()


def test_a_failing_block_still_finishes_and_reports_its_own_error(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    engine = _engine(path)
    try:
        with checkpoints_alongside(engine):
            _fill(engine, 0, 3000)
            raise KeyError("the block's own error")
    except KeyError as exc:
        assert "own error" in str(exc)
    assert not _thread_running()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == DEFAULT_AUTOCHECKPOINT
    engine.dispose()


def test_nothing_changes_for_postgresql_or_an_in_memory_database(pg_url: str) -> None:
    for url in (pg_url, "sqlite://"):
        engine = make_engine(url)
        with checkpoints_alongside(engine):
            assert not _thread_running()
            with engine.connect() as conn:
                assert conn.execute(sa.select(1)).scalar() == 1
        engine.dispose()
