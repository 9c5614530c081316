"""SOQL syntax: whole syntax trees for accepted queries, positioned errors for rejected ones."""

from __future__ import annotations

import datetime as dt

import pytest

from renkei.core.soql import SoqlError, parse_query, parse_where
from renkei.core.soql.nodes import (
    And,
    BoolLit,
    Comparison,
    Count,
    CountAll,
    DateLit,
    DateRangeLit,
    DateTimeLit,
    FieldPath,
    Includes,
    InList,
    Like,
    Not,
    NullLit,
    NumberLit,
    Op,
    Or,
    OrderItem,
    Position,
    Query,
    StringLit,
)
from renkei.core.soql.parser import like_pattern


def f(*parts: str) -> FieldPath:
    return FieldPath(parts)


def test_full_query() -> None:
    q = parse_query(
        "SELECT Id, Account.Owner.Name FROM Contact "
        "WHERE (Email = 'a@example.com' OR Email = null) AND NOT LeadSource IN ('Web', 'Other') "
        "ORDER BY LastName DESC NULLS FIRST, Id LIMIT 10 OFFSET 20"
    )
    assert q == Query(
        select=(f("Id"), f("Account", "Owner", "Name")),
        object_name="Contact",
        where=And(
            (
                Or(
                    (
                        Comparison(f("Email"), Op.EQ, StringLit("a@example.com")),
                        Comparison(f("Email"), Op.EQ, NullLit()),
                    )
                ),
                Not(InList(f("LeadSource"), (StringLit("Web"), StringLit("Other")))),
            )
        ),
        order_by=(OrderItem(f("LastName"), True, True), OrderItem(f("Id"), False, None)),
        limit=10,
        offset=20,
    )


def test_keywords_are_case_insensitive_and_names_keep_their_spelling() -> None:
    assert parse_query("select name from lead where isDeleted = FALSE") == Query(
        (f("name"),), "lead", Comparison(f("isDeleted"), Op.EQ, BoolLit(False))
    )


def test_counts() -> None:
    assert parse_query("SELECT COUNT() FROM Lead").select == (CountAll(),)
    assert parse_query("SELECT COUNT(Id), COUNT(Email) n FROM Lead").select == (
        Count(f("Id")),
        Count(f("Email"), "n"),
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Amount >= 1000", Comparison(f("Amount"), Op.GE, NumberLit(1000))),
        ("Amount < -2.5", Comparison(f("Amount"), Op.LT, NumberLit(-2.5))),
        ("Name <> 'x'", Comparison(f("Name"), Op.NE, StringLit("x"))),
        ("Name != 'it\\'s \\\\ \\n'", Comparison(f("Name"), Op.NE, StringLit("it's \\ \n"))),
        ("CloseDate = 2024-05-01", Comparison(f("CloseDate"), Op.EQ, DateLit(dt.date(2024, 5, 1)))),
        (
            "CreatedDate > 2024-05-01T09:00:00+09:00",
            Comparison(f("CreatedDate"), Op.GT, DateTimeLit(dt.datetime(2024, 5, 1, tzinfo=dt.UTC))),
        ),
        (
            "CreatedDate <= 2024-05-01T10:00:00.250Z",
            Comparison(
                f("CreatedDate"), Op.LE, DateTimeLit(dt.datetime(2024, 5, 1, 10, 0, 0, 250000, tzinfo=dt.UTC))
            ),
        ),
        ("CreatedDate = today", Comparison(f("CreatedDate"), Op.EQ, DateRangeLit("TODAY"))),
        (
            "CreatedDate = LAST_N_DAYS:30",
            Comparison(f("CreatedDate"), Op.EQ, DateRangeLit("LAST_N_DAYS", 30)),
        ),
        ("Today__c = true", Comparison(f("Today__c"), Op.EQ, BoolLit(True))),
        ("Name LIKE 'Ac%'", Like(f("Name"), StringLit("Ac%"))),
        ("Id NOT IN ('a', null)", InList(f("Id"), (StringLit("a"), NullLit()), negated=True)),
        ("Tags__c INCLUDES ('a;b', 'c')", Includes(f("Tags__c"), ("a;b", "c"))),
        ("Tags__c excludes ('a')", Includes(f("Tags__c"), ("a",), excludes=True)),
        (
            "NOT (A = 1 OR B = 2)",
            Not(Or((Comparison(f("A"), Op.EQ, NumberLit(1)), Comparison(f("B"), Op.EQ, NumberLit(2))))),
        ),
    ],
)
def test_conditions(text: str, expected: object) -> None:
    assert parse_where(text) == expected


def test_positions_are_recorded() -> None:
    q = parse_query("SELECT Id,\n  Name FROM Lead WHERE Company = 'x'")
    assert [item.pos for item in q.select if isinstance(item, FieldPath)] == [Position(1, 8), Position(2, 3)]
    assert q.object_pos == Position(2, 13)


def test_like_keeps_escaped_wildcards() -> None:
    assert like_pattern("50\\% off_") == "50\\% off_"
    assert like_pattern("a\\\\b") == "a\\\\b"
    assert like_pattern("a\\_b%") == "a\\_b%"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("SELECT Id FROM", "line 1:15: unexpected end of query"),
        ("SELECT Id FROM Lead WHERE", "line 1:26: unexpected end of query"),
        ("SELECT Id, FROM Lead", "line 1:17: unexpected token: 'Lead'"),
        ("SELECT Id FROM Lead WHERE A = 1 AND B = 2 OR C = 3", "line 1:43: unexpected token: 'OR'"),
        ("SELECT Id FROM Lead\nWHERE Name = #", "line 2:14: unexpected character: '#'"),
        (
            "SELECT Id FROM Lead WHERE Name = 'a\\qb'",
            "line 1:34: Invalid string literal 'a\\qb'. Illegal character sequence '\\q'",
        ),
        ("SELECT Id FROM Lead WHERE CloseDate = 2024-13-01", "line 1:39: invalid date: 2024-13-01"),
        ("SELECT Id FROM Lead LIMIT -1", "line 1:27: unexpected token: '-1'"),
        ("SELECT Id FROM Lead WHERE Name LIKE 5", "line 1:37: unexpected token: '5'"),
    ],
)
def test_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(SoqlError) as info:
        parse_query(text)
    assert (info.value.code, str(info.value.message)) == ("MALFORMED_QUERY", message)
