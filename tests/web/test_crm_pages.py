"""CRM pages over real HTTP: list views, the marketing panel of a lead, lead conversion and merge
through CrmService, and CSRF on those forms."""

from __future__ import annotations

import re

from sqlalchemy.engine import Engine

from renkei.clock import FixedClock
from renkei.crm.service import CrmService
from renkei.marketing.activity_service import ActivityService, NewActivity
from renkei.marketing.service import ProspectService

from .helpers import T0, Browser, live_server, make_user


def test_lead_panel_conversion_and_merge(sqlite_engine: Engine) -> None:
    engine, clock = sqlite_engine, FixedClock(T0)
    make_user(engine, "rep@example.com", "sales")
    crm = CrmService(engine, clock=clock)
    lead = crm.create(
        "Lead",
        {
            "LastName": "山田",
            "FirstName": "太郎",
            "Company": "連携株式会社",
            "Email": "Taro.Yamada@Renkei.example",
        },
    )
    prospects = ProspectService(engine, clock=clock)
    prospect = prospects.create({"email": "taro.yamada@renkei.example"})
    ActivityService(engine, clock=clock).record(
        NewActivity(type=4, prospect_id=prospect["id"], type_name="Form", details="資料請求フォーム")
    )
    score = prospects.get(prospect["id"])["score"]
    contacts = [crm.create("Contact", {"LastName": "佐藤", "Email": f"sato{i}@example.jp"}) for i in range(2)]
    with live_server(engine, clock) as base:
        web = Browser(base)
        web.sign_in("rep@example.com")
        web.post("/app/language", {"language": "en", "back": "/app"})
        listing = web.get("/app/crm/leads")
        assert re.findall(r'href="/app/crm/leads/([^"]+)">([^<]+)<', listing.text) == [(lead, "山田 太郎")]
        page = web.get(f"/app/crm/leads/{lead}").text
        panel = page[page.index('id="marketing-panel"') : page.index('id="convert-merge"')]
        assert re.findall(r'<td class="num score">(\d+)</td><td class="grade">([^<]*)</td>', panel) == [
            (str(score), "–")
        ]
        assert "(matched by email, not synced yet)" in panel and "資料請求フォーム" in panel

        assert web.post(f"/app/crm/leads/{lead}/convert", {}, csrf=False).status_code == 403
        converted = web.post(f"/app/crm/leads/{lead}/convert", {"opportunity_name": "連携 導入"})
        assert converted.status_code == 303
        contact_id = (
            converted.headers["location"]
            .removeprefix("/app/crm/contacts/")
            .removesuffix("?message=converted")
        )
        got = crm.get("Lead", lead, ["IsConverted", "ConvertedContactId"])
        assert (got["IsConverted"], got["ConvertedContactId"]) == (True, contact_id)
        contact_page = web.get(converted.headers["location"]).text
        assert "The lead was converted." in contact_page and "資料請求フォーム" in contact_page

        assert (
            web.post(f"/app/crm/contacts/{contacts[0]}/merge", {"duplicate_ids": contacts[1]}).status_code
            == 303
        )
        assert crm.get("Contact", contacts[1], ["IsDeleted"], include_deleted=True)["IsDeleted"] is True
        web.close()
