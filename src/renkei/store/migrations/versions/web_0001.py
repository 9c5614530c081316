"""web: credentials, roles, sessions, API tokens, settings audit log, login attempts, secrets

Revision ID: web_0001
Revises: 0001_foundation

The tables are created from their definitions in ``renkei.store.tables_web`` as they stand at
this revision; a later change to that module ships its own migration. The four built-in roles
are inserted with their default per-section permissions.
"""

import datetime as dt

from alembic import op

from renkei.store.tables_web import WEB_TABLES, web_role

revision = "web_0001"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from renkei.web.permissions import DEFAULT_ROLES

    bind = op.get_bind()
    for table in WEB_TABLES:
        table.create(bind)
    now = dt.datetime.now(dt.UTC)
    op.bulk_insert(
        web_role,
        [
            {"name": r.name, "label": r.label, "permissions": dict(r.permissions), "updated_at": now}
            for r in DEFAULT_ROLES
        ],
    )


def downgrade() -> None:
    bind = op.get_bind()
    for table in reversed(WEB_TABLES):
        table.drop(bind)
