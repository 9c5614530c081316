"""Each AE activity type's effect on lastActivityAt / firstActivityAt and on the score."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.engine import Engine

from renkei.core.activities import ActivityType, AssetKind, activity_effect, is_undeliverable, type_label
from renkei.core.scoring import ScoreModel
from renkei.marketing.activity_service import ActivityService, NewActivity

from .helpers import T0, clock, get, prospect

T, K = ActivityType, AssetKind

#: (type, typeName, refs, moves lastActivityAt, default points)
CASES = [
    (T.CLICK, K.EMAIL_TRACKER, {"emailId": 1}, True, 3),
    (T.VIEW, K.FILE, {"fileId": 1}, True, 3),
    (T.VIEW, K.FORM, {"formId": 1}, True, 0),
    (T.VIEW, K.LANDING_PAGE, {"landingPageId": 1}, True, 0),
    (T.ERROR, K.FORM, {"formId": 1}, True, -5),
    (T.ERROR, K.FORM_HANDLER, {"formHandlerId": 1}, True, -5),
    (T.SUCCESS, K.FORM, {"formId": 1}, True, 50),
    (T.SUCCESS, K.FORM_HANDLER, {"formHandlerId": 1}, True, 50),
    (T.SUCCESS, K.LANDING_PAGE, {"landingPageId": 1}, True, 50),
    (T.SESSION, K.VISITOR, {}, True, 3),
    (T.SENT, K.EMAIL, {"emailId": 1}, False, 0),
    (T.SEARCH, K.SITE_SEARCH, {}, True, 3),
    (T.NEW_OPPORTUNITY, K.OPPORTUNITY, {"opportunityId": "006000000000001AAA"}, False, 50),
    (T.OPPORTUNITY_WON, K.OPPORTUNITY, {"opportunityId": "006000000000001AAA"}, False, 0),
    (T.OPPORTUNITY_LOST, K.OPPORTUNITY, {"opportunityId": "006000000000001AAA"}, False, -100),
    (T.OPEN, K.EMAIL, {"emailId": 1}, False, 0),
    (T.UNSUBSCRIBE_PAGE, K.EMAIL, {"emailId": 1}, True, 0),
    (T.BOUNCED, K.EMAIL, {"emailId": 1}, False, 0),
    (T.SPAM_COMPLAINT, K.EMAIL, {"emailId": 1}, True, 0),
    (T.CLICK_THIRD_PARTY, K.EMAIL, {"emailId": 1}, True, 3),
    (T.VISIT, K.VISIT, {"visitId": None}, True, 3),
    (T.CUSTOM_URL_CLICK, K.CUSTOM_REDIRECT, {"customRedirectId": 1}, True, 3),
    (T.OLARK_CHAT, None, {}, True, 10),
    (T.VIDEO_CONVERSION, None, {}, True, 50),
    (T.VIDEO_WATCHED, None, {}, True, 25),
    (T.INDIRECT_BOUNCE, K.EMAIL, {"emailId": 1}, False, 0),
]


def test_each_type_effect_on_last_activity_and_score(engine: Engine) -> None:
    clk = clock()
    service = ActivityService(engine, clock=clk)
    seen = []
    for i, (code, kind, refs, moves, points) in enumerate(CASES):
        pid = prospect(engine, clk, f"p{i}@example.jp")
        clk.advance(minutes=1)
        service.record(NewActivity(code, kind, prospect_id=pid, refs=refs, details="x"))
        after = get(engine, pid)
        when = clk.now() if moves else None
        seen.append((code, after["lastActivityAt"], after["firstActivityAt"], after["score"]))
        assert seen[-1] == (code, when, when, points)


def test_older_activity_never_moves_last_activity_back(engine: Engine) -> None:
    clk = clock()
    pid = prospect(engine, clk)
    service = ActivityService(engine, clock=clk)
    service.record(NewActivity(T.SUCCESS, K.FORM, prospect_id=pid, refs={"formId": 1}))
    service.record(NewActivity(T.VIEW, K.FILE, prospect_id=pid, at=T0 - dt.timedelta(days=3)))
    after = get(engine, pid)
    assert (after["lastActivityAt"], after["firstActivityAt"], after["score"]) == (
        T0,
        T0 - dt.timedelta(days=3),
        53,
    )


def test_timeline_lists_activities_newest_first_with_points(engine: Engine) -> None:
    clk = clock()
    pid = prospect(engine, clk)
    service = ActivityService(engine, clock=clk)
    service.record(NewActivity(T.SENT, K.EMAIL, prospect_id=pid, details="春のご案内", refs={"emailId": 7}))
    clk.advance(minutes=5)
    service.record(
        NewActivity(T.SUCCESS, K.FORM, prospect_id=pid, details="お問い合わせ", refs={"formId": 2})
    )
    rows = service.timeline(pid)
    assert [
        (r["type"], r["typeLabel"], r["typeName"], r["details"], r["points"], r["movesLastActivity"])
        for r in rows
    ] == [
        (4, "Success", "Form", "お問い合わせ", 50, True),
        (6, "Sent", "Email", "春のご案内", 0, False),
    ]
    assert rows[0]["formId"] == 2 and rows[1]["emailId"] == 7


def test_unknown_reference_is_rejected() -> None:
    with pytest.raises(Exception, match="unknown activity references"):
        NewActivity(T.CLICK, K.FORM, prospect_id=1, refs={"nope": 1})


def test_pure_rules() -> None:
    assert (type_label(14), type_label(17), type_label(99)) == (
        "Spam Complaint",
        "Click (Third Party)",
        "Unknown",
    )
    assert activity_effect(6, T0, None, None).last_activity_at is None
    assert activity_effect(20, T0, T0 + dt.timedelta(days=1), None).last_activity_at == T0 + dt.timedelta(
        days=1
    )
    assert [is_undeliverable(False, n) for n in (0, 4, 5)] == [False, False, True]
    assert is_undeliverable(True, 0)
    assert ScoreModel().activity_points_for(2, "Form", {}) == 0


def test_opportunity_events_from_crm_mirror(engine: Engine) -> None:
    import sqlalchemy as sa

    from renkei.marketing.activity_service import record_opportunity_events
    from renkei.store import tables as t

    clk = clock()
    pid = prospect(engine, clk)
    with engine.begin() as conn:
        opp = conn.execute(t.opportunity.insert().values(salesforceId="006000000000001AAA", name="大型案件", isWon=False,
                                                         isClosed=False, isDeleted=False, createdAt=T0, updatedAt=T0)
                           ).inserted_primary_key[0]  # fmt: skip
        conn.execute(
            t.opportunity_prospect.insert().values(opportunityId=opp, prospectId=pid, isPrimary=True)
        )
        assert record_opportunity_events(conn, clk.now()) == 1
        assert record_opportunity_events(conn, clk.now()) == 0  # once
        conn.execute(t.opportunity.update().values(isClosed=True, updatedAt=T0 + dt.timedelta(days=30)))
        assert record_opportunity_events(conn, clk.now()) == 1
        types = (
            conn.execute(sa.select(t.visitor_activity.c.type).order_by(t.visitor_activity.c.id))
            .scalars()
            .all()
        )
    assert types == [8, 10]
    after = get(engine, pid)
    assert (after["score"], after["lastActivityAt"]) == (50 - 100, None)  # passive: no last activity
