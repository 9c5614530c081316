"""Salesforce-compatible REST API: OAuth clients, passwords, tokens, request log, query cursors

Revision ID: sfapi_0001
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

import renkei.store.db

revision = "sfapi_0001"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None


def _ts(name, nullable=False):
    return sa.Column(name, renkei.store.db.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "sfapi_client",
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("secret_hash", sa.String(255), nullable=False),
        sa.Column("user_id", sa.String(18), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_sfapi_client")),
    )
    op.create_table(
        "sfapi_password",
        sa.Column("user_id", sa.String(18), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_sfapi_password")),
    )
    op.create_table(
        "sfapi_token",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(18), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=True),
        _ts("created_at"),
        _ts("expires_at", nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_sfapi_token")),
    )
    op.create_table(
        "sfapi_request",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        _ts("at"),
        sa.Column("user_id", sa.String(18), nullable=True),
        sa.Column("method", sa.String(10), nullable=False),
        sa.Column("path", sa.String(2000), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sfapi_request")),
    )
    op.create_index("ix_sfapi_request_at", "sfapi_request", ["at"])
    op.create_table(
        "sfapi_query_page",
        sa.Column("locator", sa.String(32), nullable=False),
        sa.Column("offset", sa.Integer(), nullable=False),
        sa.Column("total_size", sa.Integer(), nullable=False),
        sa.Column("next_offset", sa.Integer(), nullable=True),
        sa.Column("records", sa.JSON(), nullable=False),
        _ts("expires_at"),
        sa.PrimaryKeyConstraint("locator", "offset", name=op.f("pk_sfapi_query_page")),
    )
    op.create_index("ix_sfapi_query_page_expires", "sfapi_query_page", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_sfapi_query_page_expires", table_name="sfapi_query_page")
    op.drop_table("sfapi_query_page")
    op.drop_index("ix_sfapi_request_at", table_name="sfapi_request")
    op.drop_table("sfapi_request")
    op.drop_table("sfapi_token")
    op.drop_table("sfapi_password")
    op.drop_table("sfapi_client")
