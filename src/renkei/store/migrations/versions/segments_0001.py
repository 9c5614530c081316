"""segments: list rules and refresh state, change-log triggers, saved reports

Revision ID: segments_0001
Revises: 0001_foundation

The tables are created from ``renkei.store.tables_segments`` as they stand at this revision; the
triggers feed ``segment_change`` from the link tables (see that module's docstring).
"""

from alembic import op

from renkei.store.tables_segments import CHANGE_TRIGGERS, SEGMENT_TABLES

revision = "segments_0001"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None


def _sqlite_triggers(table: str, column: str, when: str | None) -> list[str]:
    out = []
    for event, ref in (("INSERT", ("NEW",)), ("DELETE", ("OLD",)), ("UPDATE", ("NEW", "OLD"))):
        for row in ref:
            cond = f" WHEN {row}.{when}" if when else ""
            out.append(
                f"CREATE TRIGGER trg_segchg_{table}_{event.lower()}_{row.lower()} AFTER {event} ON {table}"
                f'{cond} BEGIN INSERT INTO segment_change ("prospectId") VALUES ({row}."{column}"); END'
            )
    return out


def _pg_triggers(table: str, column: str, when: str | None) -> list[str]:
    def log(row: str) -> str:
        insert = f'INSERT INTO segment_change ("prospectId") VALUES ({row}."{column}");'
        return f"IF {row}.{when} THEN {insert} END IF;" if when else insert

    body = (
        f"BEGIN\n"
        f"  IF TG_OP IN ('INSERT', 'UPDATE') THEN {log('NEW')} END IF;\n"
        f"  IF TG_OP IN ('DELETE', 'UPDATE') THEN {log('OLD')} END IF;\n"
        f"  RETURN NULL;\n"
        f"END"
    )
    return [
        f"CREATE FUNCTION segchg_{table}() RETURNS trigger LANGUAGE plpgsql AS $$\n{body}\n$$",
        f"CREATE TRIGGER trg_segchg_{table} AFTER INSERT OR UPDATE OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION segchg_{table}()",
    ]


def upgrade() -> None:
    bind = op.get_bind()
    for table in SEGMENT_TABLES:
        table.create(bind)
    make = _pg_triggers if bind.dialect.name == "postgresql" else _sqlite_triggers
    for spec in CHANGE_TRIGGERS:
        for statement in make(*spec):
            op.execute(statement)


def downgrade() -> None:
    bind = op.get_bind()
    for table, _, _ in CHANGE_TRIGGERS:
        if bind.dialect.name == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS trg_segchg_{table} ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS segchg_{table}()")
        else:
            for event in ("insert", "delete", "update"):
                for row in ("new", "old"):
                    op.execute(f"DROP TRIGGER IF EXISTS trg_segchg_{table}_{event}_{row}")
    for table in reversed(SEGMENT_TABLES):
        table.drop(bind)
