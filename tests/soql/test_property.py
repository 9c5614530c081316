"""The property of the issue: SOQL compiled to SQL answers exactly what the in-memory evaluator
answers, over random Lead rows and random WHERE trees, on SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from renkei.core.soql import evaluate, fold, parse_where
from renkei.crm.soql_sql import count_where, run_query
from renkei.ids import make_id

from .helpers import NOW, TAGS, add_custom_field, insert, lead, user

USERS = {make_id("005", 1): "Taro Yamada", make_id("005", 2): "suzuki"}
BASE_DAY = dt.date(2024, 5, 1)
BASE_INSTANT = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
CHARS = "aAbBzZ%_\\' あ"
NUMBERS = [0, 0.5, 100, -3.25, 1000000, 7]
INDUSTRIES = ["Banking", "Retail", "Other"]
TAG_VALUES = ["a", "b", "c", "D"]
RANGE_LITERALS = [
    "TODAY", "YESTERDAY", "TOMORROW", "LAST_WEEK", "THIS_WEEK", "NEXT_WEEK", "LAST_MONTH", "THIS_MONTH",
    "NEXT_MONTH", "LAST_90_DAYS", "NEXT_90_DAYS", "THIS_QUARTER", "LAST_QUARTER", "THIS_YEAR", "LAST_YEAR",
    "NEXT_YEAR", "LAST_N_DAYS:1", "LAST_N_DAYS:30", "NEXT_N_DAYS:7", "N_DAYS_AGO:1", "N_DAYS_AGO:3",
    "LAST_N_WEEKS:2", "LAST_N_MONTHS:3", "LAST_N_YEARS:1", "NEXT_N_YEARS:1",
]  # fmt: skip
OPS = ["=", "!=", "<", "<=", ">", ">="]


def quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


short_text = st.text(CHARS, min_size=0, max_size=3)
days = st.integers(-800, 800).map(lambda n: BASE_DAY + dt.timedelta(days=n))
instants = st.integers(-24 * 400, 24 * 400).map(lambda h: BASE_INSTANT + dt.timedelta(hours=h))
tags = st.sets(st.sampled_from(TAG_VALUES), min_size=1).map(lambda s: ";".join(sorted(s)))

leads = st.lists(
    st.fixed_dictionaries(
        {
            "Company": st.text(CHARS, min_size=1, max_size=4),
            "FirstName": st.none() | short_text,
            "Industry": st.none() | st.sampled_from(INDUSTRIES),
            "AnnualRevenue": st.none() | st.sampled_from([float(x) for x in NUMBERS]),
            "NumberOfEmployees": st.none() | st.integers(-3, 3),
            "DoNotCall": st.booleans(),
            "ConvertedDate": st.none() | days,
            "CreatedDate": instants,
            "Tags__c": st.none() | tags,
            "OwnerId": st.sampled_from(sorted(USERS)),
        }
    ),
    max_size=12,
)


def _literal_list(values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    items = st.lists(values | st.just("null"), min_size=1, max_size=3)
    return items.map(lambda v: "(" + ", ".join(v) + ")")


def _like_pattern() -> st.SearchStrategy[str]:
    part = st.sampled_from(["%", "_", "\\%", "\\_"]) | st.sampled_from(CHARS).map(
        lambda c: "\\\\" if c == "\\" else "\\'" if c == "'" else c
    )
    return st.lists(part, max_size=4).map(lambda parts: "'" + "".join(parts) + "'")


def _field_atoms(field: str, literal: st.SearchStrategy[str], ops: list[str] = OPS) -> st.SearchStrategy[str]:
    compare = st.tuples(st.sampled_from(ops), literal).map(lambda t: f"{field} {t[0]} {t[1]}")
    in_list = st.tuples(st.sampled_from(["IN", "NOT IN"]), _literal_list(literal)).map(
        lambda t: f"{field} {t[0]} {t[1]}"
    )
    nulls = st.sampled_from([f"{field} = null", f"{field} != null"])
    return compare | in_list | nulls


def _date_literal(fmt: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return fmt | st.sampled_from(RANGE_LITERALS)


def _datetime_text(when: dt.datetime, tokyo: bool) -> str:
    if tokyo:
        return when.astimezone(dt.timezone(dt.timedelta(hours=9))).isoformat()
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


atoms = st.one_of(
    _field_atoms("Company", short_text.map(quote)),
    _field_atoms("FirstName", short_text.map(quote)),
    st.tuples(st.sampled_from(["Company", "FirstName", "Owner.Name"]), _like_pattern()).map(
        lambda t: f"{t[0]} LIKE {t[1]}"
    ),
    _field_atoms("Industry", st.sampled_from(INDUSTRIES + ["banking", "RETAIL"]).map(quote), ["=", "!="]),
    _field_atoms("AnnualRevenue", st.sampled_from([str(x) for x in NUMBERS])),
    _field_atoms("NumberOfEmployees", st.sampled_from(["-3", "0", "1", "1.5", "3"])),
    st.tuples(st.sampled_from(["=", "!="]), st.sampled_from(["true", "false", "TRUE"])).map(
        lambda t: f"DoNotCall {t[0]} {t[1]}"
    ),
    _field_atoms("ConvertedDate", _date_literal(days.map(dt.date.isoformat))),
    _field_atoms(
        "CreatedDate",
        _date_literal(st.tuples(instants, st.booleans()).map(lambda t: _datetime_text(*t))),
    ),
    st.tuples(
        st.sampled_from(["INCLUDES", "EXCLUDES"]),
        st.lists(
            st.lists(st.sampled_from(TAG_VALUES + ["A", "d"]), min_size=1, max_size=2), min_size=1, max_size=2
        ),
    ).map(lambda t: f"Tags__c {t[0]} (" + ", ".join(quote(";".join(g)) for g in t[1]) + ")"),
    _field_atoms("Tags__c", tags.map(quote), ["=", "!="]),
    _field_atoms("Owner.Name", st.sampled_from(["taro yamada", "SUZUKI", "x"]).map(quote), ["=", "!="]),
)

conditions = st.recursive(
    atoms,
    lambda inner: st.one_of(
        st.tuples(st.sampled_from([" AND ", " OR "]), st.lists(inner, min_size=2, max_size=3)).map(
            lambda t: t[0].join(f"({c})" for c in t[1])
        ),
        inner.map(lambda c: f"NOT ({c})"),
    ),
    max_leaves=6,
)

ORDER_FIELDS = ["Company", "AnnualRevenue", "CreatedDate", "ConvertedDate", "FirstName", "Owner.Name"]
orders = st.tuples(st.sampled_from(ORDER_FIELDS), st.booleans(), st.none() | st.booleans())
windows = st.tuples(st.none() | st.integers(0, 5), st.none() | st.integers(0, 3))


def _order_key(record: dict[str, Any], field: str) -> Any:
    value = record["Owner"]["Name"] if field == "Owner.Name" else record[field]
    return fold(value) if isinstance(value, str) else value


def expected_ids(
    records: list[dict[str, Any]], where: str, order: tuple[str, bool, bool | None]
) -> list[str]:
    """The reference answer: filter with evaluate(), sort as SOQL does (ties by Id), in Python."""
    schema_lead = EXPECTED_OBJECTS["Lead"]
    cond = parse_where(where)
    kept = sorted(
        (r for r in records if evaluate(cond, r, schema_lead, now=NOW, objects=EXPECTED_OBJECTS)),
        key=lambda r: r["Id"],
    )
    field, descending, nulls_first = order
    if nulls_first is None:
        nulls_first = not descending
    nulls = [r for r in kept if _order_key(r, field) is None]
    values = sorted(
        (r for r in kept if _order_key(r, field) is not None),
        key=lambda r: _order_key(r, field),
        reverse=descending,
    )
    return [r["Id"] for r in (nulls + values if nulls_first else values + nulls)]


EXPECTED_OBJECTS: dict[str, Any] = {}


def test_sql_equals_in_memory_evaluation(engine: Engine) -> None:
    with engine.begin() as conn:
        schema = add_custom_field(conn, "Lead", TAGS)
        insert(conn, schema, "User", [user(1, "Yamada", "Taro"), user(2, "suzuki")])
    EXPECTED_OBJECTS.update(schema.objects)
    table = schema.tables["Lead"]

    @settings(max_examples=35, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(leads, st.lists(st.tuples(conditions, orders, windows), min_size=1, max_size=4))
    def check(
        rows: list[dict[str, Any]], queries: list[tuple[str, tuple[str, bool, bool | None], Any]]
    ) -> None:
        full = [lead(i + 1, **row) for i, row in enumerate(rows)]
        records = [r | {"Owner": {"Name": USERS[r["OwnerId"]]}} for r in full]
        with engine.begin() as conn:
            conn.execute(sa.delete(table))
            insert(conn, schema, "Lead", full)
        with engine.connect() as conn:
            for where, order, (limit, offset) in queries:
                expected = expected_ids(records, where, order)
                field, descending, nulls_first = order
                soql = f"SELECT Id FROM Lead WHERE {where} ORDER BY {field}{' DESC' if descending else ''}"
                if nulls_first is not None:
                    soql += " NULLS FIRST" if nulls_first else " NULLS LAST"
                if limit is not None:
                    soql += f" LIMIT {limit}"
                if offset is not None:
                    soql += f" OFFSET {offset}"
                got = run_query(conn, schema, soql, include_deleted=False, now=NOW)
                window = expected[offset or 0 :][: limit if limit is not None else None]
                assert [r["Id"] for r in got["records"]] == window, soql
                assert count_where(conn, schema, "Lead", where, now=NOW) == len(expected), where

    check()
