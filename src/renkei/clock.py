"""One injected clock per run: aware UTC datetimes only, so tests are deterministic."""

from __future__ import annotations

import datetime as dt
from typing import Protocol

UTC = dt.UTC


class Clock(Protocol):
    def now(self) -> dt.datetime: ...


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(UTC)


class FixedClock:
    """A test clock: starts at ``start`` and only moves when told to."""

    def __init__(self, start: dt.datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self._now = start.astimezone(UTC)

    def now(self) -> dt.datetime:
        return self._now

    def advance(self, **delta: float) -> dt.datetime:
        self._now += dt.timedelta(**delta)
        return self._now

    def set(self, when: dt.datetime) -> None:
        self._now = when.astimezone(UTC)


class TickingClock:
    """Like the system clock but never returns the same instant twice (strictly increasing)."""

    def __init__(self, inner: Clock | None = None) -> None:
        self._inner = inner or SystemClock()
        self._last: dt.datetime | None = None

    def now(self) -> dt.datetime:
        now = self._inner.now()
        if self._last is not None and now <= self._last:
            now = self._last + dt.timedelta(microseconds=1)
        self._last = now
        return now


def ensure_utc(value: dt.datetime) -> dt.datetime:
    """Naive datetimes are taken as UTC (how the store keeps them); aware ones are converted."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def sf_datetime(value: dt.datetime | None) -> str | None:
    """Salesforce's wire format: ``2024-05-01T10:00:00.000+0000``."""
    if value is None:
        return None
    v = ensure_utc(value)
    return v.strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond // 1000:03d}+0000"
