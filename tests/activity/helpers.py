"""Shared pieces of the activity tests: a fixed clock, prospects, activities."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.engine import Engine

from renkei.clock import FixedClock
from renkei.marketing.service import ProspectService

T0 = dt.datetime(2026, 4, 1, 9, 0, tzinfo=dt.UTC)


def clock() -> FixedClock:
    return FixedClock(T0)


def prospect(engine: Engine, clk: FixedClock, email: str = "yamada@example.co.jp", **values: Any) -> int:
    return int(ProspectService(engine, clock=clk).create({"email": email, **values})["id"])


def get(engine: Engine, pid: int) -> dict[str, Any]:
    return ProspectService(engine).get(pid, include_deleted=True)
