"""connector state: agreed values without the fields both sides leave empty

Revision ID: sync_0004
Revises: sync_0003

``sync_state.sparse`` marks a row whose ``values`` leaves out the fields both sides held empty
(null) when they were agreed: such a field reads as ``[null, null]``. A million-prospect initial
sync wrote ~30 fields per row, half of them ``"field":null``; sparse rows are about half the bytes.
Existing rows are not sparse (the column's default): there a field the row does not name was never
synced, as before. Nothing is rewritten.
"""

import sqlalchemy as sa
from alembic import op

revision = "sync_0004"
down_revision = "sync_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sync_state", sa.Column("sparse", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    # The older code reads a field a row does not name as never synced: after a downgrade the empty
    # fields of sparse rows are judged once by the first-sync rules (their names depend on the
    # connector config, which the database does not hold, so they are not spelled out here).
    with op.batch_alter_table("sync_state") as batch:
        batch.drop_column("sparse")
