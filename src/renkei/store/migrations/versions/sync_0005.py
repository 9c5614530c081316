"""connector: an index on the marketing users' CRM user id

Revision ID: sync_0005
Revises: sync_0004

The initial sync's bulk copy finds the marketing user of each CRM record's ``OwnerId`` through
``ma_user."salesforceId"``, once per record. Without an index each lookup read every user: with a
hundred users, ~10 s of a million-record copy (~0.5 s with it).
"""

from alembic import op

revision = "sync_0005"
down_revision = "sync_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_ma_user_salesforceid", "ma_user", ["salesforceId"])


def downgrade() -> None:
    op.drop_index("ix_ma_user_salesforceid", table_name="ma_user")
