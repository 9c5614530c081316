"""Tables of the Salesforce-compatible REST surface: OAuth clients, API passwords, bearer tokens,
the request log (which is also the rolling 24-hour API usage counter) and query cursors."""

from __future__ import annotations

import sqlalchemy as sa

from renkei.store.db import UTCDateTime
from renkei.store.tables import metadata

#: A connected app: ``client_id`` + secret (hashed) that runs as one CRM user (client credentials flow).
sfapi_client = sa.Table(
    "sfapi_client",
    metadata,
    sa.Column("client_id", sa.String(64), primary_key=True),
    sa.Column("secret_hash", sa.String(255), nullable=False),
    sa.Column("user_id", sa.String(18), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

#: An API password per CRM user (the username-password flow); argon2 hash only.
sfapi_password = sa.Table(
    "sfapi_password",
    metadata,
    sa.Column("user_id", sa.String(18), primary_key=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

#: Bearer tokens (session ids); only the SHA-256 of the token is kept.
sfapi_token = sa.Table(
    "sfapi_token",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(18), nullable=False),
    sa.Column("client_id", sa.String(64), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=True),
    sa.Column("revoked", sa.Boolean(), nullable=False, default=False),
)

#: One row per counted API request: the rolling 24-hour usage and the log tests count calls from.
sfapi_request = sa.Table(
    "sfapi_request",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("user_id", sa.String(18), nullable=True),
    sa.Column("method", sa.String(10), nullable=False),
    sa.Column("path", sa.String(2000), nullable=False),
    sa.Column("status", sa.Integer(), nullable=False),
    sa.Column("records", sa.Integer(), nullable=False, default=0),
    sa.Index("ix_sfapi_request_at", "at"),
)

#: Server-side query locators: one row per page of a query result, kept until ``expires_at``.
sfapi_query_page = sa.Table(
    "sfapi_query_page",
    metadata,
    sa.Column("locator", sa.String(32), primary_key=True),
    sa.Column("offset", sa.Integer(), primary_key=True),
    sa.Column("total_size", sa.Integer(), nullable=False),
    sa.Column("next_offset", sa.Integer(), nullable=True),
    sa.Column("records", sa.JSON(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
    sa.Index("ix_sfapi_query_page_expires", "expires_at"),
)
