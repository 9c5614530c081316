from __future__ import annotations

import datetime as dt
import re
from email.message import EmailMessage
from textwrap import dedent

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from renkei.clock import FixedClock
from renkei.email import bounces
from renkei.email.render import render
from renkei.email.service import EmailService
from renkei.email.smtp import SmtpSettings
from renkei.errors import InputError
from renkei.store import tables as t

from .conftest import T0, Sink, activities, add_list, add_prospect

HTML = dedent("""\
    <html><body><p>{{ prospect.lastName }} {{ prospect.firstName | default('ご担当者', true) }} 様</p>
    {% if prospect.score >= 100 %}<p>特別なご案内</p>{% else %}<p>通常のご案内</p>{% endif %}
    <a href="https://example.jp/seminar">セミナー</a> <a href="https://example.jp/doc?id=1&amp;x=2">資料</a>
    <p>担当: {{ user.email | default('marketing@renkei.example', true) }}</p>
    <a href="{{ unsubscribe_url }}">配信停止</a></body></html>""")
TEXT = "{{ prospect.lastName }} 様\nhttps://example.jp/seminar\n配信停止: {{ unsubscribe_url }}\n"


def _service(engine: Engine, clock: FixedClock, port: int) -> EmailService:
    return EmailService(engine, clock=clock, smtp=SmtpSettings.from_url(f"smtp://127.0.0.1:{port}"))


def _bodies(msg: EmailMessage) -> tuple[str, str]:
    html = msg.get_body(("html",))
    text = msg.get_body(("plain",))
    assert html is not None and text is not None
    return html.get_content(), text.get_content()


def test_render_escapes_html_and_tracks_links() -> None:
    out = render(
        "{{ prospect.company }}様",
        "<p>{{ prospect.lastName }}</p><a href='https://a.example/x'>x</a>",
        "https://a.example/x",
        {"prospect": {"company": "連携商事", "lastName": "<script>alert(1)</script>"}},
        track_link=lambda i: f"https://t.example/c/{i}",
        open_pixel="https://t.example/o.gif",
    )
    assert out.subject == "連携商事様"
    assert "&lt;script&gt;" in out.html and "<script>" not in out.html
    assert out.links == ("https://a.example/x",)
    assert "https://t.example/c/0" in out.html and out.text == "https://t.example/c/0"
    assert '<img src="https://t.example/o.gif"' in out.html


def test_sandbox_refuses_unsafe_templates(engine: Engine, clock: FixedClock) -> None:
    svc = EmailService(engine, clock=clock)
    with pytest.raises(InputError, match="html"):
        svc.create_template("bad", "s", "{% if %}", "t")
    tpl = svc.create_template("sneaky", "s", "{{ prospect.__class__.__mro__ }}", "t")
    pid = add_prospect(engine, "a@example.jp")
    add_list(engine, "l", [pid])
    with pytest.raises(Exception, match="unsafe|not safely|access"):
        render(tpl["subject"], "{{ ''.__class__.__mro__[1].__subclasses__() }}", "", {"prospect": {}})


def test_list_email_end_to_end_over_smtp_and_http(
    engine: Engine, clock: FixedClock, smtp_sink: tuple[Sink, int], web: str
) -> None:
    sink, port = smtp_sink
    svc = _service(engine, clock, port)
    sato = add_prospect(engine, "sato@example.jp", lastName="佐藤", firstName="花子", score=120)
    suzuki = add_prospect(engine, "suzuki@example.jp", lastName="鈴木")
    opted = add_prospect(engine, "out@example.jp", lastName="停止", optedOut=True)
    dne = add_prospect(engine, "dne@example.jp", lastName="不可", isDoNotEmail=True)
    suppressed = add_prospect(engine, "competitor@example.jp", lastName="競合")
    newsletter = add_list(engine, "newsletter", [sato, suzuki, opted, dne, suppressed])
    competitors = add_list(engine, "competitors", [suppressed])
    tpl = svc.create_template("セミナー案内", "{{ prospect.lastName }}様へセミナーのご案内", HTML, TEXT)

    summary = svc.send_list_email([newsletter], tpl["id"], suppression_ids=[competitors])
    assert (summary.status, summary.queued, summary.skipped) == ("queued", 2, 3)
    assert svc.work().to_dict() == {"sent": 2, "failed": 0, "retried": 0, "remaining": 0}

    assert sorted(rcpts[0] for _, rcpts in sink.envelopes) == ["sato@example.jp", "suzuki@example.jp"]
    msg = next(m for m in sink.messages if m["To"] == "sato@example.jp")
    assert msg["Subject"] == "佐藤様へセミナーのご案内"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    html, text = _bodies(msg)
    assert "佐藤 花子 様" in html and "特別なご案内" in html and "marketing@renkei.example" in html
    suzuki_html, _ = _bodies(next(m for m in sink.messages if m["To"] == "suzuki@example.jp"))
    assert "ご担当者 様" in suzuki_html and "通常のご案内" in suzuki_html
    assert activities(engine, sato) == [(6, "Email")]

    # the open pixel and a tracked click, followed over real HTTP
    pixel = re.search(r'<img src="([^"]+\.gif)"', html)
    assert pixel is not None and pixel.group(1).startswith(web)
    clock.advance(hours=1)
    r = httpx.get(pixel.group(1))
    assert (r.status_code, r.headers["content-type"]) == (200, "image/gif")
    click_urls = re.findall(rf'href="({re.escape(web)}/e/c/[^"]+)"', html)
    assert len(click_urls) == 2
    r = httpx.get(click_urls[1].replace("&amp;", "&"), follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (302, "https://example.jp/doc?id=1&x=2")
    assert activities(engine, sato) == [(6, "Email"), (11, "Email"), (1, "Email Tracker")]
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(t.prospect.c.lastActivityAt, t.prospect.c.score).where(t.prospect.c.id == sato)
        ).one()
    # the open is passive; the click moves last activity and scores +3
    assert (row.lastActivityAt, row.score) == (T0 + dt.timedelta(hours=1), 123)

    # one-click unsubscribe (RFC 8058) through the List-Unsubscribe URL
    unsubscribe_url = msg["List-Unsubscribe"].strip("<>")
    assert unsubscribe_url.startswith(f"{web}/e/u/")
    assert httpx.get(unsubscribe_url).status_code == 200  # the confirmation page changes nothing
    with engine.connect() as conn:
        assert (
            conn.execute(sa.select(t.prospect.c.optedOut).where(t.prospect.c.id == sato)).scalar_one() is None
        )
    r = httpx.post(unsubscribe_url, data={"List-Unsubscribe": "One-Click"})
    assert r.status_code == 200
    with engine.connect() as conn:
        assert (
            conn.execute(sa.select(t.prospect.c.optedOut).where(t.prospect.c.id == sato)).scalar_one() is True
        )

    # the next send excludes the unsubscribed prospect
    sink.messages.clear()
    sink.envelopes.clear()
    again = svc.send_list_email([newsletter], tpl["id"], suppression_ids=[competitors])
    svc.work()
    assert (again.queued, [r[0] for _, r in sink.envelopes]) == (1, ["suzuki@example.jp"])


def test_scheduled_send_waits_for_its_time(
    engine: Engine, clock: FixedClock, smtp_sink: tuple[Sink, int]
) -> None:
    sink, port = smtp_sink
    svc = _service(engine, clock, port)
    pid = add_prospect(engine, "later@example.jp", lastName="後藤")
    lst = add_list(engine, "l", [pid])
    tpl = svc.create_template("t", "subject", "<p>x</p>", "x")
    summary = svc.send_list_email([lst], tpl["id"], at=T0 + dt.timedelta(days=1))
    assert (summary.status, summary.queued) == ("scheduled", 0)
    assert svc.work().sent == 0 and sink.messages == []
    clock.advance(days=1)
    assert svc.work().sent == 1 and [m["To"] for m in sink.messages] == ["later@example.jp"]


def test_operational_email_only_where_allowed(
    engine: Engine, clock: FixedClock, smtp_sink: tuple[Sink, int]
) -> None:
    sink, port = smtp_sink
    svc = _service(engine, clock, port)
    opted = add_prospect(engine, "out@example.jp", optedOut=True)
    dne = add_prospect(engine, "dne@example.jp", isDoNotEmail=True)
    lst = add_list(engine, "customers", [opted, dne])
    tpl = svc.create_template("規約改定", "利用規約改定のお知らせ", "<p>x</p>", "x", operational=True)
    with pytest.raises(InputError, match="allow_operational_email"):
        svc.send_list_email([lst], tpl["id"])
    with engine.begin() as conn:
        conn.execute(t.setting.insert().values(key="allow_operational_email", value=True, updatedAt=T0))
    summary = svc.send_list_email([lst], tpl["id"])
    svc.work()
    assert summary.queued == 1 and [m["To"] for m in sink.messages] == ["out@example.jp"]


def test_send_test_and_smtp_failure_retries(
    engine: Engine, clock: FixedClock, smtp_sink: tuple[Sink, int]
) -> None:
    sink, port = smtp_sink
    svc = _service(engine, clock, port)
    tpl = svc.create_template("t", "{{ prospect.company }}様", "<p>{{ prospect.lastName }}</p>", "x")
    out = svc.send_test(tpl["id"], "me@renkei.example")
    assert out["subject"] == "[TEST] 見本株式会社様" and sink.messages[0]["To"] == "me@renkei.example"
    # the server goes away: messages stay queued with a retry time, nothing is lost
    pid = add_prospect(engine, "x@example.jp")
    lst = add_list(engine, "l", [pid])
    down = EmailService(engine, clock=clock, smtp=SmtpSettings.from_url("smtp://127.0.0.1:1"))
    down.send_list_email([lst], tpl["id"])
    assert down.work().to_dict() == {"sent": 0, "failed": 0, "retried": 1, "remaining": 1}
    assert svc.work().sent == 0  # not due yet (backoff)
    clock.advance(minutes=5)
    assert svc.work().sent == 1


def _dsn(to: str, msg_id: int, action: str, status: str) -> bytes:
    return dedent(f"""\
        From: MAILER-DAEMON@mx.example.jp
        To: bounces@renkei.example
        Subject: Undelivered Mail Returned to Sender
        MIME-Version: 1.0
        Content-Type: multipart/report; report-type=delivery-status; boundary="b1"

        --b1
        Content-Type: text/plain

        Delivery failed.
        --b1
        Content-Type: message/delivery-status

        Reporting-MTA: dns; mx.example.jp

        Final-Recipient: rfc822; {to}
        Action: {action}
        Status: {status}
        Diagnostic-Code: smtp; {status} mailbox problem

        --b1
        Content-Type: text/rfc822-headers

        To: {to}
        X-Renkei-Message: {msg_id}
        --b1--
        """).encode()


def test_dsn_bounces_hard_and_five_soft(
    engine: Engine, clock: FixedClock, smtp_sink: tuple[Sink, int], tmp_path: object
) -> None:
    _, port = smtp_sink
    svc = _service(engine, clock, port)
    hard = add_prospect(engine, "gone@example.jp")
    soft = add_prospect(engine, "full@example.jp")
    lst = add_list(engine, "l", [hard, soft])
    tpl = svc.create_template("t", "s", "<p>x</p>", "x")
    svc.send_list_email([lst], tpl["id"])
    svc.work()
    with engine.connect() as conn:
        ids = dict(conn.execute(sa.text('SELECT "toAddress", id FROM email_message')).all())
    parsed = bounces.parse(_dsn("gone@example.jp", ids["gone@example.jp"], "failed", "5.1.1"))
    assert parsed == [
        bounces.Bounce(
            "gone@example.jp", True, "5.1.1", "smtp; 5.1.1 mailbox problem", ids["gone@example.jp"]
        )
    ]
    with engine.begin() as conn:
        svc.apply_bounce(conn, parsed[0].message_id, parsed[0].address, True, parsed[0].reason)  # type: ignore[union-attr]
        for i in range(5):
            [b] = bounces.parse(_dsn("full@example.jp", ids["full@example.jp"], "delayed", "4.2.2"))
            assert isinstance(b, bounces.Bounce) and not b.hard
            out = svc.apply_bounce(conn, b.message_id, b.address, b.hard, b.reason)
            assert out is not None and out["undeliverable"] is (i == 4)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.prospect.c.id, t.prospect.c.isEmailHardBounced, t.prospect.c.softBounceCount)
                            .order_by(t.prospect.c.id)).all()  # fmt: skip
    assert [tuple(r) for r in rows] == [(hard, True, None), (soft, True, 5)]
    assert activities(engine, hard) == [(6, "Email"), (13, "Email")]
    # undeliverable prospects are excluded from the next send
    assert svc.send_list_email([lst], tpl["id"]).queued == 0


def test_complaint_opts_out() -> None:
    raw = dedent("""\
        From: fbl@isp.example
        MIME-Version: 1.0
        Content-Type: multipart/report; report-type=feedback-report; boundary="b"

        --b
        Content-Type: text/plain

        complaint
        --b
        Content-Type: message/feedback-report

        Feedback-Type: abuse
        Original-Rcpt-To: <x@example.jp>

        --b
        Content-Type: text/rfc822-headers

        X-Renkei-Message: 7
        --b--
        """).encode()
    assert bounces.parse(raw) == [bounces.Complaint("x@example.jp", 7)]
    assert bounces.parse(b"Subject: hello\n\nnot a report") == []


def test_dynamic_content_by_rule(engine: Engine, clock: FixedClock, smtp_sink: tuple[Sink, int]) -> None:
    """``matches("rule")`` evaluates the segmentation rule language for each recipient."""
    sink, port = smtp_sink
    svc = _service(engine, clock, port)
    hot = add_prospect(engine, "hot@example.jp", score=150)
    cold = add_prospect(engine, "cold@example.jp", score=10)
    lst = add_list(engine, "all", [hot, cold])
    html = "<html><body>{% if matches('all(score >= 100)') %}<p>営業からご連絡します</p>{% else %}<p>資料はこちら</p>{% endif %}</body></html>"
    tpl = svc.create_template("dynamic", "ご案内", html, "x")
    svc.send_list_email([lst], tpl["id"])
    svc.work()
    bodies = {m["To"]: _bodies(m)[0] for m in sink.messages}
    assert "営業からご連絡します" in bodies["hot@example.jp"] and "資料はこちら" in bodies["cold@example.jp"]
