"""Shared fixtures: a fresh, migrated database per test on SQLite and on PostgreSQL.

The schema is migrated once per run into a template (a SQLite file; a PostgreSQL template
database) and each test gets a copy, so tests are isolated and fast. PostgreSQL is at
``RENKEI_TEST_PG_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``); when
it is unreachable the PostgreSQL variants are skipped with a message, unless ``CI`` is set, in
which case they fail.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from renkei.store import migrate
from renkei.store.db import dispose_engines, make_engine

PG_ADMIN_URL = os.environ.get("RENKEI_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
BACKENDS = ["sqlite", "postgresql"]


def _pg_url(dbname: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + dbname


class _Templates:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.sqlite_template: Path | None = None
        self.pg_template: str | None = None
        self.pg_error: str | None = None
        self.admin: Engine | None = None

    def sqlite(self) -> Path:
        if self.sqlite_template is None:
            path = self.tmp / "template.db"
            migrate.upgrade(f"sqlite:///{path}")
            dispose_engines()
            self.sqlite_template = path
        return self.sqlite_template

    def postgres(self) -> str:
        if self.pg_template is None and self.pg_error is None:
            try:
                self.admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
                with self.admin.connect() as conn:
                    conn.execute(sa.text("select 1"))
            except Exception as exc:  # unreachable server: decided below
                self.pg_error = f"PostgreSQL unreachable at {PG_ADMIN_URL}: {exc.__class__.__name__}"
            else:
                name = f"renkei_tpl_{uuid.uuid4().hex[:10]}"
                with self.admin.connect() as conn:
                    conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
                migrate.upgrade(_pg_url(name))
                dispose_engines()
                self.pg_template = name
        if self.pg_template is None:
            if os.environ.get("CI"):
                pytest.fail(f"{self.pg_error} (CI is set, so PostgreSQL tests may not be skipped)")
            pytest.skip(f"skipping PostgreSQL: {self.pg_error}")
        return self.pg_template

    def drop_all(self) -> None:
        if self.admin is not None and self.pg_template is not None:
            with self.admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{self.pg_template}" WITH (FORCE)'))
        if self.admin is not None:
            self.admin.dispose()


@pytest.fixture(scope="session")
def _templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Templates]:
    t = _Templates(tmp_path_factory.mktemp("db"))
    yield t
    t.drop_all()


def _fresh_url(templates: _Templates, backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        path = tmp_path / f"renkei-{uuid.uuid4().hex[:8]}.db"
        shutil.copyfile(templates.sqlite(), path)
        yield f"sqlite:///{path}"
        return
    template = templates.postgres()
    assert templates.admin is not None
    name = f"renkei_t_{uuid.uuid4().hex[:12]}"
    with templates.admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    try:
        yield _pg_url(name)
    finally:
        dispose_engines()
        with templates.admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, _templates: _Templates, tmp_path: Path) -> Iterator[str]:
    """URL of a fresh migrated database, once on SQLite and once on PostgreSQL."""
    yield from _fresh_url(_templates, request.param, tmp_path)


@pytest.fixture
def sqlite_url(_templates: _Templates, tmp_path: Path) -> Iterator[str]:
    """URL of a fresh migrated SQLite database (for tests that need not run on both)."""
    yield from _fresh_url(_templates, "sqlite", tmp_path)


@pytest.fixture
def pg_url(_templates: _Templates, tmp_path: Path) -> Iterator[str]:
    yield from _fresh_url(_templates, "postgresql", tmp_path)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    eng = make_engine(sqlite_url)
    yield eng
    eng.dispose()


@pytest.fixture
def cli_env(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the CLI (in-process or subprocess) at a fresh database on each backend."""
    monkeypatch.setenv("RENKEI_DATABASE_URL", db_url)
    dispose_engines()
    return db_url
