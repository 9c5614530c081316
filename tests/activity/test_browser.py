"""A real browser (Debian's chromium through Playwright) on a landing page: tracked anonymous
visit, a form error shown, a successful submission, and the prospect that results — with its
earlier page views on the timeline and the right score."""

from __future__ import annotations

import os

import pytest
from sqlalchemy.engine import Engine

from renkei.clock import SystemClock
from renkei.marketing.activity_service import ActivityService
from renkei.marketing.forms import AssetService
from renkei.marketing.scoring_service import ScoringService
from renkei.marketing.service import CampaignService, ProspectService

from .helpers import live_server

CHROMIUM = "/usr/bin/chromium"
DESKTOP_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
)
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


@pytest.mark.browser
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed (make browser)")
def test_visit_error_submission_and_timeline(sqlite_engine: Engine) -> None:
    from playwright.sync_api import sync_playwright

    engine = sqlite_engine
    clock = SystemClock()
    campaign = CampaignService(engine, clock=clock).create({"name": "展示会2026"})
    assets = AssetService(engine, clock=clock)
    form = assets.create_form(
        "資料請求",
        [
            {"name": "email", "label": {"ja": "メールアドレス", "en": "Email"}, "required": True},
            {"name": "lastName", "label": {"ja": "姓", "en": "Last name"}, "required": True},
            {"name": "company", "label": {"ja": "会社名", "en": "Company"}},
        ],
        campaign_id=campaign["id"],
        thank_you="<p>資料をお送りします。</p>",
    )
    assets.create_landing_page("製品資料LP", "whitepaper", title="製品資料ダウンロード", form_id=form["id"],
                               content="<p>導入事例をまとめた資料です。</p>", campaign_id=campaign["id"])  # fmt: skip

    with live_server(engine, clock) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        # Headless chromium says "HeadlessChrome", which the crawler list rightly treats as a bot.
        page = browser.new_page(user_agent=DESKTOP_UA)
        page.goto(f"{base}/lp/whitepaper?utm_source=newsletter")
        page.wait_for_function("window.renkeiTracked === 1")  # the page view is acknowledged
        assert page.locator("h1").inner_text() == "製品資料ダウンロード"

        page.fill("#f-email", "tanaka@")
        page.click("button[type=submit]")
        assert page.locator("#error-email").inner_text() == "メールアドレスの形式が正しくありません。"
        assert page.locator("#error-lastName").inner_text() == "必須項目です。"
        page.wait_for_function("window.renkeiTracked === 1")

        page.fill("#f-email", "Tanaka@Example.co.jp")
        page.fill("#f-lastName", "田中")
        page.fill("#f-company", "株式会社タナカ")
        page.click("button[type=submit]")
        assert page.locator("#thank-you").inner_text() == "資料をお送りします。"
        page.wait_for_function("window.renkeiTracked === 1")
        browser.close()

    prospect = ProspectService(engine).find("tanaka@example.co.jp")
    assert {k: prospect[k] for k in ("lastName", "company", "campaignId", "source", "convertedFromObjectType")} == {
        "lastName": "田中", "company": "株式会社タナカ", "campaignId": campaign["id"], "source": "newsletter",
        "convertedFromObjectType": "LandingPage",
    }  # fmt: skip
    timeline = ActivityService(engine).timeline(prospect["id"])
    assert [
        (r["kind"], r.get("typeLabel"), r.get("typeName") or r.get("url", "").split("/")[-1], r["points"])
        for r in timeline
    ] == [
        ("page_view", None, "whitepaper?lang=ja", 1),  # the thank-you page, now as a prospect
        ("activity", "Success", "Landing Page", 50),
        ("page_view", None, "whitepaper?lang=ja", 1),  # the page showing the errors
        ("activity", "Error", "Landing Page", -5),
        ("page_view", None, "whitepaper?utm_source=newsletter", 1),  # the anonymous visit
        ("activity", "Visit", "Visit", 3),
        ("activity", "View", "Landing Page", 0),
    ]
    # Visit +3, three page views +1 each, form error -5, landing-page success +50 (AE's baseline).
    assert prospect["score"] == 3 + 1 - 5 + 1 + 50 + 1 == 51
    explained = ScoringService(engine).explain(prospect["id"])
    assert explained["score"] == 51 == sum(c["points"] for c in explained["contributions"])
