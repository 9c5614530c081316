"""What the benchmark scripts share: a migrated database to measure in."""

from __future__ import annotations

import tempfile
from pathlib import Path

from sqlalchemy.engine import Engine

from renkei.store import migrate
from renkei.store.db import make_engine


def migrated(url: str | None, name: str) -> Engine:
    """An engine on ``url`` (or, without one, a new SQLite file ``name`` in a temporary folder),
    migrated to the current schema."""
    url = url or f"sqlite:///{Path(tempfile.mkdtemp()) / name}"
    migrate.upgrade(url)
    return make_engine(url)
