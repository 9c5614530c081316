"""connector: visitor activities exported as CRM tasks

Revision ID: sync_0003
Revises: sync_0002

``sync_activity_task`` remembers which visitor activity produced which CRM Task (``pending`` before
the create, ``done`` with the Task id after it, ``failed`` with a sync error). The index on
``sync_link.run_id`` lets the export find the prospects a run linked without scanning every link.
"""

import sqlalchemy as sa
from alembic import op

import renkei.store.db

revision = "sync_0003"
down_revision = "sync_0002"
branch_labels = None
depends_on = None


def _ts(name, nullable=True):
    return sa.Column(name, renkei.store.db.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "sync_activity_task",
        sa.Column("activity_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("prospect_id", sa.Integer(), nullable=False),
        sa.Column("who_id", sa.String(18)),
        sa.Column("task_id", sa.String(18)),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("next_attempt_at"),
        sa.Column("run_id", sa.Integer()),
        _ts("updated_at", False),
    )
    op.create_index("ix_sync_activity_task_open", "sync_activity_task", ["state", "prospect_id"])
    op.create_index("ix_sync_link_run", "sync_link", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_sync_link_run", "sync_link")
    op.drop_table("sync_activity_task")
