"""Notify-user actions email the marketing user (as well as the in-app notification), through the
same queue and SMTP as every other email; `email: false` keeps it in-app only."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from renkei.clock import FixedClock
from renkei.email.programs import ProgramService
from renkei.email.service import EmailService
from renkei.email.smtp import SmtpSettings
from renkei.marketing.automation_service import AutomationService
from renkei.marketing.service import ProspectService, UserService
from renkei.store import tables as t
from renkei.store.tables_email import email_message

from .conftest import Sink, add_list, add_prospect


def _user(engine: Engine, clock: FixedClock, email: str, **values: object) -> int:
    return int(UserService(engine, clock=clock).create({"email": email, **values})["id"])


def test_notify_user_emails_the_assigned_user_in_their_language(
    engine: Engine, clock: FixedClock, smtp_sink: tuple[Sink, int]
) -> None:
    sink, port = smtp_sink
    sales = _user(engine, clock, "sales@renkei.example", lastName="営業")
    english = _user(engine, clock, "en@renkei.example", language="en")
    prospects = ProspectService(engine, clock=clock)
    pid = int(prospects.create({"email": "yamada@example.co.jp", "lastName": "山田", "firstName": "太郎",
                                "company": "株式会社山田商事<script>", "assignedToId": sales})["id"])  # fmt: skip
    automation = AutomationService(engine, clock=clock)
    done = automation.completion_actions(
        pid, [{"type": "notify_user", "message": "資料をダウンロードしました"}], source="file", source_id=7
    )
    done += automation.completion_actions(
        pid,
        [{"type": "notify_user", "message": "Visited pricing", "user_id": english}],
        source="form",
        source_id=3,
    )
    done += automation.completion_actions(
        pid, [{"type": "notify_user", "message": "in-app only", "email": False}], source="form", source_id=3
    )
    assert done[0].startswith(f"notified user {sales} (email ") and done[0].endswith(" queued)")
    assert done[2] == f"notified user {sales}"
    assert [n["message"] for n in automation.notifications(sales)] == [
        "資料をダウンロードしました",
        "in-app only",
    ]

    summary = EmailService(engine, clock=clock, smtp=SmtpSettings.from_url(f"smtp://127.0.0.1:{port}")).work()
    assert (summary.sent, summary.failed, summary.remaining) == (2, 0, 0)
    assert sorted(rcpt for _, rcpts in sink.envelopes for rcpt in rcpts) == ["en@renkei.example",
                                                                             "sales@renkei.example"]  # fmt: skip
    by_to = {str(m["To"]): m for m in sink.messages}
    ja = by_to["sales@renkei.example"]
    assert ja["Subject"] == "[renkei] 資料をダウンロードしました — 山田 太郎"
    text = ja.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = ja.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "プロスペクト: 山田 太郎 <yamada@example.co.jp>" in text
    assert "通知元: file 7" in text
    assert f"/prospects/{pid}" in text and "List-Unsubscribe" not in ja
    assert "&lt;script&gt;" in html and "<script>" not in html
    en = by_to["en@renkei.example"].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Prospect: 山田 太郎" in en and "Open in renkei:" in en
    # A notification is mail to a user, not to the prospect: no "sent" activity on the prospect.
    with engine.connect() as conn:
        kinds = conn.execute(sa.select(email_message.c.kind, email_message.c.prospectId)).all()
        sent_activities = conn.execute(
            sa.select(sa.func.count())
            .select_from(t.visitor_activity)
            .where(t.visitor_activity.c.prospectId == pid)
        ).scalar_one()
    assert sorted(kinds) == [("notification", None), ("notification", None)]
    assert sent_activities == 0


def test_inactive_or_missing_user_gets_no_email(engine: Engine, clock: FixedClock) -> None:
    gone = _user(engine, clock, "gone@renkei.example", isActive=False)
    pid = int(
        ProspectService(engine, clock=clock).create({"email": "a@example.jp", "assignedToId": gone})["id"]
    )
    done = AutomationService(engine, clock=clock).completion_actions(
        pid, [{"type": "notify_user", "message": "MQL"}], source="automation", source_id=1
    )
    assert done == [f"notified user {gone}"]  # in-app only: an inactive user is not mailed
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(email_message)).scalar_one() == 0


def test_nurture_notify_step_emails_the_assigned_user(
    engine: Engine, clock: FixedClock, smtp_sink: tuple[Sink, int]
) -> None:
    sink, port = smtp_sink
    sales = _user(engine, clock, "sales@renkei.example")
    hot = add_prospect(engine, "hot@example.jp", lastName="高橋", score=70, assignedToId=sales)
    recipients = add_list(engine, "webinar attendees", [hot])
    email = EmailService(engine, clock=clock, smtp=SmtpSettings.from_url(f"smtp://127.0.0.1:{port}"))
    programs = ProgramService(engine, clock=clock, email=email)
    definition = {"start": "tell", "steps": [
        {"id": "tell", "type": "action", "action": "notify", "message": "ウェビナー参加者です", "next": "end"},
        {"id": "end", "type": "end"}]}  # fmt: skip
    program = programs.create("webinar follow-up", definition, [recipients])
    programs.run_once()
    assert email.work().sent == 1
    [msg] = sink.messages
    assert msg["To"] == "sales@renkei.example"
    assert msg["Subject"] == "[renkei] ウェビナー参加者です — 高橋"
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert f"通知元: program {program['id']} (webinar follow-up) step tell" in text
