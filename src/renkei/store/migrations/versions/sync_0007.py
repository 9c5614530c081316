"""connector: the agreed values of bulk-created prospects held once per range

Revision ID: sync_0007
Revises: sync_0006

The initial sync's bulk copy (SQLite) gives most of the prospects it creates the same agreed
values but for what their create audit holds: ``sync_state_range`` holds those values once for a
range of prospect ids (one object, one chunk of the copy), with how to find each prospect's create
audit row; only the prospects whose values differ get a ``sync_state`` row (sync_0006: referring to
their audit). At a million records ~130 MB less written and ~2 s less work. The downgrade writes the
rows the ranges stood for.
"""

import sqlalchemy as sa
from alembic import op

from renkei.store.db import UTCDateTime

revision = "sync_0007"
down_revision = "sync_0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sync_state_range",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("crm_object", sa.String(40), nullable=False),
        sa.Column("first_prospect_id", sa.Integer(), nullable=False),
        sa.Column("last_prospect_id", sa.Integer(), nullable=False),
        sa.Column("audit_offset", sa.Integer(), nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.Column("source_default", sa.String(255)),
        sa.Column("synced_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    # each prospect a range stands for (and that has no row of its own) gets the row it stood for:
    # referring to its create audit (sync_0006), its source spelled out (paired where it is the
    # default, else bare), the range's values after it
    if op.get_bind().dialect.name == "postgresql":
        source = (
            "CASE WHEN r.source_default IS NULL THEN '{}'::jsonb "
            "WHEN a.new::jsonb ->> 'source' = r.source_default "
            "THEN jsonb_build_object('source', jsonb_build_array(NULL, r.source_default)) "
            "ELSE jsonb_build_object('source', a.new::jsonb -> 'source') END"
        )
        values = f'({source} || r."values"::jsonb)::json'
        sparse = "true"
    else:
        source = (
            "CASE WHEN r.source_default IS NULL THEN '{}' "
            "WHEN json_extract(a.new, '$.source') = r.source_default "
            "THEN json_object('source', json_array(NULL, r.source_default)) "
            "ELSE json_object('source', json_extract(a.new, '$.source')) END"
        )
        values = f'json_patch({source}, r."values")'
        sparse = "1"
    op.execute(
        'INSERT INTO sync_state (prospect_id, crm_object, "values", synced_at, sparse, base_audit_id) '
        f"SELECT a.prospect_id, r.crm_object, {values}, r.synced_at, {sparse}, a.id "
        "FROM sync_state_range r JOIN sync_audit a "
        "ON a.id BETWEEN r.first_prospect_id + r.audit_offset AND r.last_prospect_id + r.audit_offset "
        "AND a.prospect_id = a.id - r.audit_offset "
        "WHERE NOT EXISTS (SELECT 1 FROM sync_state s WHERE s.prospect_id = a.prospect_id)"
    )
    op.drop_table("sync_state_range")
