"""The request log and the org's daily API allocation, counted over a rolling 24 hours.

Each counted request (everything under ``/services/data/vXX.X/`` except the version list) adds a
row to ``sfapi_request`` with its method, path, status and how many records it carried; the usage
is the number of rows in the last 24 hours. Tests read the same log to count a client's calls.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from renkei.clock import Clock, SystemClock
from renkei.errors import RetriableError
from renkei.store.tables_sfapi import sfapi_request

#: Salesforce Developer Edition's allocation; ``RENKEI_API_DAILY_LIMIT`` or the app setting changes it.
DEFAULT_DAILY_LIMIT = 15_000
WINDOW = dt.timedelta(hours=24)


class RequestLimitExceeded(RetriableError):
    """The org used its rolling 24-hour API allocation (HTTP 403, retry later)."""

    code = "REQUEST_LIMIT_EXCEEDED"
    http_status = 403


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    at: dt.datetime
    user_id: str | None
    method: str
    path: str
    status: int
    records: int


def daily_limit_from_env(default: int = DEFAULT_DAILY_LIMIT) -> int:
    raw = os.environ.get("RENKEI_API_DAILY_LIMIT")
    return int(raw) if raw else default


class ApiUsage:
    def __init__(self, engine: Engine, *, clock: Clock | None = None, daily_limit: int = DEFAULT_DAILY_LIMIT):
        self.engine = engine
        self.clock = clock or SystemClock()
        self.daily_limit = daily_limit

    def used(self) -> int:
        since = self.clock.now() - WINDOW
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count()).select_from(sfapi_request).where(sfapi_request.c.at > since)
                ).scalar_one()
            )

    def remaining(self) -> int:
        return max(self.daily_limit - self.used(), 0)

    def check(self) -> None:
        """Refuse a request once the allocation is used up (Salesforce: 403 REQUEST_LIMIT_EXCEEDED)."""
        if self.used() >= self.daily_limit:
            raise RequestLimitExceeded(f"TotalRequests Limit exceeded. ({self.daily_limit} per 24 hours)")

    def record(self, *, method: str, path: str, status: int, records: int, user_id: str | None) -> int:
        """Log one counted request; returns the usage including it."""
        with self.engine.begin() as conn:
            conn.execute(
                sfapi_request.insert().values(
                    at=self.clock.now(),
                    user_id=user_id,
                    method=method,
                    path=path[:2000],
                    status=status,
                    records=records,
                )
            )
        return self.used()

    def header(self, used: int | None = None) -> str:
        """The ``Sforce-Limit-Info`` header value."""
        return f"api-usage={self.used() if used is None else used}/{self.daily_limit}"

    def log(self, *, since: dt.datetime | None = None) -> list[LoggedRequest]:
        query = sa.select(sfapi_request).order_by(sfapi_request.c.id)
        if since is not None:
            query = query.where(sfapi_request.c.at >= since)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [LoggedRequest(r.at, r.user_id, r.method, r.path, r.status, r.records) for r in rows]

    def limits(self, *, in_flight: int = 1) -> dict[str, dict[str, int]]:
        """The ``limits`` resource: only the allocation renkei enforces (no Bulk API limits).

        ``in_flight`` counts the calls being answered, not logged yet (the ``limits`` call itself),
        so the body agrees with that response's ``Sforce-Limit-Info``."""
        remaining = max(self.daily_limit - self.used() - in_flight, 0)
        return {"DailyApiRequests": {"Max": self.daily_limit, "Remaining": remaining}}
