"""email and nurture programs

Revision ID: email_0001
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

import renkei.store.db

revision = "email_0001"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None


def _ts(name, nullable=False):
    return sa.Column(name, renkei.store.db.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "email_template",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("subject", sa.String(998), nullable=False),
        sa.Column("htmlBody", sa.Text(), nullable=False),
        sa.Column("textBody", sa.Text(), nullable=False),
        sa.Column("fromAddress", sa.String(255)),
        sa.Column("fromName", sa.String(255)),
        sa.Column("isOperational", sa.Boolean(), nullable=False),
        _ts("createdAt"),
        _ts("updatedAt"),
    )
    op.create_table(
        "list_email",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column(
            "templateId",
            sa.Integer(),
            sa.ForeignKey("email_template.id", name="fk_list_email_templateId_email_template"),
            nullable=False,
        ),
        sa.Column("listIds", sa.JSON(), nullable=False),
        sa.Column("suppressionListIds", sa.JSON(), nullable=False),
        sa.Column("isOperational", sa.Boolean(), nullable=False),
        sa.Column("campaignId", sa.Integer()),
        sa.Column("status", sa.String(20), nullable=False),
        _ts("scheduledAt", True),
        _ts("queuedAt", True),
        sa.Column("recipientCount", sa.Integer(), nullable=False),
        sa.Column("skippedCount", sa.Integer(), nullable=False),
        _ts("createdAt"),
        _ts("updatedAt"),
    )
    op.create_index("ix_list_email_status", "list_email", ["status", "scheduledAt"])
    op.create_table(
        "email_message",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(20), nullable=False),
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
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("nextAttemptAt", True),
        sa.Column("lastError", sa.String(1024)),
        sa.Column("messageId", sa.String(255)),
        _ts("sentAt", True),
        _ts("openedAt", True),
        sa.Column("clickCount", sa.Integer(), nullable=False),
        _ts("bouncedAt", True),
        _ts("createdAt"),
    )
    op.create_index("ix_email_message_queue", "email_message", ["status", "nextAttemptAt"])
    op.create_index("ix_email_message_prospect", "email_message", ["prospectId"])
    op.create_index("ix_email_message_messageid", "email_message", ["messageId"])
    op.create_table(
        "nurture_program",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("recipientListIds", sa.JSON(), nullable=False),
        sa.Column("suppressionListIds", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        _ts("createdAt"),
        _ts("updatedAt"),
    )
    op.create_table(
        "nurture_position",
        sa.Column(
            "programId",
            sa.Integer(),
            sa.ForeignKey(
                "nurture_program.id", ondelete="CASCADE", name="fk_nurture_position_programId_nurture_program"
            ),
            primary_key=True,
        ),
        sa.Column("prospectId", sa.Integer(), primary_key=True),
        sa.Column("step", sa.String(64)),
        _ts("since"),
        _ts("until", True),
        sa.Column("finished", sa.Boolean(), nullable=False),
        sa.Column("exited", sa.Boolean(), nullable=False),
        _ts("updatedAt"),
    )
    op.create_table(
        "nurture_history",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("programId", sa.Integer(), nullable=False),
        sa.Column("prospectId", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        _ts("at"),
    )
    op.create_index("ix_nurture_history_program", "nurture_history", ["programId", "prospectId", "id"])


def downgrade() -> None:
    for name in (
        "nurture_history",
        "nurture_position",
        "nurture_program",
        "email_message",
        "list_email",
        "email_template",
    ):
        op.drop_table(name)
