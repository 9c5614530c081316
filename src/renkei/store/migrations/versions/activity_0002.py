"""activity: covering index of visitor activities for set-based rescoring

Revision ID: activity_0002
Revises: activity_0001
"""

from alembic import op

from renkei.store.tables_activity import visitor_activity_scoring_index

revision = "activity_0002"
down_revision = "activity_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    visitor_activity_scoring_index.create(op.get_bind())


def downgrade() -> None:
    visitor_activity_scoring_index.drop(op.get_bind())
