"""Tables of segmentation: list rules and refresh state, the change log that keeps dynamic lists
current incrementally, and saved report definitions.

``segment_change`` is written by database triggers (migration ``segments_0001``) on the link
tables that carry no timestamp of their own — ``tag_object``, ``list_membership`` and
``opportunity_prospect`` — so that every writer, whichever feature it belongs to, is seen.
Prospects, activities, opportunities and accounts are followed by their own timestamps / ids.
"""

from __future__ import annotations

import sqlalchemy as sa

from renkei.store.db import UTCDateTime
from renkei.store.tables import metadata

segment_list = sa.Table(
    "segment_list",
    metadata,
    sa.Column("listId", sa.Integer(), sa.ForeignKey("list.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),  # dynamic, static
    sa.Column("isSuppression", sa.Boolean(), nullable=False, default=False),
    sa.Column("rule", sa.JSON()),
    sa.Column("ruleText", sa.Text()),
    # "now" of the last evaluation (relative windows move with it) and the change cursors.
    sa.Column("refreshedAt", UTCDateTime()),
    sa.Column("prospectMark", UTCDateTime()),
    sa.Column("activityMark", sa.BigInteger()),
    sa.Column("opportunityMark", UTCDateTime()),
    sa.Column("accountMark", UTCDateTime()),
    sa.Column("changeMark", sa.BigInteger()),
    sa.Column("createdAt", UTCDateTime(), nullable=False),
    sa.Column("updatedAt", UTCDateTime(), nullable=False),
)

segment_change = sa.Table(
    "segment_change",
    metadata,
    sa.Column(
        "seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    ),
    sa.Column("prospectId", sa.Integer(), nullable=False),
)

report_definition = sa.Table(
    "report_definition",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    sa.Column("description", sa.Text()),
    sa.Column("definition", sa.JSON(), nullable=False),
    sa.Column("createdAt", UTCDateTime(), nullable=False),
    sa.Column("updatedAt", UTCDateTime(), nullable=False),
)

SEGMENT_TABLES: tuple[sa.Table, ...] = (segment_list, segment_change, report_definition)

#: (table, prospect id column, extra condition) — link tables whose changes are logged by triggers.
CHANGE_TRIGGERS: tuple[tuple[str, str, str | None], ...] = (
    ("tag_object", "objectId", "\"objectType\" = 'prospect'"),
    ("list_membership", "prospectId", None),
    ("opportunity_prospect", "prospectId", None),
)
