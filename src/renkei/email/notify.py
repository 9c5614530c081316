"""Notification emails to marketing users ("notify the assigned user").

Automation rules, completion actions and nurture-program steps notify a marketing user about a
prospect. The message goes into the same queue as every other email (``email_message``, kind
``notification``) and is sent by ``renkei email work`` / the worker over SMTP; it is addressed to a
*user*, not to the prospect, so it carries no prospect id (it is not a "sent" activity of the
prospect, and no unsubscribe header is added). The body is in the user's language (``ma_user.language``,
ja or en) and links to the prospect's page in the web app.
"""

from __future__ import annotations

import datetime as dt
import html

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from renkei.email.service import public_url
from renkei.store import tables as t
from renkei.store.tables_email import email_message

_LABELS = {
    "ja": {"prospect": "プロスペクト", "company": "会社", "score": "スコア", "grade": "グレード",
           "open": "renkei で開く", "from": "通知元"},
    "en": {"prospect": "Prospect", "company": "Company", "score": "Score", "grade": "Grade",
           "open": "Open in renkei", "from": "Sent by"},
}  # fmt: skip


def queue_user_notification(
    conn: Connection,
    *,
    user_id: int,
    prospect_id: int,
    message: str,
    source: str,
    now: dt.datetime,
    program_id: int | None = None,
    program_step: str | None = None,
) -> int | None:
    """Queue an email to marketing user ``user_id`` about ``prospect_id``; the message id, or None
    when the user does not exist, is inactive or the prospect is gone (nothing to tell)."""
    u, p = t.ma_user, t.prospect
    user = conn.execute(
        sa.select(u.c.email, u.c.language, u.c.isActive).where(u.c.id == int(user_id))
    ).first()
    if user is None or not user.isActive:
        return None
    prospect = conn.execute(
        sa.select(p.c.email, p.c.firstName, p.c.lastName, p.c.company, p.c.score, p.c.grade).where(
            p.c.id == prospect_id
        )
    ).first()
    if prospect is None:
        return None
    labels = _LABELS.get(str(user.language or "ja")[:2], _LABELS["en"])
    name = " ".join(x for x in (prospect.lastName, prospect.firstName) if x) or prospect.email
    url = f"{public_url()}/prospects/{prospect_id}"
    lines = [
        message,
        "",
        f"{labels['prospect']}: {name} <{prospect.email}>",
        f"{labels['company']}: {prospect.company or '-'}",
        f"{labels['score']}: {prospect.score}  {labels['grade']}: {prospect.grade or '-'}",
        f"{labels['from']}: {source}",
        "",
        f"{labels['open']}: {url}",
    ]
    text = "\n".join(lines)
    body = "".join(f"<p>{html.escape(line)}</p>" if line else "" for line in lines[:-1])
    markup = f'{body}<p><a href="{html.escape(url)}">{html.escape(labels["open"])}</a></p>'
    subject = f"[renkei] {message} — {name}"[:998]
    return int(
        conn.execute(
            email_message.insert()
            .values(
                kind="notification", programId=program_id, programStep=program_step, prospectId=None,
                toAddress=user.email, subject=subject, htmlBody=markup, textBody=text, links=[],
                status="queued", attempts=0, nextAttemptAt=now, clickCount=0, createdAt=now,
            )
            .returning(email_message.c.id)
        ).scalar_one()
    )  # fmt: skip
