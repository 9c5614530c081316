"""connector state

Revision ID: sync_0001
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

import renkei.store.db

revision = "sync_0001"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None


def _ts(name, nullable=True):
    return sa.Column(name, renkei.store.db.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "sync_link",
        sa.Column("prospect_id", sa.Integer(), primary_key=True),
        sa.Column("crm_object", sa.String(40), nullable=False),
        sa.Column("crm_id", sa.String(18), nullable=False, unique=True),
        _ts("linked_at", False),
        sa.Column("run_id", sa.Integer()),
    )
    op.create_table(
        "sync_field_state",
        sa.Column("prospect_id", sa.Integer(), primary_key=True),
        sa.Column("field", sa.String(80), primary_key=True),
        sa.Column("value", sa.JSON()),
        _ts("synced_at", False),
    )
    op.create_table(
        "sync_watermark",
        sa.Column("source", sa.String(40), primary_key=True),
        _ts("modstamp"),
        sa.Column("record_id", sa.String(40)),
    )
    op.create_table(
        "sync_run",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(20), nullable=False),
        _ts("started_at", False),
        _ts("finished_at"),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("counts", sa.JSON()),
        sa.Column("rolled_back_by", sa.Integer()),
    )
    op.create_table(
        "sync_audit",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer(), nullable=False),
        _ts("at", False),
        sa.Column("direction", sa.String(10), nullable=False),
        sa.Column("action", sa.String(10), nullable=False),
        sa.Column("object", sa.String(40), nullable=False),
        sa.Column("record_id", sa.String(40), nullable=False),
        sa.Column("prospect_id", sa.Integer()),
        sa.Column("field", sa.String(80)),
        sa.Column("old", sa.JSON()),
        sa.Column("new", sa.JSON()),
        sa.Column("rule", sa.String(40)),
        sa.Column("evidence", sa.String(40)),
        sa.Column("reason", sa.String(255)),
    )
    op.create_index("ix_sync_audit_run", "sync_audit", ["run_id"])
    op.create_index("ix_sync_audit_prospect", "sync_audit", ["prospect_id", "field"])
    op.create_table(
        "sync_error",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer()),
        _ts("at", False),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("object", sa.String(40), nullable=False),
        sa.Column("record_id", sa.String(40)),
        sa.Column("prospect_id", sa.Integer()),
        sa.Column("field", sa.String(80)),
        sa.Column("value", sa.JSON()),
        sa.Column("code", sa.String(60)),
        sa.Column("message", sa.String(1024), nullable=False),
        sa.Column("retriable", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("next_attempt_at"),
        _ts("resolved_at"),
    )
    op.create_index("ix_sync_error_open", "sync_error", ["resolved_at", "kind"])
    op.create_table(
        "sync_queue",
        sa.Column("source", sa.String(40), primary_key=True),
        sa.Column("record_id", sa.String(40), primary_key=True),
        _ts("enqueued_at", False),
    )
    op.create_table(
        "sync_setting_change",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        _ts("at", False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("old", sa.JSON()),
        sa.Column("new", sa.JSON()),
    )


def downgrade() -> None:
    for name in ("sync_setting_change", "sync_queue", "sync_error", "sync_audit", "sync_run", "sync_watermark",
                 "sync_field_state", "sync_link"):  # fmt: skip
        op.drop_table(name)
