"""The app in a real browser (Debian's chromium through Playwright) against a live server with
the demo org: sign in, every section, a prospect, a lead's marketing panel, an XSS payload typed
into the new-prospect form rendered inert, a CSRF-less post refused, the language switch.
Takes screenshots (dashboard, a prospect, the connector console): into docs/screenshots/ when
RENKEI_UPDATE_SCREENSHOTS=1, else into the test's temporary folder (a test run leaves the clone as
it found it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from renkei.clock import SystemClock
from renkei.marketing.demo import load_demo
from renkei.web.ui import views

from .helpers import PASSWORD, live_server, make_user

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
DOC_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PAYLOAD = "<img src=x onerror=window.__xss=1>"
SECTIONS = {
    "dashboard": "ダッシュボード",
    "prospects": "プロスペクト",
    "campaigns": "キャンペーン",
    "automation": "オートメーション",
    "email": "メール",
    "content": "コンテンツ",
    "reports": "レポート",
    "calendar": "マーケティングカレンダー",
    "crm": "リード",
    "connector": "コネクタコンソール",
    "settings": "設定",
}


@pytest.mark.browser
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed (make browser)")
def test_browse_the_app(sqlite_engine: Engine, tmp_path: Path) -> None:
    shots = DOC_SCREENSHOTS if os.environ.get("RENKEI_UPDATE_SCREENSHOTS") == "1" else tmp_path
    from playwright.sync_api import sync_playwright

    engine, clock = sqlite_engine, SystemClock()
    load_demo(engine, "small", clock=clock)
    make_user(engine, "marketing-lead@example.com", "admin")
    with engine.connect() as conn:
        lead_id, lead_score = conn.execute(
            sa.text(
                "SELECT l.Id, p.score FROM crm_lead l JOIN prospect p ON p.emailKey = lower(trim(l.Email)) "
                "WHERE p.isDeleted = false AND l.IsDeleted = false "
                "AND EXISTS (SELECT 1 FROM visitor_activity va WHERE va.prospectId = p.id) ORDER BY l.Id LIMIT 1"
            )
        ).one()
        busy_prospect = conn.execute(
            sa.text(
                "SELECT prospectId FROM visitor_activity WHERE prospectId IS NOT NULL GROUP BY prospectId ORDER BY count(*) DESC, prospectId LIMIT 1"
            )
        ).scalar_one()

    connector = views.connector_installed()
    settings = {"connector_config": str(tmp_path / "connector.yaml")}
    with live_server(engine, clock, **settings) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        # CSP off for the test's own page scripts; it would also block the payload, and this test is
        # about escaping (the CSP header itself is checked in test_ui)
        context = browser.new_context(
            viewport={"width": 1366, "height": 860}, locale="ja-JP", bypass_csp=True
        )
        page = context.new_page()
        page.goto(f"{base}/app/prospects")
        assert page.url == f"{base}/app/login?next=/app/prospects"
        page.fill("input[name=email]", "marketing-lead@example.com")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/app/prospects")

        for section, heading in SECTIONS.items():
            page.click(f"nav.side a[data-section={section}]")
            page.wait_for_load_state()
            assert page.locator("h1").first.inner_text().startswith(heading), section

        page.goto(f"{base}/app")
        page.wait_for_function("document.getElementById('funnel').width > 0 && window.Chart !== undefined")
        assert page.locator("#mqls").inner_text().isdigit()
        page.screenshot(path=str(shots / "dashboard.png"), full_page=True)

        # search narrows the list without a page load (htmx)
        page.goto(f"{base}/app/prospects")
        total = page.locator("#rows p.muted").inner_text()
        page.fill("input[name=q]", "zzz-no-such-prospect")
        page.wait_for_function("document.querySelector('#rows p.muted').textContent.startsWith('0 ')")
        assert total != page.locator("#rows p.muted").inner_text()

        # a payload typed into a form comes back as text
        page.goto(f"{base}/app/prospects")
        page.click("details summary")
        page.fill("#new-prospect input[name=email]", "xss@example.com")
        page.fill("#new-prospect input[name=first_name]", PAYLOAD)
        page.click("#new-prospect button[type=submit]")
        page.wait_for_url("**/app/prospects/*")
        assert page.locator("#prospect-name").inner_text() == PAYLOAD
        assert page.evaluate("window.__xss") is None
        assert page.locator("#prospect-name img").count() == 0

        # a post without the CSRF token is refused, even with the session cookie
        refused = page.request.post(f"{base}/app/prospects", form={"email": "csrf@example.com"})
        assert refused.status == 403

        page.goto(f"{base}/app/prospects/{busy_prospect}")
        assert page.locator("ol.timeline li").count() > 1
        page.screenshot(path=str(shots / "prospect.png"), full_page=True)

        page.goto(f"{base}/app/crm/leads/{lead_id}")
        panel = page.locator("#marketing-panel")
        assert panel.locator("td.score").first.inner_text() == str(lead_score)
        assert panel.locator("ol.timeline li").count() >= 1

        page.goto(f"{base}/app/connector")
        if connector:  # edit a field rule: the config check answers in place (htmx)
            page.select_option("#rule-company select[name=rule]", "ma_wins")
            page.wait_for_selector("#check-saved")
            assert "company: ma_wins" in page.locator("#check-saved").inner_text()
            assert page.locator("#check-counts").count() == 1
        page.screenshot(path=str(shots / "connector.png"), full_page=True)

        page.click("button[name=language][value=en]")
        page.wait_for_load_state()
        assert page.locator("h1").first.inner_text() == "Connector console"
        browser.close()
