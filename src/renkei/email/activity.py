"""Email events recorded as Account Engagement visitor activities.

Type codes (AE): 6 Sent, 11 Open, 1 Click (typeName "Email Tracker"), 12 Unsubscribe Page,
13 Bounced, 14 Spam Complaint, 15 Email Preference Page, 16 Resubscribed. Sends, opens and bounces
are passive: they never move ``lastActivityAt`` (seed 004) nor score. A click scores +3 (AE's
default for tracked link clicks) and moves ``lastActivityAt``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from renkei.store import tables as t


@dataclass(frozen=True, slots=True)
class EmailEvent:
    type: int
    type_name: str
    passive: bool
    points: int


SENT = EmailEvent(6, "Email", True, 0)
OPEN = EmailEvent(11, "Email", True, 0)
CLICK = EmailEvent(1, "Email Tracker", False, 3)
UNSUBSCRIBE = EmailEvent(12, "Email", False, 0)
BOUNCED = EmailEvent(13, "Email", True, 0)
SPAM_COMPLAINT = EmailEvent(14, "Email", False, 0)
PREFERENCE_PAGE = EmailEvent(15, "Email", False, 0)
RESUBSCRIBED = EmailEvent(16, "Email", False, 0)


def record(
    conn: Connection,
    now: dt.datetime,
    prospect_id: int,
    event: EmailEvent,
    details: str | None,
    *,
    email_id: int | None = None,
    template_id: int | None = None,
    list_email_id: int | None = None,
) -> int:
    """Insert the activity and apply its effect on the prospect (last activity, score)."""
    activity_id = conn.execute(
        t.visitor_activity.insert()
        .values(
            type=event.type,
            typeName=event.type_name,
            details=(details or "")[:2048],
            prospectId=prospect_id,
            emailId=email_id,
            emailTemplateId=template_id,
            listEmailId=list_email_id,
            createdAt=now,
            updatedAt=now,
        )
        .returning(t.visitor_activity.c.id)
    ).scalar_one()
    if not event.passive:
        p = t.prospect
        values: dict[str, object] = {
            "lastActivityAt": now,
            "firstActivityAt": sa.func.coalesce(p.c.firstActivityAt, now),
            "updatedAt": now,
        }
        if event.points:
            values["score"] = sa.func.coalesce(p.c.score, 0) + event.points
        conn.execute(p.update().where(p.c.id == prospect_id).values(**values))
    return int(activity_id)
