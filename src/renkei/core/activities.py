"""Account Engagement visitor-activity types (pure).

``ActivityType`` carries AE's published numeric codes (``visitor_activity.type``); ``AssetKind``
is the ``typeName`` AE overloads with the asset kind ("Form", "Landing Page", "Email Tracker" …).
Whether an activity is *passive* — recorded but not moving ``lastActivityAt`` nor making the
prospect active — is a property of the type (seed 003/004: email sends, opens and bounces and the
opportunity events never move it). Automation-rule actions, Engagement Studio actions and imports
are not activities at all, so they cannot move it either.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import Enum, IntEnum


class ActivityType(IntEnum):
    CLICK = 1
    VIEW = 2
    ERROR = 3
    SUCCESS = 4
    SESSION = 5
    SENT = 6
    SEARCH = 7
    NEW_OPPORTUNITY = 8
    OPPORTUNITY_WON = 9
    OPPORTUNITY_LOST = 10
    OPEN = 11
    UNSUBSCRIBE_PAGE = 12
    BOUNCED = 13
    SPAM_COMPLAINT = 14
    EMAIL_PREFERENCE_PAGE = 15
    RESUBSCRIBED = 16
    CLICK_THIRD_PARTY = 17
    OPPORTUNITY_REOPENED = 18
    OPPORTUNITY_LINKED = 19
    VISIT = 20
    CUSTOM_URL_CLICK = 21
    OLARK_CHAT = 22
    INVITED_TO_WEBINAR = 23
    ATTENDED_WEBINAR = 24
    REGISTERED_FOR_WEBINAR = 25
    SOCIAL_POST_CLICK = 26
    VIDEO_VIEW = 27
    EVENT_REGISTERED = 28
    EVENT_CHECKED_IN = 29
    VIDEO_CONVERSION = 30
    USERVOICE_SUGGESTION = 31
    USERVOICE_COMMENT = 32
    USERVOICE_TICKET = 33
    VIDEO_WATCHED = 34
    INDIRECT_UNSUBSCRIBE_OPEN = 35
    INDIRECT_BOUNCE = 36
    INDIRECT_RESUBSCRIBED = 37
    OPPORTUNITY_UNLINKED = 38

    @property
    def label(self) -> str:
        return _LABELS.get(self, self.name.replace("_", " ").title())

    @property
    def passive(self) -> bool:
        """True when the type never moves ``lastActivityAt`` (AE's passive set, seed 004)."""
        return self in PASSIVE_TYPES


_LABELS = {
    ActivityType.CLICK_THIRD_PARTY: "Click (Third Party)",
    ActivityType.CUSTOM_URL_CLICK: "Custom URL click",
    ActivityType.VIDEO_WATCHED: "Video Watched (>= 75%)",
    ActivityType.NEW_OPPORTUNITY: "New Opportunity",
    ActivityType.USERVOICE_SUGGESTION: "UserVoice Suggestion",
    ActivityType.USERVOICE_COMMENT: "UserVoice Comment",
    ActivityType.USERVOICE_TICKET: "UserVoice Ticket",
}

PASSIVE_TYPES: frozenset[ActivityType] = frozenset(
    {
        ActivityType.SENT,
        ActivityType.OPEN,
        ActivityType.BOUNCED,
        ActivityType.INDIRECT_BOUNCE,
        ActivityType.NEW_OPPORTUNITY,
        ActivityType.OPPORTUNITY_WON,
        ActivityType.OPPORTUNITY_LOST,
        ActivityType.OPPORTUNITY_REOPENED,
        ActivityType.OPPORTUNITY_LINKED,
        ActivityType.OPPORTUNITY_UNLINKED,
    }
)


def type_label(code: int) -> str:
    """AE's name of a type code; codes outside the published list are "Unknown"."""
    try:
        return ActivityType(code).label
    except ValueError:
        return "Unknown"


def moves_last_activity(code: int) -> bool:
    """Whether an activity of this code moves ``lastActivityAt`` (unknown codes do not)."""
    try:
        return not ActivityType(code).passive
    except ValueError:
        return False


class AssetKind(str, Enum):
    """AE's ``typeName``: the kind of asset or tracker the activity happened on."""

    FORM = "Form"
    FORM_HANDLER = "Form Handler"
    LANDING_PAGE = "Landing Page"
    FILE = "File"
    CUSTOM_REDIRECT = "Custom Redirect"
    VISIT = "Visit"
    VISITOR = "Visitor"
    EMAIL = "Email"
    EMAIL_TRACKER = "Email Tracker"
    VISIT_TRACKER = "Visit Tracker"
    SITE_SEARCH = "Site Search Query"
    OPPORTUNITY = "Opportunity"


#: The ``visitor_activity`` column that holds the asset id for each asset kind.
ASSET_COLUMN: dict[AssetKind, str] = {
    AssetKind.FORM: "formId",
    AssetKind.FORM_HANDLER: "formHandlerId",
    AssetKind.LANDING_PAGE: "landingPageId",
    AssetKind.FILE: "fileId",
    AssetKind.CUSTOM_REDIRECT: "customRedirectId",
    AssetKind.VISIT: "visitId",
    AssetKind.EMAIL: "emailId",
    AssetKind.EMAIL_TRACKER: "emailId",
}


@dataclass(frozen=True, slots=True)
class ActivityEffect:
    """What recording one activity does to its prospect's activity dates."""

    last_activity_at: dt.datetime | None
    first_activity_at: dt.datetime | None


def activity_effect(
    code: int, when: dt.datetime, last: dt.datetime | None, first: dt.datetime | None
) -> ActivityEffect:
    """The prospect's new (lastActivityAt, firstActivityAt) after an activity of ``code`` at
    ``when``; passive types leave both as they are; an older event never moves the date back."""
    if not moves_last_activity(code):
        return ActivityEffect(last, first)
    new_last = when if last is None or when > last else last
    new_first = when if first is None or when < first else first
    return ActivityEffect(new_last, new_first)


#: Bounces: a hard bounce, or this many soft bounces, make a prospect undeliverable (AE).
SOFT_BOUNCE_LIMIT = 5


def is_undeliverable(hard_bounced: bool, soft_bounces: int) -> bool:
    return hard_bounced or soft_bounces >= SOFT_BOUNCE_LIMIT
