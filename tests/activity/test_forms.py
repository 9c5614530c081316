"""Forms and landing pages over real HTTP: validation messages, error activities, conversion of
the visitor with its earlier page views, overwrite rules, form handlers, redirects, files, spam."""

from __future__ import annotations

import datetime as dt

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from renkei.marketing.activity_service import ActivityService
from renkei.marketing.forms import AssetService, FormField, validate
from renkei.marketing.service import CampaignService, ProspectService
from renkei.store import tables as t

from .helpers import T0, clock, get, live_server

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
FIELDS = [
    {"name": "email", "label": {"ja": "メールアドレス", "en": "Email"}, "required": True},
    {"name": "lastName", "label": {"ja": "姓", "en": "Last name"}, "required": True},
    {"name": "company", "label": {"ja": "会社名", "en": "Company"}},
    {"name": "phone", "label": {"ja": "電話番号", "en": "Phone"}, "type": "phone"},
    {"name": "comments", "label": {"ja": "お問い合わせ内容", "en": "Inquiry"}, "type": "textarea"},
]


def setup_assets(engine: Engine, clk) -> tuple[dict, dict]:
    campaign = CampaignService(engine, clock=clk).create({"name": "2026春 展示会"})
    assets = AssetService(engine, clock=clk)
    form = assets.create_form("お問い合わせ", FIELDS, campaign_id=campaign["id"],
                              completion_actions=[{"type": "add_tag", "tag": "問い合わせ"}])  # fmt: skip
    page = assets.create_landing_page("製品LP", "product", title="製品のご案内", form_id=form["id"],
                                      content='<p>資料はこちら<script>alert(1)</script><a href="javascript:x()">x</a></p>')  # fmt: skip
    return form, page


def test_validation_messages_and_hygiene() -> None:
    fields = [FormField.from_dict(f) for f in FIELDS] + [
        FormField.from_dict({"name": "zip", "label": "〒", "type": "zip"})
    ]
    bad = validate(fields, {"email": "yamada@", "phone": "12", "zip": "000-0000"}, "ja")
    assert bad.errors == {
        "email": "メールアドレスの形式が正しくありません。",
        "lastName": "必須項目です。",
        "phone": "電話番号の形式が正しくありません。",
        "zip": "郵便番号が見つかりません。",
    }
    assert validate(fields, {"email": "x"}, "en").errors["lastName"] == "This field is required."
    good = validate(fields, {"email": "ＹＡＭＡＤＡ＠example.jp", "lastName": "山田", "company": "ｻﾝﾌﾟﾙ株式会社",
                             "phone": "０３－１２３４－５６７８", "zip": "１００−０００１"}, "ja")  # fmt: skip
    assert (good.errors, good.values) == ({}, {
        "email": "YAMADA@example.jp", "lastName": "山田", "company": "サンプル株式会社", "phone": "03-1234-5678",
        "zip": "100-0001",
    })  # fmt: skip


def test_landing_page_visit_error_then_conversion(engine: Engine) -> None:
    clk = clock()
    form, page = setup_assets(engine, clk)
    with (
        live_server(engine, clk) as base,
        httpx.Client(base_url=base, headers={"User-Agent": BROWSER}) as http,
    ):
        html = http.get("/lp/product?utm_source=expo", headers={"Referer": "https://www.google.com/"}).text
        assert "<script>alert" not in html and "javascript:" not in html and "資料はこちら" in html
        http.get(
            "/track/pv.gif", params={"u": f"{base}/lp/product?utm_source=expo", "t": "製品のご案内", "c": "1"}
        )
        clk.advance(minutes=2)
        error = http.post("/lp/product", data={"email": "yamada@", "lastName": ""})
        assert 'id="error-email">メールアドレスの形式が正しくありません。' in error.text
        assert 'id="error-lastName">必須項目です。' in error.text
        clk.advance(minutes=1)
        done = http.post("/lp/product", data={"email": "Yamada@Example.co.jp", "lastName": "山田", "company": "㈱サンプル",
                                              "comments": "見積もり希望"})  # fmt: skip
        assert "送信いただきありがとうございました" in done.text
    pid = ProspectService(engine).find("yamada@example.co.jp")["id"]
    prospect = get(engine, pid)
    assert {k: prospect[k] for k in ("lastName", "company", "comments", "campaignId", "source", "sourceParameter",
                                      "convertedFromObjectType", "convertedFromObjectName", "lastActivityAt", "score")} == {
        "lastName": "山田", "company": "㈱サンプル", "comments": "見積もり希望", "campaignId": 1, "source": "expo",
        "sourceParameter": "expo", "convertedFromObjectType": "LandingPage", "convertedFromObjectName": "製品LP",
        "lastActivityAt": T0 + dt.timedelta(minutes=3),
        "score": 3 + 1 - 5 + 50,  # visit, page view, error, success (see the timeline)
    }  # fmt: skip
    timeline = ActivityService(engine).timeline(pid)
    assert [(r["kind"], r.get("typeLabel"), r.get("typeName"), r["points"]) for r in timeline] == [
        ("activity", "Success", "Landing Page", 50),
        ("activity", "Error", "Landing Page", -5),
        ("page_view", None, None, 1),
        ("activity", "Visit", "Visit", 3),
        ("activity", "View", "Landing Page", 0),
    ]
    with engine.connect() as conn:
        tags = (
            conn.execute(sa.select(t.tag.c.name).join(t.tag_object, t.tag_object.c.tagId == t.tag.c.id))
            .scalars()
            .all()
        )
    assert tags == ["問い合わせ"]


def test_known_prospect_overwrite_rules(engine: Engine) -> None:
    clk = clock()
    form, _ = setup_assets(engine, clk)
    existing = ProspectService(engine, clock=clk).create(
        {"email": "suzuki@example.jp", "lastName": "鈴木", "comments": "前回"}
    )
    with (
        live_server(engine, clk) as base,
        httpx.Client(base_url=base, headers={"User-Agent": BROWSER}) as http,
    ):
        page = http.get(f"/f/{form['id']}")
        assert page.status_code == 200 and 'name="comments"' in page.text
        http.post(f"/f/{form['id']}", data={"email": "SUZUKI@example.jp", "lastName": "佐藤", "company": "新会社",
                                            "comments": "今回の問い合わせ"})  # fmt: skip
        # Now the visitor is known: its form is pre-filled, known personal fields skipped.
        again = http.get(f"/f/{form['id']}").text
        assert 'value="suzuki@example.jp"' in again and 'name="company"' not in again
    after = get(engine, existing["id"])
    # Personal info already known is kept; blank personal fields fill in; inquiry content overwrites.
    assert (after["lastName"], after["company"], after["comments"]) == ("鈴木", "新会社", "今回の問い合わせ")
    assert ProspectService(engine).list() and len(ProspectService(engine).list()) == 1


def test_form_handler_redirect_file_honeypot_and_rate_limit(engine: Engine) -> None:
    clk = clock()
    assets = AssetService(engine, clock=clk)
    handler = assets.create_form_handler("外部フォーム", FIELDS[:2], success_url="https://example.jp/thanks",
                                         error_url="https://example.jp/error")  # fmt: skip
    assets.create_redirect(
        "広告",
        "ad",
        "https://example.jp/campaign",
        completion_actions=[{"type": "adjust_score", "points": 7}],
    )
    assets.create_file("資料", "whitepaper", b"%PDF-1.4 test", "application/pdf")
    with (
        live_server(engine, clk) as base,
        httpx.Client(base_url=base, headers={"User-Agent": BROWSER}) as http,
    ):
        bad = http.post(f"/fh/{handler['id']}", data={"email": "nope"})
        assert (bad.status_code, bad.headers["location"].split("?")[0]) == (303, "https://example.jp/error")
        ok = http.post(f"/fh/{handler['id']}", data={"email": "kato@example.jp", "lastName": "加藤"})
        assert (ok.status_code, ok.headers["location"]) == (303, "https://example.jp/thanks")
        redirect = http.get("/r/ad")
        assert (redirect.status_code, redirect.headers["location"]) == (302, "https://example.jp/campaign")
        file = http.get("/file/whitepaper")
        assert (file.status_code, file.content, file.headers["content-type"]) == (
            200,
            b"%PDF-1.4 test",
            "application/pdf",
        )
        spam = http.post(
            f"/fh/{handler['id']}", data={"email": "bot@example.jp", "lastName": "bot", "renkei_hp": "x"}
        )
        assert spam.status_code == 303
        with httpx.Client(
            base_url=base, headers={"User-Agent": BROWSER}
        ) as other:  # another, anonymous visitor
            codes = [other.post(f"/fh/{handler['id']}", data={"email": "x"}).status_code for _ in range(10)]
        assert codes.count(429) == 3  # 10 submissions per minute per IP, 3 made above
    pid = ProspectService(engine).find("kato@example.jp")["id"]
    timeline = ActivityService(engine).timeline(pid)
    assert [(r["typeLabel"], r["typeName"], r["points"]) for r in timeline] == [
        ("View", "File", 3),
        ("Custom URL click", "Custom Redirect", 3),
        ("Success", "Form Handler", 50),
        ("Error", "Form Handler", -5),
    ]
    assert get(engine, pid)["score"] == 50 - 5 + 3 + 7 + 3
    assert ProspectService(engine).find_by_email("bot@example.jp") == []
