"""segments: a covering index of visitor activities for rule windows

Revision ID: segments_0003
Revises: segments_0002

Rules ask "which prospects have an activity of these types in this window": with
``(type, createdAt, prospectId)`` both databases answer from the index alone (no table reads).
"""

from alembic import op

revision = "segments_0003"
down_revision = "segments_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_visitor_activity_segment", "visitor_activity", ["type", "createdAt", "prospectId"])


def downgrade() -> None:
    op.drop_index("ix_visitor_activity_segment", table_name="visitor_activity")
