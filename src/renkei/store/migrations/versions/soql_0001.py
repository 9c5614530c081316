"""soql: lower() expression indexes for case-insensitive SOQL equality on indexed text fields

Revision ID: soql_0001
Revises: 0001_foundation
"""

from alembic import op

from renkei.store.tables_soql import LOWER_INDEXES

revision = "soql_0001"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    for index in LOWER_INDEXES:
        index.create(bind)


def downgrade() -> None:
    bind = op.get_bind()
    for index in reversed(LOWER_INDEXES):
        index.drop(bind)
