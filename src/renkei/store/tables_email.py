"""Email and nurture-program tables (issue: email and nurturing)."""

from __future__ import annotations

import sqlalchemy as sa

from renkei.store.db import UTCDateTime
from renkei.store.tables import metadata

email_template = sa.Table(
    "email_template",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("subject", sa.String(998), nullable=False),
    sa.Column("htmlBody", sa.Text(), nullable=False),
    sa.Column("textBody", sa.Text(), nullable=False),
    sa.Column("fromAddress", sa.String(255)),
    sa.Column("fromName", sa.String(255)),
    sa.Column("isOperational", sa.Boolean(), nullable=False, default=False),
    sa.Column("createdAt", UTCDateTime(), nullable=False),
    sa.Column("updatedAt", UTCDateTime(), nullable=False),
)

#: A list email (one send to lists minus suppression lists), possibly scheduled.
list_email = sa.Table(
    "list_email",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("templateId", sa.Integer(), sa.ForeignKey("email_template.id"), nullable=False),
    sa.Column("listIds", sa.JSON(), nullable=False),
    sa.Column("suppressionListIds", sa.JSON(), nullable=False),
    sa.Column("isOperational", sa.Boolean(), nullable=False, default=False),
    sa.Column("campaignId", sa.Integer()),
    sa.Column("status", sa.String(20), nullable=False),  # scheduled, queued, sent, cancelled
    sa.Column("scheduledAt", UTCDateTime()),
    sa.Column("queuedAt", UTCDateTime()),
    sa.Column("recipientCount", sa.Integer(), nullable=False, default=0),
    sa.Column("skippedCount", sa.Integer(), nullable=False, default=0),
    sa.Column("createdAt", UTCDateTime(), nullable=False),
    sa.Column("updatedAt", UTCDateTime(), nullable=False),
    sa.Index("ix_list_email_status", "status", "scheduledAt"),
)

#: One message to one recipient: the send queue and the record of what was sent.
email_message = sa.Table(
    "email_message",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(20), nullable=False),  # list, operational, one_to_one, test, program
    sa.Column("listEmailId", sa.Integer()),
    sa.Column("templateId", sa.Integer()),
    sa.Column("programId", sa.Integer()),
    sa.Column("programStep", sa.String(64)),
    sa.Column("prospectId", sa.Integer()),
    sa.Column("toAddress", sa.String(255), nullable=False),
    sa.Column("subject", sa.String(998), nullable=False),
    sa.Column("htmlBody", sa.Text(), nullable=False),
    sa.Column("textBody", sa.Text(), nullable=False),
    sa.Column("links", sa.JSON(), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # queued, sending, sent, failed
    sa.Column("attempts", sa.Integer(), nullable=False, default=0),
    sa.Column("nextAttemptAt", UTCDateTime()),
    sa.Column("lastError", sa.String(1024)),
    sa.Column("messageId", sa.String(255)),
    sa.Column("sentAt", UTCDateTime()),
    sa.Column("openedAt", UTCDateTime()),
    sa.Column("clickCount", sa.Integer(), nullable=False, default=0),
    sa.Column("bouncedAt", UTCDateTime()),
    sa.Column("createdAt", UTCDateTime(), nullable=False),
    sa.Index("ix_email_message_queue", "status", "nextAttemptAt"),
    sa.Index("ix_email_message_prospect", "prospectId"),
    sa.Index("ix_email_message_messageid", "messageId"),
)

nurture_program = sa.Table(
    "nurture_program",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("definition", sa.JSON(), nullable=False),
    sa.Column("recipientListIds", sa.JSON(), nullable=False),
    sa.Column("suppressionListIds", sa.JSON(), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # running, paused
    sa.Column("createdAt", UTCDateTime(), nullable=False),
    sa.Column("updatedAt", UTCDateTime(), nullable=False),
)

nurture_position = sa.Table(
    "nurture_position",
    metadata,
    sa.Column(
        "programId", sa.Integer(), sa.ForeignKey("nurture_program.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("prospectId", sa.Integer(), primary_key=True),
    sa.Column("step", sa.String(64)),
    sa.Column("since", UTCDateTime(), nullable=False),
    sa.Column("until", UTCDateTime()),
    sa.Column("finished", sa.Boolean(), nullable=False, default=False),
    sa.Column("exited", sa.Boolean(), nullable=False, default=False),
    sa.Column("updatedAt", UTCDateTime(), nullable=False),
)

nurture_history = sa.Table(
    "nurture_history",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("programId", sa.Integer(), nullable=False),
    sa.Column("prospectId", sa.Integer(), nullable=False),
    sa.Column("step", sa.String(64), nullable=False),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Index("ix_nurture_history_program", "programId", "prospectId", "id"),
)
