"""Email events recorded as Account Engagement visitor activities, through the shared recorder
(``renkei.marketing.activity_service.record_activities``) so that the ``lastActivityAt`` rule and
the scoring model apply in one place: sends, opens and bounces are passive (seed 004); a click
(type 1, typeName "Email Tracker") scores and moves the last activity.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from renkei.core.activities import ActivityType, AssetKind
from renkei.marketing.activity_service import NewActivity, record_activities


@dataclass(frozen=True, slots=True)
class EmailEvent:
    type: ActivityType
    type_name: AssetKind


SENT = EmailEvent(ActivityType.SENT, AssetKind.EMAIL)
OPEN = EmailEvent(ActivityType.OPEN, AssetKind.EMAIL)
CLICK = EmailEvent(ActivityType.CLICK, AssetKind.EMAIL_TRACKER)
UNSUBSCRIBE = EmailEvent(ActivityType.UNSUBSCRIBE_PAGE, AssetKind.EMAIL)
BOUNCED = EmailEvent(ActivityType.BOUNCED, AssetKind.EMAIL)
SPAM_COMPLAINT = EmailEvent(ActivityType.SPAM_COMPLAINT, AssetKind.EMAIL)
PREFERENCE_PAGE = EmailEvent(ActivityType.EMAIL_PREFERENCE_PAGE, AssetKind.EMAIL)
RESUBSCRIBED = EmailEvent(ActivityType.RESUBSCRIBED, AssetKind.EMAIL)


def new(
    prospect_id: int,
    event: EmailEvent,
    details: str | None,
    at: dt.datetime,
    *,
    email_id: int | None = None,
    template_id: int | None = None,
    list_email_id: int | None = None,
) -> NewActivity:
    refs = {k: v for k, v in (("emailId", email_id), ("emailTemplateId", template_id),
                              ("listEmailId", list_email_id)) if v is not None}  # fmt: skip
    return NewActivity(
        event.type, event.type_name, prospect_id=prospect_id, details=details, refs=refs, at=at
    )


def record_many(conn: Connection, now: dt.datetime, activities: Sequence[NewActivity]) -> list[int]:
    return record_activities(conn, activities, now)


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
    activity = new(prospect_id, event, details, now, email_id=email_id, template_id=template_id,
                   list_email_id=list_email_id)  # fmt: skip
    [activity_id] = record_activities(conn, [activity], now)
    return activity_id
