"""Lists: incremental membership equals a full refresh; static and suppression lists; explain."""

from __future__ import annotations

import datetime as dt
import random

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from renkei.clock import FixedClock
from renkei.core.rules import Node, format_rule
from renkei.core.rules.evaluate import Moment
from renkei.errors import InputError, NotFoundError, QueryError
from renkei.segments.compile import context_for, matching_ids
from renkei.segments.lists import SegmentService
from renkei.store import tables as t
from renkei.store.tables_segments import segment_change

from .helpers import NOW, World, load, make_world, random_change, rules, setup_schema


def test_incremental_refresh_equals_full_refresh(engine: Engine) -> None:
    list_ids = setup_schema(engine)

    @settings(
        max_examples=12,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        world=st.integers(min_value=0, max_value=2**32).map(lambda seed: make_world(seed, 15)),
        rule=rules(list_ids),
        steps=st.lists(st.tuples(st.integers(0, 2**32), st.integers(0, 40)), min_size=1, max_size=6),
    )
    def check(world: World, rule: Node, steps: list[tuple[int, int]]) -> None:
        load(engine, world, list_ids)
        clock = FixedClock(NOW)
        service = SegmentService(engine, clock=clock)
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM list WHERE id > 2"))
        created = service.create("dynamic", rule=format_rule(rule))
        for seed, days in steps:
            now = clock.advance(days=days, seconds=1)
            random_change(engine, random.Random(seed), now, list_ids)
            clock.advance(seconds=1)
            [result] = service.refresh(created["id"])
            assert result.mode == "incremental"
            with engine.connect() as conn:
                want = matching_ids(conn, rule, context_for(conn, Moment(clock.now())))
            assert service.member_ids(created["id"]) == want

    check()


def _prospect(engine: Engine, pid: int, **values: object) -> None:
    row = {"id": pid, "email": f"p{pid}@example.com", "createdAt": NOW, "updatedAt": NOW, **values}
    with engine.begin() as conn:
        conn.execute(t.prospect.insert().values(row))


def test_static_and_suppression_lists(engine: Engine) -> None:
    clock = FixedClock(NOW)
    service = SegmentService(engine, clock=clock)
    for pid, score in ((1, 10), (2, 80), (3, 120)):
        _prospect(engine, pid, score=score, isDeleted=False)
    seeded = service.create("seeded", rule="all(score >= 50)", static=True)
    assert (seeded["kind"], seeded["memberCount"], seeded["isDynamic"]) == ("static", 2, False)
    assert service.add(seeded["id"], [1, 2]) == 1
    assert service.remove(seeded["id"], [3]) == 1
    assert service.member_ids(seeded["id"]) == {1, 2}
    suppress = service.create("do not mail", static=True, suppression=True)
    assert (suppress["isSuppression"], suppress["memberCount"], suppress["rule"]) == (True, 0, None)
    dynamic = service.create("hot", rule="all(score > 100)")
    with pytest.raises(InputError, match="is dynamic"):
        service.add(dynamic["id"], [1])
    with pytest.raises(NotFoundError, match=r"prospects not found: \[9\]"):
        service.add(seeded["id"], [9])
    with pytest.raises(InputError, match="cannot use its own membership"):
        service.set_rule(dynamic["id"], f"all(in list {dynamic['id']})")
    with pytest.raises(NotFoundError, match=r"lists that do not exist: \[99\]"):
        service.create("bad", rule="all(in list 99)")
    with pytest.raises(QueryError, match="unknown prospect field 'scroe'"):
        service.create("bad", rule="all(scroe > 1)")
    assert [(x["name"], x["kind"], x["memberCount"]) for x in service.lists()] == [
        ("seeded", "static", 2),
        ("do not mail", "static", 0),
        ("hot", "dynamic", 1),
    ]


def test_refresh_follows_time_and_changes_and_explains(engine: Engine) -> None:
    clock = FixedClock(NOW)
    service = SegmentService(engine, clock=clock)
    _prospect(engine, 1, score=60, isDeleted=False, lastActivityAt=NOW - dt.timedelta(days=5))
    yesterday = NOW - dt.timedelta(days=1)
    _prospect(engine, 2, score=60, isDeleted=False, lastActivityAt=yesterday, updatedAt=yesterday)
    lst = service.create("recent", rule="all(score >= 50, lastActivityAt within last 7 days)")
    assert service.member_ids(lst["id"]) == {1, 2}
    clock.advance(days=3)
    [result] = service.refresh(lst["id"])  # looks at 1 only: its window flipped
    assert result.to_dict() == {
        "listId": lst["id"],
        "mode": "incremental",
        "evaluated": 1,
        "added": 0,
        "removed": 1,
        "memberCount": 1,
    }
    explained = service.explain(lst["id"], 1)
    assert explained == {
        "listId": lst["id"],
        "prospectId": 1,
        "matches": False,
        "isMember": False,
        "explanation": {
            "rule": "all(…)",
            "matched": False,
            "children": [
                {"rule": "score >= 50", "matched": True},
                {"rule": "lastActivityAt within last 7 days", "matched": False},
            ],
        },
    }
    [full] = service.refresh(lst["id"], full=True)
    assert (full.mode, full.added, full.removed, full.member_count) == ("full", 0, 0, 1)
    service.refresh()
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(segment_change)).scalar_one() == 0


def test_each_kind_of_change_reaches_a_dynamic_list(engine: Engine) -> None:
    """Link-table writes (no timestamps) and new activities are seen without touching prospects."""
    clock = FixedClock(NOW)
    service = SegmentService(engine, clock=clock)
    old = NOW - dt.timedelta(days=30)
    for pid in (1, 2, 3, 4, 5):
        _prospect(engine, pid, isDeleted=False, updatedAt=old)
    static = service.create("static", static=True)
    rule = (
        f'any(has tag "VIP", in list {static["id"]}, has activity(type in (SUCCESS)), '
        'has opportunity(stageName = "Closed Lost"), account.industry = "Retail")'
    )
    lst = service.create("any", rule=rule)
    assert service.member_ids(lst["id"]) == set()
    later = NOW + dt.timedelta(hours=1)
    with engine.begin() as conn:
        tag_id = conn.execute(
            t.tag.insert().values(name="VIP", createdAt=later).returning(t.tag.c.id)
        ).scalar_one()
        conn.execute(t.tag_object.insert().values(tagId=tag_id, objectType="prospect", objectId=1))
        conn.execute(
            t.visitor_activity.insert().values(type=4, prospectId=3, createdAt=later, updatedAt=later)
        )
        opp = conn.execute(
            t.opportunity.insert()
            .values(
                name="o",
                stageName="Prospecting",
                isWon=False,
                isClosed=False,
                isDeleted=False,
                createdAt=old,
                updatedAt=old,
            )
            .returning(t.opportunity.c.id)
        ).scalar_one()
        conn.execute(t.opportunity_prospect.insert().values(opportunityId=opp, prospectId=4, isPrimary=False))
        account = conn.execute(
            t.prospect_account.insert()
            .values(name="a", industry="Other", isDeleted=False, createdAt=old, updatedAt=old)
            .returning(t.prospect_account.c.id)
        ).scalar_one()
        conn.execute(t.prospect.update().where(t.prospect.c.id == 5).values(prospectAccountId=account))
    service.add(static["id"], [2])
    clock.advance(hours=2)
    [result] = service.refresh(lst["id"])
    assert service.member_ids(lst["id"]) == {1, 2, 3}
    with engine.begin() as conn:
        conn.execute(t.opportunity.update().values(stageName="Closed Lost", updatedAt=later))
        conn.execute(t.prospect_account.update().values(industry="Retail", updatedAt=later))
    service.refresh(lst["id"])
    assert service.member_ids(lst["id"]) == {1, 2, 3, 4, 5}
    with engine.begin() as conn:
        conn.execute(t.tag_object.delete())
        conn.execute(t.opportunity_prospect.delete())
    service.remove(static["id"], [2])
    [result] = service.refresh(lst["id"])
    assert (result.mode, result.removed, service.member_ids(lst["id"])) == ("incremental", 3, {3, 5})


def test_activity_and_opportunity_windows_move_with_time(engine: Engine) -> None:
    clock = FixedClock(NOW)
    service = SegmentService(engine, clock=clock)
    for pid in (1, 2):
        _prospect(engine, pid, isDeleted=False)
    with engine.begin() as conn:
        conn.execute(t.visitor_activity.insert().values(type=20, prospectId=1, createdAt=NOW - dt.timedelta(days=5),
                                                        updatedAt=NOW))  # fmt: skip
        conn.execute(t.opportunity.insert().values(id=1, name="o", isWon=False, isClosed=True, isDeleted=False,
                                                   closeDate=dt.date(2025, 6, 20), createdAt=NOW, updatedAt=NOW))  # fmt: skip
        conn.execute(t.opportunity_prospect.insert().values(opportunityId=1, prospectId=2, isPrimary=True))
    lst = service.create(
        "windows",
        rule="any(has activity(within last 7 days), has opportunity(closeDate within last 12 months))",
    )
    assert service.member_ids(lst["id"]) == {1, 2}
    clock.advance(days=3)  # the visit is 8 days old; the close date still within 12 months (15 June 2025 on)
    [result] = service.refresh(lst["id"])
    assert (result.evaluated, service.member_ids(lst["id"])) == (1, {2})
    clock.advance(days=3)  # today 21 June 2026 in Tokyo: 12 months back is 21 June 2025
    [result] = service.refresh(lst["id"])
    assert (result.evaluated, service.member_ids(lst["id"])) == (1, set())


def test_refresh_job_is_discovered_and_refreshes_every_dynamic_list(engine: Engine) -> None:
    from renkei.jobs import discover
    from renkei.segments.jobs import refresh_lists

    assert "lists.refresh" in {job.name for job in discover()}
    clock = FixedClock(NOW)
    _prospect(engine, 1, score=60, isDeleted=False)
    service = SegmentService(engine, clock=clock)
    lst = service.create("hot", rule="all(score >= 50)")
    with engine.begin() as conn:
        conn.execute(t.prospect.update().values(score=10, updatedAt=NOW + dt.timedelta(minutes=1)))
    clock.advance(minutes=2)
    assert refresh_lists(engine, clock) == {"lists": 1, "added": 0, "removed": 1}
    assert service.member_ids(lst["id"]) == set()
