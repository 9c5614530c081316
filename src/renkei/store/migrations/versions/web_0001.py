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


SECTIONS = ("dashboard", "prospects", "campaigns", "automation", "email", "content", "reports", "calendar",
            "crm", "connector", "settings")  # fmt: skip

#: The built-in roles as they stand at this revision (renkei.web.permissions.DEFAULT_ROLES).
ROLES = (
    ("admin", "Administrator", {s: "edit" for s in SECTIONS}),
    ("marketing", "Marketing", {**{s: "edit" for s in SECTIONS}, "crm": "view", "connector": "view", "settings": "view"}),
    ("sales", "Sales", {**{s: "view" for s in SECTIONS}, "crm": "edit", "automation": "none", "email": "none",
                        "content": "none", "connector": "none", "settings": "none"}),
    ("read-only", "Read only", {**{s: "view" for s in SECTIONS}, "settings": "none"}),
)  # fmt: skip


def upgrade() -> None:
    bind = op.get_bind()
    for table in WEB_TABLES:
        table.create(bind)
    now = dt.datetime.now(dt.UTC)
    op.bulk_insert(
        web_role,
        [{"name": n, "label": label, "permissions": perms, "updated_at": now} for n, label, perms in ROLES],
    )


def downgrade() -> None:
    bind = op.get_bind()
    for table in reversed(WEB_TABLES):
        table.drop(bind)
