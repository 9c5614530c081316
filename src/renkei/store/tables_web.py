"""Tables of the web app: sign-in credentials, roles, server-side sessions, API tokens, the
settings audit log and login attempts (for rate limiting).

Users are the marketing users (``ma_user``); a credential row gives one of them a password.
Secrets (passwords, session ids, API tokens) are never stored in clear: passwords as argon2
hashes, session ids and API tokens as SHA-256 digests of random values.
"""

from __future__ import annotations

import sqlalchemy as sa

from renkei.store.db import UTCDateTime
from renkei.store.tables import metadata

web_credential = sa.Table(
    "web_credential",
    metadata,
    sa.Column("user_id", sa.Integer(), sa.ForeignKey("ma_user.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

#: Roles and their per-section permissions ({"prospects": "edit", "settings": "none", …}).
web_role = sa.Table(
    "web_role",
    metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("label", sa.String(80), nullable=False),
    sa.Column("permissions", sa.JSON(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

web_session = sa.Table(
    "web_session",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.Integer(), sa.ForeignKey("ma_user.id", ondelete="CASCADE"), nullable=False),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("last_seen_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
    sa.Column("ip", sa.String(45)),
    sa.Column("user_agent", sa.String(255)),
    sa.Index("ix_web_session_user", "user_id"),
)

web_api_token = sa.Table(
    "web_api_token",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.Integer(), sa.ForeignKey("ma_user.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(120), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    # the first characters of the token, shown in lists so that a user can tell tokens apart
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("scopes", sa.JSON(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime()),
    sa.Column("last_used_at", UTCDateTime()),
    sa.Column("revoked_at", UTCDateTime()),
)

web_audit = sa.Table(
    "web_audit",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("user_id", sa.Integer()),
    sa.Column("actor", sa.String(255)),
    sa.Column("action", sa.String(80), nullable=False),
    sa.Column("target", sa.String(255)),
    sa.Column("before", sa.JSON()),
    sa.Column("after", sa.JSON()),
    sa.Index("ix_web_audit_at", "at"),
)

web_login_attempt = sa.Table(
    "web_login_attempt",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("email_key", sa.String(255), nullable=False),
    sa.Column("ip", sa.String(45)),
    sa.Column("success", sa.Boolean(), nullable=False),
    sa.Index("ix_web_login_attempt_email", "email_key", "at"),
    sa.Index("ix_web_login_attempt_ip", "ip", "at"),
)

#: Named random secrets of the installation (signing REST page tokens, the login CSRF cookie).
web_secret = sa.Table(
    "web_secret",
    metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("value", sa.String(128), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

WEB_TABLES = (web_credential, web_role, web_session, web_api_token, web_audit, web_login_attempt, web_secret)
