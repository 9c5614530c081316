"""Rule → SQL gives exactly the plain-Python evaluation, on SQLite and on PostgreSQL, whether
related data is tested as sets (``IN``) or as correlated probes (``EXISTS``)."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from renkei.core.rules import Node, validate
from renkei.core.rules.evaluate import Moment, evaluate
from renkei.segments.compile import context_for, matching_ids
from renkei.segments.facts import load_facts

from .helpers import NOW, World, load, rules, setup_schema, worlds


def test_sql_equals_python_evaluation(engine: Engine) -> None:
    list_ids = setup_schema(engine)

    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(world=worlds, rule=rules(list_ids), shift=st.integers(min_value=-2, max_value=2))
    def check(world: World, rule: Node, shift: int) -> None:
        load(engine, world, list_ids)
        moment = Moment(NOW.replace(hour=12 + shift * 5), "Asia/Tokyo")
        with engine.connect() as conn:
            ctx = context_for(conn, moment)
            validate(rule, ctx.catalog)
            got = matching_ids(conn, rule, ctx)
            probed = matching_ids(conn, rule, replace(ctx, correlated=True))
            facts = load_facts(conn, range(1, len(world.prospects) + 1))
        want = {
            pid
            for pid, f in facts.items()
            if not f.prospect["isDeleted"] and evaluate(rule, f, ctx.catalog, moment)
        }
        assert got == want
        assert probed == want

    check()


def test_in_with_mixed_int_and_decimal_values(engine: Engine) -> None:
    """`IN (-5, 1.5)` on a number field: every value is compared as a number of the field's type
    (PostgreSQL once bound the list so that 1.5 never matched)."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    from renkei.core.rules.evaluate import Moment
    from renkei.core.rules.text import parse_rule
    from renkei.marketing.service import ProspectService
    from renkei.segments.compile import context_for, matching_ids

    prospects = ProspectService(engine)
    prospects.add_field("Seats", "number", precision=18, scale=2)
    ids = {v: prospects.create({"email": f"seats{i}@example.jp", "Seats__c": v})["id"]
           for i, v in enumerate((1.5, 10.0, -5.0, 0.0))}  # fmt: skip
    moment = Moment(dt.datetime(2026, 11, 23, tzinfo=dt.UTC), ZoneInfo("Asia/Tokyo"))
    with engine.connect() as conn:
        ctx = context_for(conn, moment)
        for text in ("all(Seats__c in (-5, 1.5))", "all(Seats__c in (1.5, -5))"):
            assert matching_ids(conn, parse_rule(text), ctx) == {ids[1.5], ids[-5.0]}, text
        assert matching_ids(conn, parse_rule("all(Seats__c in (10, 0))"), ctx) == {ids[10.0], ids[0.0]}
