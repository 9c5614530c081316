"""Validation rejects what Salesforce rejects, and a rejected write changes nothing."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from renkei.crm.service import CrmService
from renkei.errors import ValidationError
from renkei.store import dynamic

#: (field, value, accepted?) generators by the rule Salesforce applies to each type.
values = st.one_of(
    st.tuples(st.just("LastName"), st.text(min_size=1, max_size=100).filter(lambda s: s.strip()),).map(
        lambda t: (t[0], t[1], len(t[1]) <= 80)),
    st.tuples(st.just("NumberOfEmployees"), st.integers(-10**9, 10**9)).map(
        lambda t: (t[0], t[1], abs(t[1]) < 10**8)),
    st.tuples(st.just("NumberOfEmployees"), st.text(alphabet="abc.", min_size=1, max_size=4)).map(
        lambda t: (t[0], t[1], False)),
    st.tuples(st.just("Email"), st.sampled_from(["a@b.jp", "x.y@example.co.jp", "no-at-sign", "a@", "@b.jp"])).map(
        lambda t: (t[0], t[1], "@" in t[1] and not t[1].startswith("@") and not t[1].endswith("@"))),
    st.tuples(st.just("HasOptedOutOfEmail"), st.sampled_from(["true", "false", "maybe", "1"])).map(
        lambda t: (t[0], t[1], t[1] != "maybe")),
    st.tuples(st.just("ConvertedDate"), st.dates().map(dt.date.isoformat)).map(lambda t: (t[0], t[1], False)),
    st.tuples(st.just("Segment__c"), st.sampled_from(["Enterprise", "SMB", "Startup", ""])).map(
        lambda t: (t[0], t[1], t[1] != "Startup")),
)  # fmt: skip


def _snapshot(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        table = dynamic.load_crm_schema(conn).table("Lead")
        return [tuple(r) for r in conn.execute(sa.select(table).order_by(table.c.Id))]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(values, min_size=1, max_size=4, unique_by=lambda v: v[0]))
def test_rejects_what_salesforce_rejects_and_writes_nothing(sqlite_engine: Engine, fields: list[Any]) -> None:
    crm = CrmService(sqlite_engine)
    schema = crm.schema()
    if schema.object("Lead").field("Segment__c") is None:
        crm.add_field("Lead", "Segment__c", "picklist", values=["Enterprise", "SMB"], restricted=True)
    record = {"LastName": "base", "Company": "base"} | {f: v for f, v, _ in fields}
    should_pass = all(ok for _, _, ok in fields)
    before = _snapshot(sqlite_engine)
    try:
        crm.create("Lead", record)
    except ValidationError:
        assert not should_pass, record
        assert _snapshot(sqlite_engine) == before
    else:
        assert should_pass, record
        assert len(_snapshot(sqlite_engine)) == len(before) + 1
