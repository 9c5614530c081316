"""CRM recycle bin index

Revision ID: crm_0001
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

import renkei.store.db

revision = "crm_0001"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "crm_recycle_bin",
        sa.Column("record_id", sa.String(18), primary_key=True),
        sa.Column("object_name", sa.String(80), nullable=False),
        sa.Column("root_id", sa.String(18), nullable=False),
        sa.Column("deleted_at", renkei.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deleted_by", sa.String(18)),
    )
    op.create_index("ix_crm_recycle_bin_root", "crm_recycle_bin", ["root_id"])


def downgrade() -> None:
    op.drop_table("crm_recycle_bin")
