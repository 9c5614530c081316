"""The rule language: text form round-trips, JSON form round-trips, clear errors (pure)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings

from renkei.core.rules import (
    ActivityPredicate,
    Condition,
    FieldPredicate,
    Group,
    Match,
    Node,
    Op,
    OpportunityPredicate,
    TagPredicate,
    Unit,
    Window,
    build_catalog,
    format_rule,
    parse_rule,
    rule_from_json,
    validate,
)
from renkei.core.rules.evaluate import Facts, Moment, evaluate, explain
from renkei.errors import QueryError
from renkei.marketing.schema import PROSPECT_FIELDS

from .helpers import rules

CATALOG = build_catalog(PROSPECT_FIELDS)
NOW = dt.datetime(2026, 6, 15, 3, 0, tzinfo=dt.UTC)


@settings(max_examples=100)
@given(rules([1, 2, 3]))
def test_text_form_round_trips(rule: Node) -> None:
    assert parse_rule(format_rule(rule)) == rule


@settings(max_examples=100)
@given(rules([1, 2, 3]))
def test_json_form_round_trips(rule: Node) -> None:
    assert rule_from_json(rule.to_json()) == rule


def test_seed_examples_parse_to_the_expected_model() -> None:
    text = """
    all(
      has opportunity(stageName = "Closed Lost", closeDate within last 12 months),
      has opportunity(Quote_Submitted_Date__c within last 30 days, Acceptance_Date__c is empty),
      has at least 2 activity(type in (VISIT), within last 7 days),
      has no tag "競合",
      grade >= "B"
    )"""
    assert parse_rule(text) == Group(
        Match.ALL,
        (
            OpportunityPredicate(
                True,
                (
                    Condition("stageName", Op.EQ, "Closed Lost"),
                    Condition("closeDate", Op.WITHIN, window=Window(12, Unit.MONTHS)),
                ),
            ),
            OpportunityPredicate(
                True,
                (
                    Condition("Quote_Submitted_Date__c", Op.WITHIN, window=Window(30, Unit.DAYS)),
                    Condition("Acceptance_Date__c", Op.EMPTY),
                ),
            ),
            ActivityPredicate(types=(20,), window=Window(7, Unit.DAYS), at_least=2),
            TagPredicate("競合", has=False),
            FieldPredicate(Condition("grade", Op.GE, "B")),
        ),
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("all(score >>= 1)", "unexpected '>=' at line 1, column 12"),
        ("all(score >= 1", "rule text ends too early"),
        ("all(has activity(type = FOO))", "unknown activity type 'FOO'"),
        ("all(has activity(asset = page 3))", "unknown asset kind 'page'"),
        ("all(score = 1 ?)", "unexpected character '?' at line 1, column 15"),
    ],
)
def test_syntax_errors_name_the_bad_part(text: str, message: str) -> None:
    with pytest.raises(QueryError) as err:
        parse_rule(text)
    assert message in str(err.value)
    assert err.value.code == "INVALID_RULE"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("all(scor > 1)", "invalid rule at rule.rules[0]: unknown prospect field 'scor'"),
        ('all(any(company > "a"))', "rule.rules[0].rules[0] (company): '>' does not apply to a text field"),
        ('all(score contains "1")', "'contains' applies to text fields only, not number"),
        ('all(grade >= "Z")', "expected a grade (F, D-, D, D+"),
        ('all(score = "high")', "expected a number, got 'high'"),
        ("all(company within last 3 days)", "'within' applies to date and datetime fields only"),
        (
            'all(has opportunity(stage = "x"))',
            "rule.rules[0].opportunity[0]: unknown opportunity field 'stage'",
        ),
        ('all(account.colour = "red")', "unknown account field 'colour'"),
        ('all(lastActivityAt > "yesterday")', "expected an ISO datetime, got 'yesterday'"),
        ("all()", "an empty 'all' group"),
    ],
)
def test_invalid_rules_name_the_bad_part(text: str, message: str) -> None:
    with pytest.raises(QueryError) as err:
        validate(parse_rule(text), CATALOG)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"match": "some", "rules": []}, "rule.match: expected 'all' or 'any'"),
        (
            {"match": "all", "rules": [{"field": "score", "op": "~"}]},
            "rule.rules[0].op: unknown operator '~'",
        ),
        ({"match": "all", "rules": [{"field": "score", "op": "="}]}, "'=' needs a value"),
        ({"activity": {"types": [99]}, "has": True}, "rule.activity.types[0]: unknown activity type 99"),
        ({"activity": {"atLeast": 2}, "has": False}, "'has no activity' takes no atLeast"),
        ({"field": "x", "op": "within", "window": {"amount": 0, "unit": "days"}}, "rule.window.amount"),
        ({"bogus": 1}, "not a group or predicate"),
    ],
)
def test_invalid_json_names_the_bad_part(data: object, message: str) -> None:
    with pytest.raises(QueryError) as err:
        rule_from_json(data)
    assert message in str(err.value)


def test_windows_use_calendar_months_and_the_account_day() -> None:
    moment = Moment(NOW, "Asia/Tokyo")  # 12:00 in Tokyo on 15 June
    assert moment.today == dt.date(2026, 6, 15)
    assert Window(12, Unit.MONTHS).start_date(dt.date(2026, 3, 31)) == dt.date(2025, 3, 31)
    assert Window(1, Unit.MONTHS).start_date(dt.date(2026, 3, 31)) == dt.date(2026, 2, 28)
    assert Window(2, Unit.WEEKS).start(NOW) == NOW - dt.timedelta(days=14)


def test_explain_reports_each_predicate() -> None:
    rule = parse_rule(
        'all(score >= 50, any(has tag "VIP", has opportunity(stageName = "Closed Lost", closeDate within last 12 months)))'
    )
    facts = Facts(
        prospect={"score": 80},
        opportunities=({"stageName": "closed lost", "closeDate": dt.date(2025, 9, 1), "isDeleted": False},),
    )
    result = explain(rule, facts, CATALOG, Moment(NOW))
    assert result.to_dict() == {
        "rule": "all(…)",
        "matched": True,
        "children": [
            {"rule": "score >= 50", "matched": True},
            {
                "rule": "any(…)",
                "matched": True,
                "children": [
                    {"rule": 'has tag "VIP"', "matched": False},
                    {
                        "rule": 'has opportunity(stageName = "Closed Lost", closeDate within last 12 months)',
                        "matched": True,
                    },
                ],
            },
        ],
    }
    assert evaluate(rule, Facts(prospect={"score": None}), CATALOG, Moment(NOW)) is False
