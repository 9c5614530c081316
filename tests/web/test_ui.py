"""The web app over real HTTP: sign-in, CSRF, escaping, roles, languages, the ja catalogue."""

from __future__ import annotations

import json
import re
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from renkei.clock import FixedClock
from renkei.marketing.service import ProspectService
from renkei.store import tables_web as w
from renkei.web.auth import AuthService
from renkei.web.ui.render import TEMPLATES, translations

from .helpers import T0, Browser, live_server, make_user

XSS = "<script>window.__xss=1</script>"
SECTIONS = ["/app", "/app/prospects", "/app/campaigns", "/app/automation", "/app/email", "/app/content",
            "/app/reports", "/app/calendar", "/app/crm/leads", "/app/connector", "/app/settings"]  # fmt: skip


def test_sign_in_sections_csrf_escaping_and_audit(engine: Engine) -> None:
    clock = FixedClock(T0)
    make_user(engine, "boss@example.com", "admin")
    ProspectService(engine, clock=clock).create(
        {"email": "evil@example.com", "firstName": XSS, "lastName": '<img src=x onerror="alert(1)">'}
    )
    with live_server(engine, clock) as base:
        web = Browser(base)
        assert web.get("/app/prospects").headers["location"] == "/app/login?next=/app/prospects"
        # the login form itself is CSRF-protected (double submit)
        web.get("/app/login")
        assert (
            web.post("/app/login", {"email": "boss@example.com", "password": "x"}, csrf=False).status_code
            == 403
        )
        refused = web.post("/app/login", {"email": "boss@example.com", "password": "wrong password"})
        assert refused.status_code == 401 and "メールアドレスまたはパスワードが違います。" in refused.text
        signed_in = web.sign_in("boss@example.com")
        assert signed_in.status_code == 303
        cookie = signed_in.headers["set-cookie"]
        assert all(flag in cookie for flag in ("HttpOnly", "Secure", "SameSite=lax"))
        assert [(p, web.get(p).status_code) for p in SECTIONS] == [(p, 200) for p in SECTIONS]
        page = web.get("/app/prospects/1")
        assert "<script>window.__xss" not in page.text and "<img src=x" not in page.text
        assert (
            "&lt;script&gt;window.__xss=1&lt;/script&gt; &lt;img src=x onerror=&#34;alert(1)&#34;&gt;"
            in page.text
        )
        assert "script-src 'self'" in page.headers["content-security-policy"]
        # an unsafe request without the session's CSRF token is refused, with it accepted
        before = ProspectService(engine).count()
        assert web.post("/app/prospects", {"email": "a@example.com"}, csrf=False).status_code == 403
        assert (
            web.post(
                "/app/prospects", {"email": "a@example.com", "csrf_token": "forged"}, csrf=False
            ).status_code
            == 403
        )
        assert ProspectService(engine).count() == before
        assert (
            web.post("/app/prospects", {"email": "a@example.com"}).headers["location"] == "/app/prospects/2"
        )
        # settings changes are audited
        assert (
            web.post(
                "/app/settings/users",
                {"email": "rep@example.com", "role": "sales", "password": "long enough pw"},
            ).status_code
            == 303
        )
        audit = web.get("/app/settings").text
        assert re.search(r"boss@example.com</td><td>user.create</td><td>rep@example.com", audit)
        web.close()


def test_roles_limit_sections_and_language_choice(sqlite_engine: Engine) -> None:
    engine, clock = sqlite_engine, FixedClock(T0)
    make_user(engine, "rep@example.com", "sales")
    with live_server(engine, clock) as base:
        web = Browser(base)
        web.sign_in("rep@example.com")
        home = web.get("/app", headers={"Accept-Language": "en-US,en;q=0.9"})
        assert 'data-section="settings"' not in home.text and 'data-section="crm"' in home.text
        assert ">ダッシュボード<" in home.text  # the user's stored choice (ja) beats Accept-Language
        assert web.get("/app/settings").status_code == 403
        assert (
            web.post(
                "/app/settings/users",
                {"email": "x@example.com", "role": "admin", "password": "long enough pw"},
            ).status_code
            == 403
        )
        assert web.post("/app/language", {"language": "en", "back": "/app"}).status_code == 303
        assert ">Dashboard<" in web.get("/app").text
        web.close()
        anonymous = Browser(base)
        assert ">Sign in<" in anonymous.get("/app/login", headers={"Accept-Language": "en"}).text
        assert ">ログイン<" in anonymous.get("/app/login", headers={"Accept-Language": "ja,en;q=0.5"}).text
        anonymous.close()


def test_login_rate_limited_over_http(sqlite_engine: Engine) -> None:
    make_user(sqlite_engine, "a@example.com")
    with live_server(sqlite_engine, FixedClock(T0)) as base:
        web = Browser(base)
        for _ in range(5):
            web.get("/app/login")
            assert (
                web.post("/app/login", {"email": "a@example.com", "password": "not it at all"}).status_code
                == 401
            )
        web.get("/app/login")
        limited = web.post("/app/login", {"email": "a@example.com", "password": "correct horse battery"})
        assert (limited.status_code, limited.headers["retry-after"]) == (429, "901")
        web.close()
    with sqlite_engine.connect() as conn:
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(w.web_login_attempt)).scalar_one() == 5
        )  # the refused one never got checked


def test_every_template_string_has_a_japanese_translation() -> None:
    pattern = re.compile(r"""_\((?:"([^"]+)"|'([^']+)')\)""")
    found = {
        a or b for path in Path(TEMPLATES, "app").glob("*.html") for a, b in pattern.findall(path.read_text())
    }
    ja = translations("ja")
    missing = sorted(m for m in found if ja.gettext(m) == m and m not in ("CRM", "renkei"))
    assert (len(found) > 150, missing) == (True, [])


def test_prospects_filtered_by_segmentation_rule(sqlite_engine: Engine) -> None:
    clock = FixedClock(T0)
    make_user(sqlite_engine, "ops@example.com", "marketing")
    service = ProspectService(sqlite_engine, clock=clock)
    for i, score in enumerate((10, 55, 80)):
        service.create({"email": f"s{i}@example.jp", "score": score})
    with live_server(sqlite_engine, clock) as base:
        web = Browser(base)
        web.sign_in("ops@example.com")
        rows = web.get(
            "/app/prospects", params={"rule": "all(score >= 50)"}, headers={"HX-Request": "true"}
        ).text
        assert re.findall(r"<td>(s\d@example.jp)</td>", rows) == ["s2@example.jp", "s1@example.jp"]
        broken = web.get("/app/prospects", params={"rule": "all(score >= "}).text
        assert re.search(r'role="alert">rule text ends too early', broken)
        web.close()


def test_scoring_model_edited_in_settings_is_audited(sqlite_engine: Engine) -> None:
    from renkei.marketing.scoring_service import ScoringService

    clock = FixedClock(T0)
    make_user(sqlite_engine, "boss@example.com", "admin")
    before = ScoringService(sqlite_engine, clock=clock).model().to_dict()
    key, points = next(iter(before["activities"].items()))
    with live_server(sqlite_engine, clock) as base:
        web = Browser(base)
        web.sign_in("boss@example.com")
        web.get("/app/settings")
        assert (
            web.post("/app/settings/scoring", {f"act_{key}": str(points + 7), "page_view": "2"}).status_code
            == 303
        )
        web.close()
    after = ScoringService(sqlite_engine).model().to_dict()
    assert after == {**before, "activities": {**before["activities"], key: points + 7}, "page_view": 2}
    entry = AuthService(sqlite_engine).audit_log(1)[0]
    assert (entry["actor"], entry["action"], entry["before"], entry["after"]) == (
        "boss@example.com",
        "scoring.model",
        before,
        after,
    )


def test_schedule_a_list_email_and_create_a_dynamic_list(sqlite_engine: Engine) -> None:
    from renkei.email.service import EmailService
    from renkei.marketing.service import ListService
    from renkei.segments.lists import SegmentService

    engine, clock = sqlite_engine, FixedClock(T0)
    make_user(engine, "ops@example.com", "marketing")
    template = EmailService(engine, clock=clock).create_template(
        "セミナー案内", "5月のセミナー", "<p>ご案内</p>", "ご案内"
    )
    newsletter = ListService(engine, clock=clock).create({"name": "newsletter"})
    ListService(engine, clock=clock).add_prospects(
        newsletter["id"],
        [ProspectService(engine, clock=clock).create({"email": "a@example.jp", "score": 70})["id"]],
    )
    with live_server(engine, clock) as base:
        web = Browser(base)
        web.sign_in("ops@example.com")
        web.get("/app/email")
        sent = web.post(
            "/app/email/send",
            {"template_id": str(template["id"]), "list_ids": str(newsletter["id"]), "at": "2026-04-20T10:00"},
        )
        assert sent.status_code == 303 and "message=" in sent.headers["location"]
        calendar = web.get("/app/calendar?year=2026&month=4").text
        assert re.search(r"✉ セミナー案内 <span class=\"muted\">10:00</span>", calendar)  # Asia/Tokyo
        web.get("/app/automation")
        made = web.post(
            "/app/automation/lists", {"name": "hot", "rule": "all(score >= 50)", "kind": "dynamic"}
        )
        assert made.headers["location"] == "/app/automation?message=hot#lists"
        refused = web.post(
            "/app/automation/lists", {"name": "broken", "rule": "all(score >=", "kind": "dynamic"}
        )
        assert "error=" in refused.headers["location"]
        web.close()
    lists = {x["name"]: x for x in SegmentService(engine).lists()}
    assert (lists["hot"]["kind"], lists["hot"]["memberCount"], "broken" in lists) == ("dynamic", 1, False)


def test_grading_profile_edited_in_settings(sqlite_engine: Engine) -> None:
    from renkei.marketing.scoring_service import GradingService

    clock = FixedClock(T0)
    make_user(sqlite_engine, "boss@example.com", "admin")
    profile = GradingService(sqlite_engine, clock=clock).profiles()[0]
    criteria = [
        {"field": "jobTitle", "operator": "contains", "value": "部長", "weight": 2, "label": "Manager"}
    ]
    with live_server(sqlite_engine, clock) as base:
        web = Browser(base)
        web.sign_in("boss@example.com")
        web.get("/app/settings")
        saved = web.post("/app/settings/grading", {"name": profile["name"], "criteria": json.dumps(criteria)})
        assert saved.headers["location"] == "/app/settings#grading"
        bad = web.post("/app/settings/grading", {"name": profile["name"], "criteria": "{not json"})
        assert "error=" in bad.headers["location"]
        web.close()
    after = GradingService(sqlite_engine).profiles()[0]["criteria"]
    assert [(c["field"], c["value"], c["weight"]) for c in after] == [("jobTitle", "部長", 2)]
    entry = AuthService(sqlite_engine).audit_log(1)[0]
    assert (entry["action"], entry["target"], entry["before"]) == (
        "grading.profile",
        profile["name"],
        profile["criteria"],
    )
