"""Tables of the store. One ``MetaData`` for everything Alembic manages.

CRM objects get one table each (``crm_lead`` …) whose columns are the Salesforce API names;
custom fields become further columns, added at run time by the CRM service (``ALTER TABLE``),
recorded in ``crm_custom_field``. The marketing side uses Account Engagement API v5 names.
Feature modules that need more tables define them on this same ``metadata`` in their own
``renkei.store.tables_<feature>`` module and ship an Alembic migration.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from renkei.crm.schema import STANDARD_OBJECTS, FieldDef, FieldType, ObjectDef, table_name
from renkei.marketing.schema import PROSPECT_FIELDS
from renkei.store.db import UTCDateTime

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)


def column_type(f: FieldDef) -> sa.types.TypeEngine[Any]:
    """The SQL type that keeps a field of this Salesforce type."""
    t = f.type
    if t in (FieldType.ID, FieldType.REFERENCE):
        return sa.String(18)
    if t is FieldType.BOOLEAN:
        return sa.Boolean()
    if t is FieldType.DATE:
        return sa.Date()
    if t is FieldType.DATETIME:
        return UTCDateTime()
    if t is FieldType.INT:
        return sa.BigInteger()
    if t in (FieldType.DOUBLE, FieldType.CURRENCY, FieldType.PERCENT):
        return sa.Float()
    if t is FieldType.MULTIPICKLIST or (t is FieldType.TEXTAREA and f.length > 4000):
        return sa.Text()
    return sa.String(max(f.length, 1))


def field_column(f: FieldDef) -> sa.Column[Any]:
    if f.name == "Id":
        return sa.Column("Id", sa.String(18), primary_key=True)
    nullable = f.nillable or f.type is FieldType.BOOLEAN
    return sa.Column(f.name, column_type(f), nullable=nullable)


_CRM_INDEXES: dict[str, tuple[tuple[str, ...], ...]] = {
    "Lead": (("Email",), ("OwnerId",), ("ConvertedContactId",), ("CreatedDate",)),
    "Contact": (("Email",), ("AccountId",), ("OwnerId",)),
    "Account": (("Name",), ("OwnerId",)),
    "Opportunity": (("AccountId",), ("StageName",), ("CloseDate",)),
    "OpportunityContactRole": (("OpportunityId",), ("ContactId",)),
    "CampaignMember": (("CampaignId",), ("LeadId",), ("ContactId",)),
    "Task": (("WhoId",), ("WhatId",)),
    "User": (("Username",),),
}


def crm_table(obj: ObjectDef, md: sa.MetaData) -> sa.Table:
    """A table for a CRM object definition (standard fields and whichever custom fields it carries)."""
    name = table_name(obj.name)
    cols = [field_column(f) for f in obj.fields if f.stored]
    indexes = [sa.Index(f"ix_{name}_modstamp", "SystemModstamp", "Id")]
    for cols_ in _CRM_INDEXES.get(obj.name, ()):
        indexes.append(sa.Index(f"ix_{name}_{'_'.join(c.lower() for c in cols_)}", *cols_))
    return sa.Table(name, md, *cols, *indexes)


CRM_TABLES: dict[str, sa.Table] = {name: crm_table(obj, metadata) for name, obj in STANDARD_OBJECTS.items()}

crm_id_counter = sa.Table(
    "crm_id_counter",
    metadata,
    sa.Column("key_prefix", sa.String(3), primary_key=True),
    sa.Column("next_value", sa.BigInteger(), nullable=False),
)

crm_custom_field = sa.Table(
    "crm_custom_field",
    metadata,
    sa.Column("object_name", sa.String(80), primary_key=True),
    sa.Column("api_name", sa.String(80), primary_key=True),
    sa.Column("definition", sa.JSON(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("created_by", sa.String(255), nullable=True),
)

# ---------------------------------------------------------------------------------------------
# Marketing (Account Engagement API v5 names)


def _prospect_columns() -> list[sa.Column[Any]]:
    cols: list[sa.Column[Any]] = [sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True)]
    for f in PROSPECT_FIELDS.values():
        if f.name == "id":
            continue
        cols.append(sa.Column(f.name, column_type(f), nullable=True))
    # Identity key for matching: the email trimmed, NFKC-normalised and case-folded.
    cols.append(sa.Column("emailKey", sa.String(255), nullable=True))
    return cols


prospect = sa.Table(
    "prospect",
    metadata,
    *_prospect_columns(),
    sa.Index("ix_prospect_emailkey", "emailKey"),
    sa.Index("ix_prospect_updatedat", "updatedAt", "id"),
    sa.Index("ix_prospect_salesforceid", "salesforceId"),
    sa.Index("ix_prospect_isdeleted", "isDeleted"),
    sa.Index("ix_prospect_assignedtoid", "assignedToId"),
)

prospect_custom_field = sa.Table(
    "prospect_custom_field",
    metadata,
    sa.Column("api_name", sa.String(80), primary_key=True),
    sa.Column("definition", sa.JSON(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("created_by", sa.String(255), nullable=True),
)

prospect_account = sa.Table(
    "prospect_account",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(255)),
    sa.Column("salesforceId", sa.String(18), unique=True),
    sa.Column("billingAddressOne", sa.String(255)),
    sa.Column("billingCity", sa.String(40)),
    sa.Column("billingState", sa.String(80)),
    sa.Column("billingZip", sa.String(20)),
    sa.Column("billingCountry", sa.String(80)),
    sa.Column("shippingAddressOne", sa.String(255)),
    sa.Column("shippingCity", sa.String(40)),
    sa.Column("shippingState", sa.String(80)),
    sa.Column("shippingZip", sa.String(20)),
    sa.Column("shippingCountry", sa.String(80)),
    sa.Column("phone", sa.String(40)),
    sa.Column("website", sa.String(255)),
    sa.Column("industry", sa.String(255)),
    sa.Column("type", sa.String(255)),
    sa.Column("rating", sa.String(255)),
    sa.Column("sic", sa.String(20)),
    sa.Column("annualRevenue", sa.Float()),
    sa.Column("employees", sa.BigInteger()),
    sa.Column("assignedToId", sa.Integer()),
    sa.Column("customFields", sa.JSON()),
    sa.Column("isDeleted", sa.Boolean(), nullable=False, default=False),
    sa.Column("createdAt", UTCDateTime(), nullable=False),
    sa.Column("updatedAt", UTCDateTime(), nullable=False),
)

#: Read-only copy of CRM opportunities, for segmentation (AE cannot create or edit them).
opportunity = sa.Table(
    "opportunity",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("salesforceId", sa.String(18), unique=True),
    sa.Column("salesforceAccountId", sa.String(18)),
    sa.Column("prospectAccountId", sa.Integer()),
    sa.Column("name", sa.String(120)),
    sa.Column("stageName", sa.String(255)),
    sa.Column("isWon", sa.Boolean(), nullable=False, default=False),
    sa.Column("isClosed", sa.Boolean(), nullable=False, default=False),
    sa.Column("amount", sa.Float()),
    sa.Column("probability", sa.Float()),
    sa.Column("closeDate", sa.Date()),
    sa.Column("type", sa.String(255)),
    sa.Column("leadSource", sa.String(255)),
    sa.Column("campaignId", sa.Integer()),
    # Custom opportunity fields (Quote_Submitted_Date__c …) keyed by their CRM API names.
    sa.Column("customFields", sa.JSON()),
    sa.Column("isDeleted", sa.Boolean(), nullable=False, default=False),
    sa.Column("createdAt", UTCDateTime(), nullable=False),
    sa.Column("updatedAt", UTCDateTime(), nullable=False),
    sa.Index("ix_opportunity_stagename", "stageName"),
)

opportunity_prospect = sa.Table(
    "opportunity_prospect",
    metadata,
    sa.Column(
        "opportunityId", sa.Integer(), sa.ForeignKey("opportunity.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("prospectId", sa.Integer(), sa.ForeignKey("prospect.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("role", sa.String(255)),
    sa.Column("isPrimary", sa.Boolean(), nullable=False, default=False),
    sa.Index("ix_opportunity_prospect_prospect", "prospectId"),
)

ma_user = sa.Table(
    "ma_user",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("email", sa.String(255), nullable=False, unique=True),
    sa.Column("firstName", sa.String(40)),
    sa.Column("lastName", sa.String(80)),
    sa.Column("jobTitle", sa.String(128)),
    sa.Column("role", sa.String(40), nullable=False, default="marketing"),
    sa.Column("salesforceId", sa.String(18)),
    sa.Column("isActive", sa.Boolean(), nullable=False, default=True),
    sa.Column("timezone", sa.String(64), nullable=False, default="Asia/Tokyo"),
    sa.Column("language", sa.String(8), nullable=False, default="ja"),
    sa.Column("createdAt", UTCDateTime(), nullable=False),
    sa.Column("updatedAt", UTCDateTime(), nullable=False),
    # the connector finds a CRM owner's user by it, once per record in the initial sync's bulk copy
    sa.Index("ix_ma_user_salesforceid", "salesforceId"),
)

campaign = sa.Table(
    "campaign",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("cost", sa.Float()),
    sa.Column("folderId", sa.Integer()),
    sa.Column("parentCampaignId", sa.Integer()),
    sa.Column("salesforceId", sa.String(18)),
    sa.Column("isActive", sa.Boolean(), nullable=False, default=True),
    sa.Column("startDate", sa.Date()),
    sa.Column("endDate", sa.Date()),
    sa.Column("createdAt", UTCDateTime(), nullable=False),
    sa.Column("updatedAt", UTCDateTime(), nullable=False),
)

list_ = sa.Table(
    "list",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("title", sa.String(255)),
    sa.Column("description", sa.Text()),
    sa.Column("isPublic", sa.Boolean(), nullable=False, default=False),
    sa.Column("isDynamic", sa.Boolean(), nullable=False, default=False),
    sa.Column("isCrmVisible", sa.Boolean(), nullable=False, default=False),
    sa.Column("folderId", sa.Integer()),
    sa.Column("campaignId", sa.Integer()),
    sa.Column("createdAt", UTCDateTime(), nullable=False),
    sa.Column("updatedAt", UTCDateTime(), nullable=False),
)

list_membership = sa.Table(
    "list_membership",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("listId", sa.Integer(), sa.ForeignKey("list.id", ondelete="CASCADE"), nullable=False),
    sa.Column("prospectId", sa.Integer(), sa.ForeignKey("prospect.id", ondelete="CASCADE"), nullable=False),
    sa.Column("optedOut", sa.Boolean(), nullable=False, default=False),
    sa.Column("createdAt", UTCDateTime(), nullable=False),
    sa.Column("updatedAt", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("listId", "prospectId"),
    sa.Index("ix_list_membership_prospect", "prospectId"),
)

tag = sa.Table(
    "tag",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    sa.Column("createdAt", UTCDateTime(), nullable=False),
)

tag_object = sa.Table(
    "tag_object",
    metadata,
    sa.Column("tagId", sa.Integer(), sa.ForeignKey("tag.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("objectType", sa.String(40), primary_key=True),
    sa.Column("objectId", sa.Integer(), primary_key=True),
    sa.Index("ix_tag_object_object", "objectType", "objectId"),
)

visitor = sa.Table(
    "visitor",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("prospectId", sa.Integer(), sa.ForeignKey("prospect.id", ondelete="SET NULL")),
    sa.Column("pageViewCount", sa.Integer(), nullable=False, default=0),
    sa.Column("isIdentified", sa.Boolean(), nullable=False, default=False),
    sa.Column("doNotSell", sa.Boolean(), nullable=False, default=False),
    sa.Column("ipAddress", sa.String(45)),
    sa.Column("hostname", sa.String(255)),
    sa.Column("identifiedCompany", sa.String(255)),
    sa.Column("campaignId", sa.Integer()),
    sa.Column("sourceParameter", sa.String(255)),
    sa.Column("campaignParameter", sa.String(255)),
    sa.Column("mediumParameter", sa.String(255)),
    sa.Column("contentParameter", sa.String(255)),
    sa.Column("termParameter", sa.String(255)),
    sa.Column("firstReferrerUrl", sa.String(2048)),
    sa.Column("createdAt", UTCDateTime(), nullable=False),
    sa.Column("updatedAt", UTCDateTime(), nullable=False),
    sa.Index("ix_visitor_prospect", "prospectId"),
)

visit = sa.Table(
    "visit",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("visitorId", sa.Integer(), sa.ForeignKey("visitor.id", ondelete="CASCADE"), nullable=False),
    sa.Column("prospectId", sa.Integer()),
    sa.Column("visitorPageViewCount", sa.Integer(), nullable=False, default=0),
    sa.Column("firstVisitorPageViewAt", UTCDateTime()),
    sa.Column("lastVisitorPageViewAt", UTCDateTime()),
    sa.Column("durationInSeconds", sa.Integer(), nullable=False, default=0),
    sa.Column("campaignId", sa.Integer()),
    sa.Column("sourceParameter", sa.String(255)),
    sa.Column("campaignParameter", sa.String(255)),
    sa.Column("mediumParameter", sa.String(255)),
    sa.Column("contentParameter", sa.String(255)),
    sa.Column("termParameter", sa.String(255)),
    sa.Column("referrerUrl", sa.String(2048)),
    sa.Column("createdAt", UTCDateTime(), nullable=False),
    sa.Column("updatedAt", UTCDateTime(), nullable=False),
    sa.Index("ix_visit_visitor", "visitorId", "lastVisitorPageViewAt"),
    sa.Index("ix_visit_prospect", "prospectId"),
)

visitor_page_view = sa.Table(
    "visitor_page_view",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("visitorId", sa.Integer(), sa.ForeignKey("visitor.id", ondelete="CASCADE"), nullable=False),
    sa.Column("visitId", sa.Integer(), sa.ForeignKey("visit.id", ondelete="CASCADE")),
    sa.Column("prospectId", sa.Integer()),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("title", sa.String(1024)),
    sa.Column("referrerUrl", sa.String(2048)),
    sa.Column("campaignId", sa.Integer()),
    sa.Column("durationInSeconds", sa.Integer(), nullable=False, default=0),
    sa.Column("createdAt", UTCDateTime(), nullable=False),
    sa.Index("ix_visitor_page_view_prospect", "prospectId", "createdAt"),
    sa.Index("ix_visitor_page_view_visitor", "visitorId", "createdAt"),
)

#: AE visitor activities; ``type`` is AE's numeric code (see ``renkei.marketing.activities``).
visitor_activity = sa.Table(
    "visitor_activity",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("type", sa.Integer(), nullable=False),
    sa.Column("typeName", sa.String(64)),
    sa.Column("details", sa.String(2048)),
    sa.Column("prospectId", sa.Integer()),
    sa.Column("visitorId", sa.Integer()),
    sa.Column("visitId", sa.Integer()),
    sa.Column("campaignId", sa.Integer()),
    sa.Column("emailId", sa.Integer()),
    sa.Column("emailTemplateId", sa.Integer()),
    sa.Column("listEmailId", sa.Integer()),
    sa.Column("formId", sa.Integer()),
    sa.Column("formHandlerId", sa.Integer()),
    sa.Column("landingPageId", sa.Integer()),
    sa.Column("fileId", sa.Integer()),
    sa.Column("customRedirectId", sa.Integer()),
    sa.Column("visitorPageViewId", sa.Integer()),
    sa.Column("opportunityId", sa.String(18)),
    sa.Column("createdAt", UTCDateTime(), nullable=False),
    sa.Column("updatedAt", UTCDateTime(), nullable=False),
    sa.Index("ix_visitor_activity_prospect", "prospectId", "createdAt"),
    sa.Index("ix_visitor_activity_type", "type", "createdAt"),
    sa.Index("ix_visitor_activity_visitor", "visitorId"),
)

#: Account-level marketing settings (key → JSON value), e.g. ``allow_duplicate_emails``.
setting = sa.Table(
    "setting",
    metadata,
    sa.Column("key", sa.String(120), primary_key=True),
    sa.Column("value", sa.JSON()),
    sa.Column("updatedAt", UTCDateTime(), nullable=False),
    sa.Column("updatedBy", sa.String(255)),
)
