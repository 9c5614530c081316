"""Relative date literals as local day ranges, and how each operator reads them (pure)."""

from __future__ import annotations

import datetime as dt

import pytest

from renkei.core.soql import day_range, evaluate, instant_range, parse_where
from renkei.crm.schema import LEAD, OPPORTUNITY

# Thursday 2024-05-02 00:30 in Tokyo (still Wednesday 1 May in UTC).
NOW = dt.datetime(2024, 5, 1, 15, 30, tzinfo=dt.UTC)
D = dt.date


def test_day_ranges_in_tokyo() -> None:
    names = [
        ("TODAY", None), ("YESTERDAY", None), ("TOMORROW", None), ("LAST_WEEK", None), ("THIS_WEEK", None),
        ("NEXT_WEEK", None), ("LAST_MONTH", None), ("THIS_MONTH", None), ("NEXT_MONTH", None),
        ("LAST_90_DAYS", None), ("NEXT_90_DAYS", None), ("THIS_QUARTER", None), ("LAST_QUARTER", None),
        ("NEXT_QUARTER", None), ("THIS_YEAR", None), ("LAST_YEAR", None), ("NEXT_YEAR", None),
        ("LAST_N_DAYS", 1), ("NEXT_N_DAYS", 3), ("N_DAYS_AGO", 2), ("LAST_N_WEEKS", 2), ("LAST_N_MONTHS", 3),
        ("LAST_N_YEARS", 2), ("NEXT_N_YEARS", 1), ("N_MONTHS_AGO", 1), ("LAST_N_QUARTERS", 1),
    ]  # fmt: skip
    assert {(name, n): day_range(name, n, now=NOW, tz="Asia/Tokyo") for name, n in names} == {
        ("TODAY", None): (D(2024, 5, 2), D(2024, 5, 3)),
        ("YESTERDAY", None): (D(2024, 5, 1), D(2024, 5, 2)),
        ("TOMORROW", None): (D(2024, 5, 3), D(2024, 5, 4)),
        ("LAST_WEEK", None): (D(2024, 4, 21), D(2024, 4, 28)),
        ("THIS_WEEK", None): (D(2024, 4, 28), D(2024, 5, 5)),
        ("NEXT_WEEK", None): (D(2024, 5, 5), D(2024, 5, 12)),
        ("LAST_MONTH", None): (D(2024, 4, 1), D(2024, 5, 1)),
        ("THIS_MONTH", None): (D(2024, 5, 1), D(2024, 6, 1)),
        ("NEXT_MONTH", None): (D(2024, 6, 1), D(2024, 7, 1)),
        ("LAST_90_DAYS", None): (D(2024, 2, 2), D(2024, 5, 3)),
        ("NEXT_90_DAYS", None): (D(2024, 5, 3), D(2024, 8, 1)),
        ("THIS_QUARTER", None): (D(2024, 4, 1), D(2024, 7, 1)),
        ("LAST_QUARTER", None): (D(2024, 1, 1), D(2024, 4, 1)),
        ("NEXT_QUARTER", None): (D(2024, 7, 1), D(2024, 10, 1)),
        ("THIS_YEAR", None): (D(2024, 1, 1), D(2025, 1, 1)),
        ("LAST_YEAR", None): (D(2023, 1, 1), D(2024, 1, 1)),
        ("NEXT_YEAR", None): (D(2025, 1, 1), D(2026, 1, 1)),
        ("LAST_N_DAYS", 1): (D(2024, 5, 1), D(2024, 5, 3)),
        ("NEXT_N_DAYS", 3): (D(2024, 5, 3), D(2024, 5, 6)),
        ("N_DAYS_AGO", 2): (D(2024, 4, 30), D(2024, 5, 1)),
        ("LAST_N_WEEKS", 2): (D(2024, 4, 14), D(2024, 4, 28)),
        ("LAST_N_MONTHS", 3): (D(2024, 2, 1), D(2024, 5, 1)),
        ("LAST_N_YEARS", 2): (D(2022, 1, 1), D(2024, 1, 1)),
        ("NEXT_N_YEARS", 1): (D(2025, 1, 1), D(2026, 1, 1)),
        ("N_MONTHS_AGO", 1): (D(2024, 4, 1), D(2024, 5, 1)),
        ("LAST_N_QUARTERS", 1): (D(2024, 1, 1), D(2024, 4, 1)),
    }


def test_the_time_zone_decides_the_day() -> None:
    assert day_range("TODAY", None, now=NOW, tz="UTC") == (D(2024, 5, 1), D(2024, 5, 2))
    assert instant_range((D(2024, 5, 2), D(2024, 5, 3)), "Asia/Tokyo") == (
        dt.datetime(2024, 5, 1, 15, 0, tzinfo=dt.UTC),
        dt.datetime(2024, 5, 2, 15, 0, tzinfo=dt.UTC),
    )


def _matches(where: str, obj_values: dict[str, object], tz: str = "Asia/Tokyo") -> bool:
    obj = OPPORTUNITY if "CloseDate" in obj_values else LEAD
    return evaluate(parse_where(where), obj_values, obj, now=NOW, tz=tz)


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("CloseDate = TODAY", {D(2024, 5, 2)}),
        ("CloseDate != TODAY", {D(2024, 5, 1), D(2024, 5, 3), None}),
        ("CloseDate < TODAY", {D(2024, 5, 1)}),
        ("CloseDate <= TODAY", {D(2024, 5, 1), D(2024, 5, 2)}),
        ("CloseDate > TODAY", {D(2024, 5, 3)}),
        ("CloseDate >= TODAY", {D(2024, 5, 2), D(2024, 5, 3)}),
        ("CloseDate IN (YESTERDAY, TOMORROW)", {D(2024, 5, 1), D(2024, 5, 3)}),
        ("CloseDate = null", {None}),
    ],
)
def test_operators_on_a_date_range(where: str, expected: set[object]) -> None:
    days = [D(2024, 5, 1), D(2024, 5, 2), D(2024, 5, 3), None]
    assert {d for d in days if _matches(where, {"CloseDate": d})} == expected


def test_datetime_fields_compare_with_the_instants_of_local_midnight() -> None:
    before, at, last = (
        dt.datetime(2024, 5, 1, 14, 59, 59, tzinfo=dt.UTC),
        dt.datetime(2024, 5, 1, 15, 0, tzinfo=dt.UTC),
        dt.datetime(2024, 5, 2, 14, 59, 59, tzinfo=dt.UTC),
    )
    assert [_matches("CreatedDate = TODAY", {"CreatedDate": v}) for v in (before, at, last)] == [
        False,
        True,
        True,
    ]
    assert [_matches("CreatedDate = TODAY", {"CreatedDate": v}, tz="UTC") for v in (before, at, last)] == [
        True, True, False,
    ]  # fmt: skip
