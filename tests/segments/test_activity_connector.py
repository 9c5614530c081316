"""The activity connector: visitor activities and page views as CRM objects (describe + SOQL)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.engine import Engine

from renkei.clock import FixedClock
from renkei.crm.service import CrmService
from renkei.store import tables as t

NOW = dt.datetime(2026, 6, 15, 3, 0, tzinfo=dt.UTC)


def test_visitor_activity_and_page_views_through_soql(engine: Engine) -> None:
    crm = CrmService(engine, clock=FixedClock(NOW))
    lead = crm.create("Lead", {"LastName": "山田", "Company": "山田商店", "Email": "yamada@example.jp"})
    with engine.begin() as conn:
        conn.execute(t.prospect.insert().values(id=7, email="yamada@example.jp", salesforceLeadId=lead,
                                                isDeleted=False, createdAt=NOW, updatedAt=NOW))  # fmt: skip
        conn.execute(
            t.campaign.insert().values(id=3, name="Webinar", isActive=True, createdAt=NOW, updatedAt=NOW)
        )
        conn.execute(t.visitor.insert().values(id=1, prospectId=7, pageViewCount=1, isIdentified=True,
                                               doNotSell=False, createdAt=NOW, updatedAt=NOW))  # fmt: skip
        conn.execute(t.visitor_activity.insert().values(id=12, type=4, typeName="Form", details="資料請求",
                                                        prospectId=7, visitorId=1, campaignId=3, formId=2,
                                                        createdAt=NOW - dt.timedelta(days=2), updatedAt=NOW))  # fmt: skip
        conn.execute(t.visitor_activity.insert().values(id=13, type=20, typeName="Visit", details="3 page views",
                                                        prospectId=None, visitorId=1, createdAt=NOW, updatedAt=NOW))  # fmt: skip
        conn.execute(t.visitor_page_view.insert().values(id=5, visitorId=1, prospectId=7, url="https://example.jp/price",
                                                         title="料金", durationInSeconds=42, campaignId=3,
                                                         createdAt=NOW - dt.timedelta(days=1)))  # fmt: skip
    described = crm.describe("VisitorActivity")
    assert (described["keyPrefix"], described["createable"]) == ("a0V", False)
    assert {"Type", "TypeName", "Details", "LeadId", "ContactId", "CreatedDate"} <= {
        f["name"] for f in described["fields"]
    }
    result = crm.query(
        "SELECT Id, Type, TypeName, Details, LeadId, ContactId, ProspectId, CampaignName, CreatedDate "
        "FROM VisitorActivity WHERE LeadId != null AND CreatedDate = LAST_N_DAYS:7"
    )
    records = [{k: v for k, v in r.items() if k != "attributes"} for r in result["records"]]
    assert records == [
        {"Id": "a0V000000000000012", "Type": 4, "TypeName": "Form", "Details": "資料請求", "LeadId": lead,
         "ContactId": None, "ProspectId": 7, "CampaignName": "Webinar", "CreatedDate": "2026-06-13T03:00:00.000+0000"},
    ]  # fmt: skip
    views = crm.query("SELECT Url, Title, DurationInSeconds, Lead.Company FROM VisitorPageView")
    assert [
        (r["Url"], r["Title"], r["DurationInSeconds"], r["Lead"]["Company"]) for r in views["records"]
    ] == [("https://example.jp/price", "料金", 42, "山田商店")]


def test_crm_side_saved_report_over_engagement(engine: Engine) -> None:
    import pytest

    from renkei.errors import QueryError
    from renkei.segments.reports import ReportService

    crm = CrmService(engine, clock=FixedClock(NOW))
    lead = crm.create("Lead", {"LastName": "鈴木", "Company": "鈴木工業"})
    with engine.begin() as conn:
        conn.execute(t.prospect.insert().values(id=1, email="s@example.jp", salesforceLeadId=lead, isDeleted=False,
                                                createdAt=NOW, updatedAt=NOW))  # fmt: skip
        conn.execute(t.visitor_activity.insert().values(id=1, type=2, typeName="File", details="カタログ.pdf",
                                                        prospectId=1, createdAt=NOW, updatedAt=NOW))  # fmt: skip
    reports = ReportService(engine, clock=FixedClock(NOW))
    saved = reports.save("downloads", soql="SELECT Lead.Company, Details FROM VisitorActivity WHERE Type = 2")
    assert saved == {"name": "downloads", "description": None, "soql": saved["soql"]}
    report = reports.run("downloads").to_dict()
    assert (report["columns"], report["rows"], report["summary"]) == (
        ["Lead.Company", "Details"],
        [{"Lead.Company": "鈴木工業", "Details": "カタログ.pdf"}],
        {"totalSize": 1},
    )
    with pytest.raises(QueryError):
        reports.save("bad", soql="SELECT Nope FROM VisitorActivity")
