"""Reports: the seed examples, funnel, campaign influence and ROI, saved reports, CSV, calendar."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy.engine import Connection, Engine

from renkei.clock import FixedClock
from renkei.errors import InputError, NotFoundError
from renkei.segments.reports import ReportService, marketing_calendar
from renkei.store import tables as t
from renkei.store.tables_email import email_template, list_email

NOW = dt.datetime(2026, 6, 15, 3, 0, tzinfo=dt.UTC)


def ago(days: float) -> dt.datetime:
    return NOW - dt.timedelta(days=days)


def _lead(conn: Connection, lead_id: str, converted: dt.date | None) -> None:
    stamps = {k: NOW for k in ("CreatedDate", "LastModifiedDate", "SystemModstamp")}
    users = {k: "005000000000001AAA" for k in ("CreatedById", "LastModifiedById", "OwnerId")}
    conn.execute(
        t.CRM_TABLES["Lead"]
        .insert()
        .values(Id=lead_id, LastName="x", Company="y", Status="Open - Not Contacted", IsDeleted=False,
                IsConverted=converted is not None, ConvertedDate=converted, **stamps, **users)
    )  # fmt: skip


def _world(engine: Engine) -> None:
    lead1, lead2, lead5 = "00Q000000000001AAA", "00Q000000000002AAA", "00Q000000000005AAA"
    prospects: list[dict[str, Any]] = [
        {"id": 1, "salesforceLeadId": lead1, "score": 120, "grade": "A", "firstAssignedAt": ago(30)},
        {"id": 2, "salesforceLeadId": lead2, "score": 30, "grade": "B"},
        {"id": 3, "salesforceContactId": "003000000000003AAA", "score": 60, "firstAssignedAt": ago(300)},
        {"id": 4, "salesforceContactId": "003000000000004AAA", "score": -5, "grade": "B"},
        {"id": 5, "salesforceLeadId": lead5, "score": 60, "grade": "A", "firstAssignedAt": ago(50)},
        {"id": 6, "score": 10, "isDeleted": True},
    ]
    with engine.begin() as conn:
        for p in prospects:
            row = {
                "email": f"p{p['id']}@example.jp",
                "createdAt": ago(100),
                "updatedAt": ago(1),
                "isDeleted": False,
            }
            conn.execute(t.prospect.insert().values({**row, **p}))
        for i in range(1, 8):  # seven visitors, four became prospects 1, 3, 5 (and one more for 5)
            pid = {1: 1, 2: 3, 3: 5, 4: 5}.get(i)
            conn.execute(t.visitor.insert().values(id=i, prospectId=pid, pageViewCount=1, isIdentified=pid is not None,
                                                   doNotSell=False, createdAt=ago(110 + i), updatedAt=ago(110)))  # fmt: skip
        _lead(conn, lead5, ago(40).date())
        _lead(conn, lead1, None)
        for c in [
            {"id": 1, "name": "Webinar", "cost": 1000.0, "startDate": dt.date(2026, 6, 20), "isActive": True,
             "createdAt": NOW, "updatedAt": NOW},
            {"id": 2, "name": "Ads", "cost": 500.0, "endDate": dt.date(2026, 6, 30), "isActive": True,
             "createdAt": NOW, "updatedAt": NOW},
            {"id": 3, "name": "Free", "cost": None, "isActive": True, "createdAt": NOW, "updatedAt": NOW},
        ]:  # fmt: skip
            conn.execute(t.campaign.insert().values(c))
        activities = [
            (1, 20, 1, ago(3)), (1, 20, None, ago(10)), (2, 20, None, ago(10)),
            (3, 4, None, ago(5)), (4, 1, None, ago(2)),
            (5, 1, 2, ago(40)), (5, 4, 1, ago(20)), (5, 1, 3, ago(1)),
        ]  # fmt: skip
        conn.execute(
            t.visitor_activity.insert(),
            [
                {"prospectId": p, "type": ty, "campaignId": c, "createdAt": at, "updatedAt": at}
                for p, ty, c, at in activities
            ],
        )
        opportunities = [
            {"id": 1, "stageName": "Closed Lost", "isClosed": True, "isWon": False, "closeDate": dt.date(2025, 1, 10),
             "createdAt": ago(600)},
            {"id": 2, "stageName": "Closed Lost", "isClosed": True, "isWon": False, "closeDate": dt.date(2026, 3, 1),
             "createdAt": ago(200)},
            {"id": 3, "stageName": "Closed Won", "isClosed": True, "isWon": True, "closeDate": ago(5).date(),
             "amount": 10000.0, "campaignId": 1, "createdAt": ago(10)},
        ]  # fmt: skip
        for o in opportunities:
            conn.execute(
                t.opportunity.insert().values(name=f"o{o['id']}", isDeleted=False, updatedAt=NOW, **o)
            )
        for oid, pid in ((1, 3), (2, 4), (3, 5)):
            conn.execute(
                t.opportunity_prospect.insert().values(opportunityId=oid, prospectId=pid, isPrimary=True)
            )


def test_seed_reports(engine: Engine) -> None:
    _world(engine)
    service = ReportService(engine, clock=FixedClock(NOW))
    visits = service.run("leads-web-visits").to_dict()
    assert [(r["prospectId"], r["visits"], r["lastVisitAt"]) for r in visits["rows"]] == [(1, 1, ago(3))]
    lost = service.run("lost-reengaged").to_dict()
    assert [(r["prospectId"], r["lostCloseDate"], r["recentActivities"]) for r in lost["rows"]] == [
        (3, dt.date(2025, 1, 10), 1)
    ]
    grades = service.run("score-grade").to_dict()
    assert grades["rows"] == [
        {"scoreBand": "<0", "grade": "B", "prospects": 1},
        {"scoreBand": "25-49", "grade": "B", "prospects": 1},
        {"scoreBand": "50-99", "grade": "A", "prospects": 1},
        {"scoreBand": "50-99", "grade": "none", "prospects": 1},
        {"scoreBand": "100+", "grade": "A", "prospects": 1},
    ]
    assert grades["summary"] == {"prospects": 5}


def test_funnel_influence_and_roi(engine: Engine) -> None:
    _world(engine)
    service = ReportService(engine, clock=FixedClock(NOW))
    assert service.run("funnel").to_dict()["rows"] == [
        {"stage": "visitor", "count": 7, "conversionRate": None, "avgDaysInPreviousStage": None},
        # first visits 111, 112, 114 days ago; prospects created 100 days ago
        {"stage": "prospect", "count": 5, "conversionRate": 0.7143, "avgDaysInPreviousStage": 12.33},
        # assigned 70 and 50 days after creation (prospect 3's assignment predates it: left out)
        {"stage": "mql", "count": 3, "conversionRate": 0.6, "avgDaysInPreviousStage": 60.0},
        # lead converted on 6 May (a date: midnight UTC), 9.875 days after assignment
        {"stage": "salesAccepted", "count": 1, "conversionRate": 0.3333, "avgDaysInPreviousStage": 9.88},
        {"stage": "opportunity", "count": 3, "conversionRate": 3.0, "avgDaysInPreviousStage": 30.12},
        {"stage": "won", "count": 1, "conversionRate": 0.3333, "avgDaysInPreviousStage": 4.88},
    ]
    assert service.run("campaign-influence").to_dict()["rows"] == [
        {"campaignId": 1, "campaign": "Webinar", "opportunities": 1, "firstTouch": 0.0, "lastTouch": 10000.0,
         "evenDistribution": 5000.0},
        {"campaignId": 2, "campaign": "Ads", "opportunities": 1, "firstTouch": 10000.0, "lastTouch": 0.0,
         "evenDistribution": 5000.0},
    ]  # fmt: skip
    assert service.run("campaign-roi").to_dict()["rows"] == [
        {"campaignId": 1, "campaign": "Webinar", "cost": 1000.0, "wonAmount": 10000.0, "roi": 9.0,
         "influencedWonAmount": 5000.0, "influencedRoi": 4.0},
        {"campaignId": 2, "campaign": "Ads", "cost": 500.0, "wonAmount": 0.0, "roi": -1.0,
         "influencedWonAmount": 5000.0, "influencedRoi": 9.0},
        {"campaignId": 3, "campaign": "Free", "cost": 0.0, "wonAmount": 0.0, "roi": None,
         "influencedWonAmount": 0.0, "influencedRoi": None},
    ]  # fmt: skip


def test_saved_reports_and_csv(engine: Engine) -> None:
    _world(engine)
    service = ReportService(engine, clock=FixedClock(NOW))
    saved = service.save(
        "engaged by grade", rule="all(score >= 0)", group_by=["grade"], measures=["count", "sum:score"]
    )
    assert saved == {"name": "engaged by grade", "description": None, "rule": "all(\n  score >= 0\n)",
                     "groupBy": ["grade"], "measures": ["count", "sum:score"]}  # fmt: skip
    report = service.run("engaged by grade")
    assert report.to_dict()["rows"] == [
        {"grade": None, "count": 1, "sum:score": 60},
        {"grade": "A", "count": 2, "sum:score": 180},
        {"grade": "B", "count": 1, "sum:score": 30},
    ] or report.to_dict()["rows"] == [
        {"grade": "A", "count": 2, "sum:score": 180},
        {"grade": "B", "count": 1, "sum:score": 30},
        {"grade": None, "count": 1, "sum:score": 60},
    ]  # NULLs sort first on SQLite, last on PostgreSQL
    assert report.to_csv(bom=True).startswith("\ufeffgrade,count,sum:score\r\n")
    assert "\r\nA,2,180\r\n" in report.to_csv()
    assert [r["name"] for r in service.reports()][-1] == "engaged by grade"
    with pytest.raises(InputError, match="bad measure 'sum:email'"):
        service.save("x", measures=["sum:email"])
    with pytest.raises(InputError, match="unknown prospect field 'colour'"):
        service.save("x", group_by=["colour"])
    with pytest.raises(NotFoundError, match="report 'nope' not found"):
        service.run("nope")
    service.delete("engaged by grade")
    with pytest.raises(NotFoundError):
        service.delete("engaged by grade")


def test_marketing_calendar(engine: Engine) -> None:
    _world(engine)
    with engine.begin() as conn:
        template = conn.execute(
            email_template.insert()
            .values(
                name="t",
                subject="s",
                htmlBody="h",
                textBody="t",
                isOperational=False,
                createdAt=NOW,
                updatedAt=NOW,
            )
            .returning(email_template.c.id)
        ).scalar_one()
        for name, status, when in (
            ("June news", "scheduled", dt.datetime(2026, 6, 21, 16, 0, tzinfo=dt.UTC)),
            ("Sent one", "sent", NOW),
            ("Later", "scheduled", dt.datetime(2026, 8, 1, tzinfo=dt.UTC)),
        ):
            conn.execute(list_email.insert().values(name=name, templateId=template, listIds=[], suppressionListIds=[],
                                                    isOperational=False, status=status, scheduledAt=when,
                                                    recipientCount=0, skippedCount=0, createdAt=NOW, updatedAt=NOW))  # fmt: skip
    items = marketing_calendar(engine, dt.date(2026, 6, 1), dt.date(2026, 6, 30))
    assert [(i["date"], i["kind"], i["title"]) for i in items] == [
        ("2026-06-20", "campaign_start", "Webinar"),
        ("2026-06-22", "list_email", "June news"),  # 01:00 on the 22nd in Tokyo
        ("2026-06-30", "campaign_end", "Ads"),
    ]
    with pytest.raises(InputError, match="end is before its start"):
        marketing_calendar(engine, dt.date(2026, 6, 2), dt.date(2026, 6, 1))


def test_calendar_api_over_http(engine: Engine) -> None:
    import httpx

    from renkei.web.auth import AuthService

    from ..activity.helpers import live_server

    _world(engine)
    auth = AuthService(engine)
    user = auth.create_user("mk@example.jp", role="marketing", password="a-long-password-1")
    token = auth.create_token(user["id"], "calendar").token
    with live_server(engine, FixedClock(NOW)) as base:
        ok = httpx.get(f"{base}/api/calendar", params={"start": "2026-06-01", "end": "2026-06-30"},
                       headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        anonymous = httpx.get(f"{base}/api/calendar", params={"start": "2026-06-01", "end": "2026-06-30"})
        backwards = httpx.get(f"{base}/api/calendar", params={"start": "2026-06-02", "end": "2026-06-01"},
                              headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert ok.status_code == 200
    assert ok.json() == {
        "start": "2026-06-01",
        "end": "2026-06-30",
        "items": [
            {
                "date": "2026-06-20",
                "at": None,
                "kind": "campaign_start",
                "id": 1,
                "title": "Webinar",
                "campaignId": 1,
            },
            {
                "date": "2026-06-30",
                "at": None,
                "kind": "campaign_end",
                "id": 2,
                "title": "Ads",
                "campaignId": 2,
            },
        ],
    }
    assert anonymous.status_code == 401
    assert (backwards.status_code, backwards.json()["errorCode"]) == (400, "INVALID_ARGUMENT")
