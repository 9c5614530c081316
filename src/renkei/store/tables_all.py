"""Imports every ``renkei.store.tables*`` module so that ``metadata`` knows all tables (for Alembic)."""

from __future__ import annotations

import importlib
import pkgutil

import renkei.store as _store
from renkei.store.tables import metadata

for _mod in pkgutil.iter_modules(_store.__path__):
    if _mod.name.startswith("tables_") and _mod.name != "tables_all":
        importlib.import_module(f"renkei.store.{_mod.name}")

__all__ = ["metadata"]
