"""The connector's own state: links, agreed field values, watermarks, runs, audit, errors, queue."""

from __future__ import annotations

import sqlalchemy as sa

from renkei.store.db import UTCDateTime
from renkei.store.tables import metadata

#: One prospect ↔ one CRM lead or contact.
sync_link = sa.Table(
    "sync_link",
    metadata,
    sa.Column("prospect_id", sa.Integer(), primary_key=True),
    sa.Column("crm_object", sa.String(40), nullable=False),
    sa.Column("crm_id", sa.String(18), nullable=False, unique=True),
    sa.Column("linked_at", UTCDateTime(), nullable=False),
    sa.Column("run_id", sa.Integer()),
)

#: The values both sides agreed on after the last sync, one row per prospect (no echo; field-level
#: "who changed it" evidence for the judge). ``values`` maps each synced field (and the owner
#: pseudo-field ``assignedToId``) to ``[crm_value_as_marketing_keeps_it, marketing_value]``, or to
#: the bare value where both sides hold it alike (one JSON type, one value: most fields).
#: ``crm_object`` is the object the values were agreed with (NULL for rows migrated without a link).
#: A ``sparse`` row (every row a sync writes after sync_0004) leaves out the fields both sides held
#: empty (null): each mapped field of ``crm_object`` it does not name reads as ``[null, null]``. In
#: a row that is not sparse (written before sync_0004, or the values a link move carries over, or a
#: rollback's) a field it does not name was never synced (the judge's first-sync rules).
sync_state = sa.Table(
    "sync_state",
    metadata,
    sa.Column("prospect_id", sa.Integer(), primary_key=True),
    sa.Column("crm_object", sa.String(40)),
    sa.Column("values", sa.JSON(), nullable=False),
    sa.Column("synced_at", UTCDateTime(), nullable=False),
    sa.Column("sparse", sa.Boolean(), nullable=False, server_default=sa.false()),
    # sync_0006: the create audit row whose ``new`` members (all but ``source``) are part of these
    # values; ``values`` then holds the other members (``connector.service.state_values`` merges)
    sa.Column("base_audit_id", sa.Integer()),
)

#: sync_0007 (SQLite): the agreed values of a run of bulk-created prospects, held once for the run
#: instead of once a prospect. Prospects ``first_prospect_id``…``last_prospect_id`` (one object, one
#: chunk of the bulk copy) have create audit rows ``prospect id + audit_offset``; a prospect of the
#: range without a ``sync_state`` row of its own has as agreed values (sparse) its create audit's
#: members but its source, then ``values`` (what every prospect of the range agreed alike), and,
#: where ``source_default`` is set, its source as the audit has it: paired with an empty CRM side
#: (``[null, source]``) when it is that default (the record had none), else bare (both sides alike).
#: A prospect whose values differ from that form has a ``sync_state`` row; so has every prospect
#: the connector writes again (``connector.service.read_states`` merges).
sync_state_range = sa.Table(
    "sync_state_range",
    metadata,
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

sync_watermark = sa.Table(
    "sync_watermark",
    metadata,
    sa.Column("source", sa.String(40), primary_key=True),  # "crm:Lead", "crm:Contact", "ma:prospect"
    sa.Column("modstamp", UTCDateTime()),
    sa.Column("record_id", sa.String(40)),
)

sync_run = sa.Table(
    "sync_run",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(20), nullable=False),  # cycle, rollback, retry
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("finished_at", UTCDateTime()),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("counts", sa.JSON()),
    sa.Column("rolled_back_by", sa.Integer()),
)

sync_audit = sa.Table(
    "sync_audit",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Integer(), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("direction", sa.String(10), nullable=False),  # "crm" (written to the CRM) or "ma"
    sa.Column("action", sa.String(10), nullable=False),  # create, update, delete, link, restore
    sa.Column("object", sa.String(40), nullable=False),
    sa.Column("record_id", sa.String(40), nullable=False),
    sa.Column("prospect_id", sa.Integer()),
    sa.Column("field", sa.String(80)),
    sa.Column("old", sa.JSON()),
    sa.Column("new", sa.JSON()),
    sa.Column("rule", sa.String(40)),
    sa.Column("evidence", sa.String(40)),
    sa.Column("reason", sa.String(255)),
    sa.Index("ix_sync_audit_run", "run_id"),
    sa.Index("ix_sync_audit_prospect", "prospect_id", "field"),
)

sync_error = sa.Table(
    "sync_error",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Integer()),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column(
        "kind", sa.String(30), nullable=False
    ),  # validation, cap_reached, not_found, conflict, unavailable, collision
    sa.Column("object", sa.String(40), nullable=False),
    sa.Column("record_id", sa.String(40)),
    sa.Column("prospect_id", sa.Integer()),
    sa.Column("field", sa.String(80)),
    sa.Column("value", sa.JSON()),
    sa.Column("code", sa.String(60)),
    sa.Column("message", sa.String(1024), nullable=False),
    sa.Column("retriable", sa.Boolean(), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("next_attempt_at", UTCDateTime()),
    sa.Column("resolved_at", UTCDateTime()),
    sa.Index("ix_sync_error_open", "resolved_at", "kind"),
)

#: Records waiting their turn when a cycle has more changes than the queue threshold.
sync_queue = sa.Table(
    "sync_queue",
    metadata,
    sa.Column("source", sa.String(40), primary_key=True),
    sa.Column("record_id", sa.String(40), primary_key=True),
    sa.Column("enqueued_at", UTCDateTime(), nullable=False),
)

sync_setting_change = sa.Table(
    "sync_setting_change",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("key", sa.String(255), nullable=False),
    sa.Column("old", sa.JSON()),
    sa.Column("new", sa.JSON()),
)

#: Links made by a run: the task export finds newly linked prospects by run without a full scan.
sync_link_run_index = sa.Index("ix_sync_link_run", sync_link.c.run_id)

#: Visitor activities exported as CRM tasks (``activity_tasks``). A row is written ``pending`` before
#: the CRM create and ``done`` with the Task id after it, so a crash in between is found on the next
#: run and settled by looking the Task up by its key field instead of creating it twice.
sync_activity_task = sa.Table(
    "sync_activity_task",
    metadata,
    sa.Column("activity_id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("prospect_id", sa.Integer(), nullable=False),
    sa.Column("who_id", sa.String(18)),
    sa.Column("task_id", sa.String(18)),
    sa.Column("state", sa.String(10), nullable=False),  # pending, done, failed
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("next_attempt_at", UTCDateTime()),
    sa.Column("run_id", sa.Integer()),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Index("ix_sync_activity_task_open", "state", "prospect_id"),
)

SYNC_TABLES = (sync_link, sync_state, sync_state_range, sync_watermark, sync_run, sync_audit, sync_error, sync_queue,
               sync_setting_change, sync_activity_task)  # fmt: skip
