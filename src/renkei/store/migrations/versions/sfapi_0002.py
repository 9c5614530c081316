"""Salesforce-compatible REST API: Bulk API 2.0 jobs and their data

Revision ID: sfapi_0002
Revises: sfapi_0001
"""

import sqlalchemy as sa
from alembic import op

import renkei.store.db

revision = "sfapi_0002"
down_revision = "sfapi_0001"
branch_labels = None
depends_on = None


def _ts(name, nullable=False):
    return sa.Column(name, renkei.store.db.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "sfapi_bulk_job",
        sa.Column("id", sa.String(18), nullable=False),
        sa.Column("job_type", sa.String(16), nullable=False),
        sa.Column("operation", sa.String(16), nullable=False),
        sa.Column("object", sa.String(80), nullable=True),
        sa.Column("external_id_field", sa.String(80), nullable=True),
        sa.Column("query", sa.Text(), nullable=True),
        sa.Column("line_ending", sa.String(4), nullable=False),
        sa.Column("column_delimiter", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("api_version", sa.String(8), nullable=False),
        sa.Column("created_by", sa.String(18), nullable=False),
        _ts("created_at"),
        _ts("modstamp"),
        _ts("claimed_at", nullable=True),
        sa.Column("columns", sa.JSON(), nullable=True),
        sa.Column("rows_done", sa.Integer(), nullable=False),
        sa.Column("records_processed", sa.Integer(), nullable=False),
        sa.Column("records_failed", sa.Integer(), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sfapi_bulk_job")),
    )
    op.create_index("ix_sfapi_bulk_job_created", "sfapi_bulk_job", ["created_at"])
    op.create_table(
        "sfapi_bulk_part",
        sa.Column("job_id", sa.String(18), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "kind", "seq", name=op.f("pk_sfapi_bulk_part")),
    )


def downgrade() -> None:
    op.drop_table("sfapi_bulk_part")
    op.drop_index("ix_sfapi_bulk_job_created", table_name="sfapi_bulk_job")
    op.drop_table("sfapi_bulk_job")
