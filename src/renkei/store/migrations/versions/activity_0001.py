"""activity: scoring model and ledger, grading profiles, tracking, assets, automation

Revision ID: activity_0001
Revises: 0001_foundation

The tables are created from their definitions in ``renkei.store.tables_activity`` as they stand
at this revision; a later change to that module ships its own migration (add_column …).
"""

from alembic import op

from renkei.store.tables_activity import ACTIVITY_TABLES, visitor_activity_visit_index

revision = "activity_0001"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    for table in ACTIVITY_TABLES:
        table.create(bind)
    visitor_activity_visit_index.create(bind)


def downgrade() -> None:
    bind = op.get_bind()
    visitor_activity_visit_index.drop(bind)
    for table in reversed(ACTIVITY_TABLES):
        table.drop(bind)
