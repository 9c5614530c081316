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

#: Bulk API 2.0 jobs (ingest and query); kept until deleted, so a restart loses none.
sfapi_bulk_job = sa.Table(
    "sfapi_bulk_job",
    metadata,
    sa.Column("id", sa.String(18), primary_key=True),
    sa.Column("job_type", sa.String(16), nullable=False),  # V2Ingest | V2Query
    sa.Column("operation", sa.String(16), nullable=False),
    sa.Column("object", sa.String(80), nullable=True),
    sa.Column("external_id_field", sa.String(80), nullable=True),
    sa.Column("query", sa.Text(), nullable=True),
    sa.Column("line_ending", sa.String(4), nullable=False),
    sa.Column("column_delimiter", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("api_version", sa.String(8), nullable=False),
    sa.Column("created_by", sa.String(18), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("modstamp", UTCDateTime(), nullable=False),
    #: When processing last claimed the job (a stale claim is taken over after a restart).
    sa.Column("claimed_at", UTCDateTime(), nullable=True),
    sa.Column("columns", sa.JSON(), nullable=True),
    #: Upload rows handled so far (processing resumes there).
    sa.Column("rows_done", sa.Integer(), nullable=False, default=0),
    sa.Column("records_processed", sa.Integer(), nullable=False, default=0),
    sa.Column("records_failed", sa.Integer(), nullable=False, default=0),
    sa.Column("error_message", sa.Text(), nullable=True),
    sa.Index("ix_sfapi_bulk_job_created", "created_at"),
)

#: A job's data, in parts: the uploaded CSV, and per processed chunk its result rows (CSV without
#: a header) for successfulResults / failedResults, and a query job's result pages.
sfapi_bulk_part = sa.Table(
    "sfapi_bulk_part",
    metadata,
    sa.Column("job_id", sa.String(18), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),  # upload | success | failure | result
    sa.Column("seq", sa.Integer(), primary_key=True),
    sa.Column("rows", sa.Integer(), nullable=False),
    sa.Column("content", sa.Text(), nullable=False),
)
