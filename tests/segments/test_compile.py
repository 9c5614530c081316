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
