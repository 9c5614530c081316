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
    # custom fields of the other types: number(5, 2), date, text(10), multi-select (restricted)
    st.tuples(st.just("Score__c"), st.integers(-200_000, 200_000).map(lambda n: n / 100)).map(
        lambda t: (t[0], t[1], abs(t[1]) < 1000)),
    st.tuples(st.just("Score__c"), st.sampled_from(["12.5", "1,000", "abc", "1e2", "--1"])).map(
        lambda t: (t[0], t[1], t[1] in ("12.5", "1e2"))),
    st.tuples(st.just("Due__c"), st.dates().map(dt.date.isoformat)).map(lambda t: (t[0], t[1], True)),
    st.tuples(st.just("Due__c"), st.sampled_from(["2026-13-01", "2026-02-30", "tomorrow", "2026/04/01",
                                                  "2026-04-01x", "2026-04-01T09:00:00+09:00"])).map(
        lambda t: (t[0], t[1], t[1].endswith("+09:00"))),
    st.tuples(st.just("Code__c"), st.text(st.characters(blacklist_categories=("Cs",)), max_size=15)).map(
        lambda t: (t[0], t[1], len(t[1].replace("\x00", "")) <= 10)),
    st.tuples(st.just("Topics__c"), st.lists(st.sampled_from(["MA", "SFA", "ERP"]), max_size=3)).map(
        lambda t: (t[0], ";".join(t[1]), "ERP" not in t[1])),
)  # fmt: skip


def _snapshot(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        table = dynamic.load_crm_schema(conn).table("Lead")
        return [tuple(r) for r in conn.execute(sa.select(table).order_by(table.c.Id))]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(values, min_size=1, max_size=4, unique_by=lambda v: v[0]))
def test_rejects_what_salesforce_rejects_and_writes_nothing(engine: Engine, fields: list[Any]) -> None:
    crm = CrmService(engine)
    schema = crm.schema()
    if schema.object("Lead").field("Segment__c") is None:
        crm.add_field("Lead", "Segment__c", "picklist", values=["Enterprise", "SMB"], restricted=True)
        crm.add_field("Lead", "Score__c", "number", precision=5, scale=2)
        crm.add_field("Lead", "Due__c", "date")
        crm.add_field("Lead", "Code__c", "text", length=10)
        crm.add_field("Lead", "Topics__c", "multipicklist", values=["MA", "SFA"], restricted=True)
    record = {"LastName": "base", "Company": "base"} | {f: v for f, v, _ in fields}
    should_pass = all(ok for _, _, ok in fields)
    before = _snapshot(engine)
    try:
        crm.create("Lead", record)
    except ValidationError:
        assert not should_pass, record
        assert _snapshot(engine) == before
    else:
        assert should_pass, record
        assert len(_snapshot(engine)) == len(before) + 1
