"""SQLite WAL checkpoints alongside a long piece of work instead of inside its commits.

In WAL mode SQLite copies the log back into the database file (a *checkpoint*, with an fsync of the
log and one of the database) inside the commit that takes the log past 1,000 pages. A sync cycle
that writes 10,000 scattered prospects writes ~30,000 pages, so its commit spent about as long
checkpointing as the cycle spent judging. ``checkpoints_alongside(engine)`` moves that work to a
background thread for the duration of a block:

* connections this engine hands out during the block do not checkpoint on commit
  (``PRAGMA wal_autocheckpoint=0``; back to SQLite's default when next handed out after it);
* every commit made through the engine wakes the thread, which runs a ``PASSIVE`` checkpoint on
  its own connection — it copies what is committed while the block goes on (a passive checkpoint
  takes no lock a writer or reader waits for);
* as the block ends it waits for the thread and checkpoints what is left, so the log is left as
  short as SQLite's own checkpoints would leave it and the block's time includes all of it.

The gain comes when the block commits in parts (the sync cycle commits its prospect writes a batch
at a time): the thread copies one part while the block works on the next, on a second core. The
durability is SQLite's ``synchronous=NORMAL`` either way: a commit is in the log, a checkpoint
syncs the log before it writes the database. Nothing changes for PostgreSQL or for an in-memory
SQLite database.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

#: SQLite's default ``wal_autocheckpoint`` (pages), put back on connections after a block
DEFAULT_AUTOCHECKPOINT = 1000

_datasync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync
# how the thread opens the database file to sync it: Windows syncs writable handles only
_SYNC_OPEN = os.O_RDONLY if sys.platform.startswith("linux") else os.O_RDWR


class _Checkpoints:
    """One engine's deferral: how many blocks are open, and the thread working for them."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.depth = 0
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.stop = False
        self.thread: threading.Thread | None = None
        self.conn: sqlite3.Connection | None = None
        self.fd: int | None = None
        self.error: BaseException | None = None

    def checkout(self, dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        deferred = self.depth > 0
        if record.info.get("renkei_deferred_checkpoints", False) != deferred:
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA wal_autocheckpoint={0 if deferred else DEFAULT_AUTOCHECKPOINT}")
            cur.close()
            record.info["renkei_deferred_checkpoints"] = deferred

    def commit(self, _conn: Any) -> None:
        if self.depth > 0:
            self.wake.set()

    def _checkpoint(self) -> None:
        assert self.conn is not None
        self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def _work(self) -> None:
        try:
            while True:
                self.wake.wait()
                self.wake.clear()
                if self.stop:
                    return
                self._checkpoint()
                # SQLite syncs the database file only after a checkpoint that found no newer commit
                # (rare while the block writes), so the pages copied pile up for the last one to
                # sync; syncing them here, a part at a time, keeps that off the block's end
                assert self.fd is not None
                _datasync(self.fd)
        except BaseException as exc:  # reported when the block ends
            self.error = exc

    def start(self) -> None:
        self.stop, self.error = False, None
        self.wake.clear()
        self.conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self.fd = os.open(self.path, _SYNC_OPEN)
        self.thread = threading.Thread(target=self._work, name="renkei-checkpoints", daemon=True)
        self.thread.start()

    def finish(self) -> None:
        assert self.thread is not None and self.conn is not None
        self.stop = True
        self.wake.set()
        self.thread.join()
        try:
            if self.error is not None:
                raise self.error
            self._checkpoint()  # what the last commits left, in the block's own time
        finally:
            self.conn.close()
            if self.fd is not None:
                os.close(self.fd)
            self.thread = self.conn = self.fd = None


_ENGINES: weakref.WeakKeyDictionary[Engine, _Checkpoints] = weakref.WeakKeyDictionary()
_REGISTER = threading.Lock()


def _file_path(engine: Engine) -> str | None:
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


@contextmanager
def checkpoints_alongside(engine: Engine) -> Iterator[None]:
    """Run the block with this engine's WAL checkpoints on a background thread (SQLite file
    databases; see the module's text). Blocks may nest or overlap across threads: the thread
    starts with the first and finishes with the last."""
    path = _file_path(engine)
    if path is None:
        yield
        return
    with _REGISTER:
        state = _ENGINES.get(engine)
        if state is None:
            state = _ENGINES[engine] = _Checkpoints(path)
            sa.event.listen(engine, "checkout", state.checkout)
            sa.event.listen(engine, "commit", state.commit)
    with state.lock:
        if state.depth == 0:
            state.start()
        state.depth += 1
    done = False
    try:
        yield
        done = True
    finally:
        with state.lock:
            state.depth -= 1
            if state.depth == 0:
                try:
                    state.finish()
                except Exception:
                    if done:  # else the block's own error is the one to see
                        raise
