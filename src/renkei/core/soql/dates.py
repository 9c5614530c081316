"""Relative date literals (``TODAY``, ``LAST_N_DAYS:n`` …) as half-open ranges of local days.

Each literal is a range ``[start, end)`` of whole days in the user's time zone, starting at 00:00.
Weeks start on Sunday (Salesforce's first day of the week for the ja_JP and en_US locales);
quarters and years are calendar ones (a fiscal year starting in January).
``LAST_N_DAYS:n`` includes today (n + 1 days, as Salesforce documents: ``LAST_N_DAYS:1`` is
yesterday and today); ``NEXT_N_DAYS:n`` starts tomorrow.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from zoneinfo import ZoneInfo

DayRange = tuple[dt.date, dt.date]


def _week_start(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=(day.weekday() + 1) % 7)  # Sunday


def _month_start(day: dt.date, months: int = 0) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def _quarter_start(day: dt.date, quarters: int = 0) -> dt.date:
    first = dt.date(day.year, (day.month - 1) // 3 * 3 + 1, 1)
    return _month_start(first, 3 * quarters)


def _year_start(day: dt.date, years: int = 0) -> dt.date:
    return dt.date(day.year + years, 1, 1)


def _days(a: int, b: int) -> Callable[[dt.date, int], DayRange]:
    return lambda t, _n: (t + dt.timedelta(days=a), t + dt.timedelta(days=b))


def _weeks(a: int, b: int) -> Callable[[dt.date, int], DayRange]:
    return lambda t, _n: (_week_start(t) + dt.timedelta(weeks=a), _week_start(t) + dt.timedelta(weeks=b))


def _months(a: int, b: int) -> Callable[[dt.date, int], DayRange]:
    return lambda t, _n: (_month_start(t, a), _month_start(t, b))


def _quarters(a: int, b: int) -> Callable[[dt.date, int], DayRange]:
    return lambda t, _n: (_quarter_start(t, a), _quarter_start(t, b))


def _years(a: int, b: int) -> Callable[[dt.date, int], DayRange]:
    return lambda t, _n: (_year_start(t, a), _year_start(t, b))


#: Literals without a number: name → (today, _) → range.
FIXED: dict[str, Callable[[dt.date, int], DayRange]] = {
    "YESTERDAY": _days(-1, 0),
    "TODAY": _days(0, 1),
    "TOMORROW": _days(1, 2),
    "LAST_WEEK": _weeks(-1, 0),
    "THIS_WEEK": _weeks(0, 1),
    "NEXT_WEEK": _weeks(1, 2),
    "LAST_MONTH": _months(-1, 0),
    "THIS_MONTH": _months(0, 1),
    "NEXT_MONTH": _months(1, 2),
    "LAST_90_DAYS": _days(-90, 1),
    "NEXT_90_DAYS": _days(1, 91),
    "LAST_QUARTER": _quarters(-1, 0),
    "THIS_QUARTER": _quarters(0, 1),
    "NEXT_QUARTER": _quarters(1, 2),
    "LAST_YEAR": _years(-1, 0),
    "THIS_YEAR": _years(0, 1),
    "NEXT_YEAR": _years(1, 2),
}

#: Literals taking ``:n``: name → (today, n) → range.
WITH_N: dict[str, Callable[[dt.date, int], DayRange]] = {
    "LAST_N_DAYS": lambda t, n: (t - dt.timedelta(days=n), t + dt.timedelta(days=1)),
    "NEXT_N_DAYS": lambda t, n: (t + dt.timedelta(days=1), t + dt.timedelta(days=n + 1)),
    "N_DAYS_AGO": lambda t, n: (t - dt.timedelta(days=n), t - dt.timedelta(days=n - 1)),
    "LAST_N_WEEKS": lambda t, n: (_week_start(t) - dt.timedelta(weeks=n), _week_start(t)),
    "NEXT_N_WEEKS": lambda t, n: (
        _week_start(t) + dt.timedelta(weeks=1),
        _week_start(t) + dt.timedelta(weeks=n + 1),
    ),
    "N_WEEKS_AGO": lambda t, n: (
        _week_start(t) - dt.timedelta(weeks=n),
        _week_start(t) - dt.timedelta(weeks=n - 1),
    ),
    "LAST_N_MONTHS": lambda t, n: (_month_start(t, -n), _month_start(t)),
    "NEXT_N_MONTHS": lambda t, n: (_month_start(t, 1), _month_start(t, n + 1)),
    "N_MONTHS_AGO": lambda t, n: (_month_start(t, -n), _month_start(t, 1 - n)),
    "LAST_N_QUARTERS": lambda t, n: (_quarter_start(t, -n), _quarter_start(t)),
    "NEXT_N_QUARTERS": lambda t, n: (_quarter_start(t, 1), _quarter_start(t, n + 1)),
    "LAST_N_YEARS": lambda t, n: (_year_start(t, -n), _year_start(t)),
    "NEXT_N_YEARS": lambda t, n: (_year_start(t, 1), _year_start(t, n + 1)),
    "N_YEARS_AGO": lambda t, n: (_year_start(t, -n), _year_start(t, 1 - n)),
}


def local_today(now: dt.datetime, tz: str) -> dt.date:
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    return now.astimezone(ZoneInfo(tz)).date()


def day_range(name: str, n: int | None, *, now: dt.datetime, tz: str) -> DayRange:
    """``[first day, day after the last)`` of a date literal, in the time zone ``tz``."""
    today = local_today(now, tz)
    key = name.upper()
    if n is None:
        return FIXED[key](today, 0)
    return WITH_N[key](today, n)


def instant_range(days: DayRange, tz: str) -> tuple[dt.datetime, dt.datetime]:
    """The UTC instants of local midnight at each end of a day range (for datetime fields)."""
    zone = ZoneInfo(tz)
    start, end = (dt.datetime.combine(d, dt.time(), zone).astimezone(dt.UTC) for d in days)
    return start, end
