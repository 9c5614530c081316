"""connector state: one agreed-values row per prospect

Revision ID: sync_0002
Revises: sync_0001

``sync_field_state`` kept one row per prospect and field (about 30 per prospect); ``sync_state``
keeps one row per prospect whose ``values`` JSON object maps each field to the same
``[crm_value_as_marketing_keeps_it, marketing_value]`` pair. Existing rows are copied grouped per
prospect in one statement (``json_group_object`` on SQLite, ``json_object_agg`` on PostgreSQL); the
object comes from the prospect's link (NULL when it has none).
"""

import sqlalchemy as sa
from alembic import op

import renkei.store.db

revision = "sync_0002"
down_revision = "sync_0001"
branch_labels = None
depends_on = None


def _ts(name, nullable=True):
    return sa.Column(name, renkei.store.db.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "sync_state",
        sa.Column("prospect_id", sa.Integer(), primary_key=True),
        sa.Column("crm_object", sa.String(40)),
        sa.Column("values", sa.JSON(), nullable=False),
        _ts("synced_at", False),
    )
    group = (
        "json_object_agg(s.field, s.value)"
        if op.get_bind().dialect.name == "postgresql"
        else "json_group_object(s.field, json(s.value))"
    )
    op.execute(
        'INSERT INTO sync_state (prospect_id, crm_object, "values", synced_at) '
        f"SELECT s.prospect_id, MAX(l.crm_object), {group}, MAX(s.synced_at) "
        "FROM sync_field_state s LEFT JOIN sync_link l ON l.prospect_id = s.prospect_id "
        "GROUP BY s.prospect_id"
    )
    op.drop_table("sync_field_state")


def downgrade() -> None:
    op.create_table(
        "sync_field_state",
        sa.Column("prospect_id", sa.Integer(), primary_key=True),
        sa.Column("field", sa.String(80), primary_key=True),
        sa.Column("value", sa.JSON()),
        _ts("synced_at", False),
    )
    if op.get_bind().dialect.name == "postgresql":
        select = (
            'SELECT s.prospect_id, j.key, j.value, s.synced_at FROM sync_state s, json_each(s."values") j'
        )
    else:
        value = "CASE WHEN j.type IN ('array', 'object') THEN j.value ELSE json_quote(j.value) END"
        select = (
            f'SELECT s.prospect_id, j.key, {value}, s.synced_at FROM sync_state s, json_each(s."values") j'
        )
    op.execute(f"INSERT INTO sync_field_state (prospect_id, field, value, synced_at) {select}")
    op.drop_table("sync_state")
