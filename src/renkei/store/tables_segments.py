"""Tables of segmentation: list rules and refresh state, the change log that keeps dynamic lists
current incrementally, and saved report definitions.

``segment_change`` is written by database triggers (migration ``segments_0001``) on the link
tables that carry no timestamp of their own — ``tag_object``, ``list_membership`` and
``opportunity_prospect`` — so that every writer, whichever feature it belongs to, is seen.
Prospects, activities, opportunities and accounts are followed by their own timestamps / ids.
"""

from __future__ import annotations

from dataclasses import replace

import sqlalchemy as sa

from renkei.crm.schema import FieldDef, FieldType, ObjectDef, table_name
from renkei.store.db import UTCDateTime
from renkei.store.tables import field_column, metadata, visitor_activity

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

#: Rule windows over activities read (type, createdAt) → prospectId from this index alone (segments_0003).
visitor_activity_segment_index = sa.Index(
    "ix_visitor_activity_segment",
    visitor_activity.c.type,
    visitor_activity.c.createdAt,
    visitor_activity.c.prospectId,
)

SEGMENT_TABLES: tuple[sa.Table, ...] = (segment_list, segment_change, report_definition)

#: (table, prospect id column, extra condition) — link tables whose changes are logged by triggers.
CHANGE_TRIGGERS: tuple[tuple[str, str, str | None], ...] = (
    ("tag_object", "objectId", "\"objectType\" = 'prospect'"),
    ("list_membership", "prospectId", None),
    ("opportunity_prospect", "prospectId", None),
)

# ---------------------------------------------------------------------------------------------
# The activity connector: visitor activities and page views as read-only CRM objects.
#
# Like the third-party activity connectors of seed 003, ``VisitorActivity`` and ``VisitorPageView``
# appear on the CRM side — in describe and SOQL — linked to the prospect's Lead / Contact / Account,
# so CRM reports can use engagement. They are SQL views (migration ``segments_0002``) over
# ``visitor_activity`` / ``visitor_page_view`` joined to ``prospect``; ``renkei.store.dynamic``
# adds them to the CRM schema from ``VIRTUAL_OBJECTS``.


def _ref(name: str, target: str) -> FieldDef:
    return FieldDef(name, FieldType.REFERENCE, length=18, reference_to=(target,), relationship_name=target)


def _virtual_fields(*extra: FieldDef) -> tuple[FieldDef, ...]:
    base = (
        FieldDef("Id", FieldType.ID, length=18, nillable=False),
        FieldDef("IsDeleted", FieldType.BOOLEAN, nillable=False),
        FieldDef("CreatedDate", FieldType.DATETIME, nillable=False),
        FieldDef("LastModifiedDate", FieldType.DATETIME, nillable=False),
        FieldDef("SystemModstamp", FieldType.DATETIME, nillable=False),
        FieldDef("ProspectId", FieldType.INT, precision=18),
        _ref("LeadId", "Lead"),
        _ref("ContactId", "Contact"),
        _ref("AccountId", "Account"),
        FieldDef("CampaignName", FieldType.STRING, length=255),
        FieldDef("VisitorId", FieldType.INT, precision=18),
    )
    return tuple(replace(f, createable=False, updateable=False) for f in base + extra)


VISITOR_ACTIVITY = ObjectDef(
    "VisitorActivity",
    "Visitor Activity",
    "Visitor Activities",
    "a0V",
    _virtual_fields(
        FieldDef("Type", FieldType.INT, precision=4),
        FieldDef("TypeName", FieldType.STRING, length=64),
        FieldDef("Details", FieldType.STRING, length=2048),
        FieldDef("EmailId", FieldType.INT, precision=18),
        FieldDef("FormId", FieldType.INT, precision=18),
        FieldDef("LandingPageId", FieldType.INT, precision=18),
        FieldDef("FileId", FieldType.INT, precision=18),
    ),
    createable=False,
    updateable=False,
    deletable=False,
)

VISITOR_PAGE_VIEW = ObjectDef(
    "VisitorPageView",
    "Visitor Page View",
    "Visitor Page Views",
    "a0P",
    _virtual_fields(
        FieldDef("Url", FieldType.URL, length=2048),
        FieldDef("Title", FieldType.STRING, length=1024),
        FieldDef("DurationInSeconds", FieldType.INT, precision=9),
        FieldDef("VisitId", FieldType.INT, precision=18),
    ),
    createable=False,
    updateable=False,
    deletable=False,
)

_view_metadata = sa.MetaData()  # not ``metadata``: Alembic must not create these as tables
VIRTUAL_OBJECTS: dict[str, tuple[ObjectDef, sa.Table]] = {
    obj.name: (obj, sa.Table(table_name(obj.name), _view_metadata, *(field_column(f) for f in obj.fields)))
    for obj in (VISITOR_ACTIVITY, VISITOR_PAGE_VIEW)
}
