"""The built-in CRM's metadata: Salesforce objects and fields with their API names, types and rules.

Pure data (no storage). The store builds tables from these definitions; describe and validation read
them; custom fields are added at run time as further ``FieldDef``s with ``custom=True``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from renkei.ids import KEY_PREFIXES


class FieldType(enum.StrEnum):
    ID = "id"
    STRING = "string"
    TEXTAREA = "textarea"
    EMAIL = "email"
    PHONE = "phone"
    URL = "url"
    PICKLIST = "picklist"
    MULTIPICKLIST = "multipicklist"
    COMBOBOX = "combobox"
    REFERENCE = "reference"
    BOOLEAN = "boolean"
    DATE = "date"
    DATETIME = "datetime"
    INT = "int"
    DOUBLE = "double"
    CURRENCY = "currency"
    PERCENT = "percent"


TEXT_TYPES = frozenset(
    {
        FieldType.ID,
        FieldType.STRING,
        FieldType.TEXTAREA,
        FieldType.EMAIL,
        FieldType.PHONE,
        FieldType.URL,
        FieldType.PICKLIST,
        FieldType.MULTIPICKLIST,
        FieldType.COMBOBOX,
        FieldType.REFERENCE,
    }
)
NUMBER_TYPES = frozenset({FieldType.INT, FieldType.DOUBLE, FieldType.CURRENCY, FieldType.PERCENT})

#: The types a user may give a custom field (``crm field add --type``), with Salesforce's UI names.
CUSTOM_FIELD_TYPES: dict[str, FieldType] = {
    "text": FieldType.STRING,
    "textarea": FieldType.TEXTAREA,
    "longtextarea": FieldType.TEXTAREA,
    "email": FieldType.EMAIL,
    "phone": FieldType.PHONE,
    "url": FieldType.URL,
    "number": FieldType.DOUBLE,
    "currency": FieldType.CURRENCY,
    "percent": FieldType.PERCENT,
    "checkbox": FieldType.BOOLEAN,
    "date": FieldType.DATE,
    "datetime": FieldType.DATETIME,
    "picklist": FieldType.PICKLIST,
    "multipicklist": FieldType.MULTIPICKLIST,
}

_SOAP_TYPES: dict[FieldType, str] = {
    FieldType.ID: "tns:ID",
    FieldType.REFERENCE: "tns:ID",
    FieldType.BOOLEAN: "xsd:boolean",
    FieldType.DATE: "xsd:date",
    FieldType.DATETIME: "xsd:dateTime",
    FieldType.INT: "xsd:int",
    FieldType.DOUBLE: "xsd:double",
    FieldType.CURRENCY: "xsd:double",
    FieldType.PERCENT: "xsd:double",
}

#: A custom field API name, optionally with a managed package namespace (``pi__score__c``).
CUSTOM_NAME = re.compile(r"^([A-Za-z][A-Za-z0-9]*__)?[A-Za-z][A-Za-z0-9]*(_[A-Za-z0-9]+)*__c$")


@dataclass(frozen=True, slots=True)
class PicklistValue:
    value: str
    label: str | None = None
    active: bool = True
    default: bool = False

    def to_describe(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "label": self.label or self.value,
            "active": self.active,
            "defaultValue": self.default,
            "validFor": None,
        }


@dataclass(frozen=True, slots=True)
class FieldDef:
    name: str
    type: FieldType
    label: str = ""
    length: int = 0
    precision: int = 0
    scale: int = 0
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    defaulted_on_create: bool = False
    default_value: Any = None
    custom: bool = False
    unique: bool = False
    external_id: bool = False
    calculated: bool = False
    picklist_values: tuple[PicklistValue, ...] = ()
    restricted_picklist: bool = False
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    #: Stored in the table (False for values derived on read, none so far).
    stored: bool = True

    @property
    def required_on_create(self) -> bool:
        return self.createable and not self.nillable and not self.defaulted_on_create

    @property
    def is_text(self) -> bool:
        return self.type in TEXT_TYPES

    @property
    def is_number(self) -> bool:
        return self.type in NUMBER_TYPES

    def picklist_default(self) -> str | None:
        for v in self.picklist_values:
            if v.default:
                return v.value
        return None

    @classmethod
    def from_describe(cls, d: Mapping[str, Any]) -> FieldDef:
        """A field of a Salesforce describe (``renkei serve``'s or a real org's). Types this model
        does not have (address, location, base64, time, encryptedstring, anyType …) read as text."""
        try:
            kind = FieldType(str(d.get("type")))
        except ValueError:
            kind = FieldType.STRING
        return cls(
            name=str(d["name"]),
            type=kind,
            label=str(d.get("label") or ""),
            length=int(d.get("length") or 0),
            precision=int(d.get("precision") or 0),
            scale=int(d.get("scale") or 0),
            nillable=bool(d.get("nillable", True)),
            createable=bool(d.get("createable", True)),
            updateable=bool(d.get("updateable", True)),
            defaulted_on_create=bool(d.get("defaultedOnCreate", False)),
            default_value=d.get("defaultValue"),
            custom=bool(d.get("custom", False)),
            unique=bool(d.get("unique", False)),
            external_id=bool(d.get("externalId", False)),
            calculated=bool(d.get("calculated", False)),
            picklist_values=tuple(
                PicklistValue(
                    str(v["value"]),
                    v.get("label"),
                    bool(v.get("active", True)),
                    bool(v.get("defaultValue", False)),
                )
                for v in d.get("picklistValues") or ()
            ),  # fmt: skip
            restricted_picklist=bool(d.get("restrictedPicklist", False)),
            reference_to=tuple(d.get("referenceTo") or ()),
            relationship_name=d.get("relationshipName"),
        )

    def to_describe(self) -> dict[str, Any]:
        length = self.length if self.is_text else 0
        return {
            "name": self.name,
            "label": self.label or _label_from_name(self.name),
            "type": self.type.value,
            "length": length,
            "byteLength": length * 3,
            "precision": self.precision,
            "scale": self.scale,
            "digits": self.precision if self.type is FieldType.INT else 0,
            "nillable": self.nillable,
            "createable": self.createable,
            "updateable": self.updateable,
            "defaultedOnCreate": self.defaulted_on_create,
            "defaultValue": self.default_value,
            "unique": self.unique,
            "externalId": self.external_id,
            "idLookup": self.type is FieldType.ID or self.external_id or self.name in ("Email", "Username"),
            "calculated": self.calculated,
            "custom": self.custom,
            "picklistValues": [v.to_describe() for v in self.picklist_values],
            "restrictedPicklist": self.restricted_picklist,
            "dependentPicklist": False,
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name,
            "soapType": _SOAP_TYPES.get(self.type, "xsd:string"),
            "filterable": self.type is not FieldType.TEXTAREA or self.length <= 255,
            "sortable": self.type not in (FieldType.TEXTAREA, FieldType.MULTIPICKLIST) or self.length <= 255,
            "groupable": self.type not in NUMBER_TYPES
            and self.type not in (FieldType.TEXTAREA, FieldType.DATETIME),
        }


@dataclass(frozen=True, slots=True)
class ChildRelationship:
    child_object: str
    field: str
    relationship_name: str
    cascade_delete: bool = False


@dataclass(frozen=True, slots=True)
class ObjectDef:
    name: str
    label: str
    label_plural: str
    key_prefix: str
    fields: tuple[FieldDef, ...]
    custom: bool = False
    createable: bool = True
    updateable: bool = True
    deletable: bool = True
    mergeable: bool = False
    child_relationships: tuple[ChildRelationship, ...] = ()
    _by_lower: Mapping[str, FieldDef] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_lower", {f.name.lower(): f for f in self.fields})

    def field(self, name: str) -> FieldDef | None:
        """Case-insensitive field lookup, as Salesforce does."""
        return self._by_lower.get(name.lower())

    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    def relationship(self, name: str) -> FieldDef | None:
        """The reference field behind a relationship name (``Account`` → ``AccountId``)."""
        low = name.lower()
        for f in self.fields:
            if f.relationship_name and f.relationship_name.lower() == low:
                return f
        return None

    def with_fields(self, extra: Iterable[FieldDef]) -> ObjectDef:
        merged = list(self.fields)
        names = {f.name.lower() for f in merged}
        for f in extra:
            if f.name.lower() in names:
                raise ValueError(f"duplicate field {self.name}.{f.name}")
            merged.append(f)
            names.add(f.name.lower())
        return replace(self, fields=tuple(merged))

    @property
    def custom_fields(self) -> tuple[FieldDef, ...]:
        return tuple(f for f in self.fields if f.custom)

    def to_describe(self, base_url: str = "/services/data/v60.0") -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "labelPlural": self.label_plural,
            "keyPrefix": self.key_prefix,
            "custom": self.custom,
            "createable": self.createable,
            "updateable": self.updateable,
            "deletable": self.deletable,
            "undeletable": self.deletable,
            "mergeable": self.mergeable,
            "queryable": True,
            "retrieveable": True,
            "searchable": True,
            "fields": [f.to_describe() for f in self.fields],
            "childRelationships": [
                {
                    "childSObject": c.child_object,
                    "field": c.field,
                    "relationshipName": c.relationship_name,
                    "cascadeDelete": c.cascade_delete,
                }
                for c in self.child_relationships
            ],
            "recordTypeInfos": [],
            "urls": {
                "sobject": f"{base_url}/sobjects/{self.name}",
                "describe": f"{base_url}/sobjects/{self.name}/describe",
                "rowTemplate": f"{base_url}/sobjects/{self.name}/{{ID}}",
            },
        }


def _label_from_name(name: str) -> str:
    base = name[:-3] if name.endswith("__c") else name
    base = base.replace("_", " ")
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", base).strip()


# ---------------------------------------------------------------------------------------------
# Field constructors (short names keep the standard object tables below readable)


def _pick(*values: str, default: str | None = None) -> tuple[PicklistValue, ...]:
    return tuple(PicklistValue(v, default=(v == default)) for v in values)


def s(name: str, length: int, **kw: Any) -> FieldDef:
    return FieldDef(name, FieldType.STRING, length=length, **kw)


def ta(name: str, length: int = 255, **kw: Any) -> FieldDef:
    return FieldDef(name, FieldType.TEXTAREA, length=length, **kw)


def em(name: str = "Email", **kw: Any) -> FieldDef:
    return FieldDef(name, FieldType.EMAIL, length=80, **kw)


def ph(name: str, **kw: Any) -> FieldDef:
    return FieldDef(name, FieldType.PHONE, length=40, **kw)


def url(name: str, **kw: Any) -> FieldDef:
    return FieldDef(name, FieldType.URL, length=255, **kw)


def pk(name: str, values: tuple[PicklistValue, ...], **kw: Any) -> FieldDef:
    return FieldDef(name, FieldType.PICKLIST, length=255, picklist_values=values, **kw)


def b(name: str, **kw: Any) -> FieldDef:
    kw.setdefault("default_value", False)
    return FieldDef(name, FieldType.BOOLEAN, nillable=False, defaulted_on_create=True, **kw)


def d(name: str, **kw: Any) -> FieldDef:
    return FieldDef(name, FieldType.DATE, **kw)


def dtm(name: str, **kw: Any) -> FieldDef:
    return FieldDef(name, FieldType.DATETIME, **kw)


def cur(name: str, precision: int = 18, scale: int = 2, **kw: Any) -> FieldDef:
    return FieldDef(name, FieldType.CURRENCY, precision=precision, scale=scale, **kw)


def integer(name: str, precision: int = 9, **kw: Any) -> FieldDef:
    return FieldDef(name, FieldType.INT, precision=precision, **kw)


def pct(name: str, precision: int = 3, scale: int = 0, **kw: Any) -> FieldDef:
    return FieldDef(name, FieldType.PERCENT, precision=precision, scale=scale, **kw)


def ref(name: str, *to: str, relationship: str | None = None, **kw: Any) -> FieldDef:
    rel = relationship if relationship is not None else (name[:-2] if name.endswith("Id") else None)
    return FieldDef(name, FieldType.REFERENCE, length=18, reference_to=tuple(to), relationship_name=rel, **kw)


READ_ONLY: dict[str, Any] = {"createable": False, "updateable": False}


def system_fields(owner: bool = True) -> tuple[FieldDef, ...]:
    fields = [
        FieldDef("Id", FieldType.ID, length=18, nillable=False, defaulted_on_create=True, **READ_ONLY),
        b("IsDeleted", **READ_ONLY),
        dtm("CreatedDate", nillable=False, defaulted_on_create=True, **READ_ONLY),
        ref(
            "CreatedById",
            "User",
            relationship="CreatedBy",
            nillable=False,
            defaulted_on_create=True,
            **READ_ONLY,
        ),
        dtm("LastModifiedDate", nillable=False, defaulted_on_create=True, **READ_ONLY),
        ref(
            "LastModifiedById",
            "User",
            relationship="LastModifiedBy",
            nillable=False,
            defaulted_on_create=True,
            **READ_ONLY,
        ),
        dtm("SystemModstamp", nillable=False, defaulted_on_create=True, **READ_ONLY),
    ]
    if owner:
        fields.append(ref("OwnerId", "User", relationship="Owner", nillable=False, defaulted_on_create=True))
    return tuple(fields)


INDUSTRIES = _pick(
    "Agriculture", "Apparel", "Banking", "Biotechnology", "Chemicals", "Communications", "Construction",
    "Consulting", "Education", "Electronics", "Energy", "Engineering", "Entertainment", "Environmental",
    "Finance", "Food & Beverage", "Government", "Healthcare", "Hospitality", "Insurance", "Machinery",
    "Manufacturing", "Media", "Not For Profit", "Recreation", "Retail", "Shipping", "Technology",
    "Telecommunications", "Transportation", "Utilities", "Other",
)  # fmt: skip
LEAD_SOURCES = _pick(
    "Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Trade Show", "Business Card", "Other"
)
SALUTATIONS = _pick("Mr.", "Ms.", "Mrs.", "Dr.", "Prof.")
LEAD_STATUSES = _pick(
    "Open - Not Contacted", "Working - Contacted", "Closed - Converted", "Closed - Not Converted",
    default="Open - Not Contacted",
)  # fmt: skip
#: Lead statuses whose ``IsConverted`` is true (Salesforce's LeadStatus.IsConverted).
CONVERTED_LEAD_STATUSES = ("Closed - Converted",)
RATINGS = _pick("Hot", "Warm", "Cold")


@dataclass(frozen=True, slots=True)
class Stage:
    name: str
    probability: int
    is_closed: bool
    is_won: bool
    forecast_category: str


OPPORTUNITY_STAGES: tuple[Stage, ...] = (
    Stage("Prospecting", 10, False, False, "Pipeline"),
    Stage("Qualification", 10, False, False, "Pipeline"),
    Stage("Needs Analysis", 20, False, False, "Pipeline"),
    Stage("Value Proposition", 50, False, False, "Pipeline"),
    Stage("Id. Decision Makers", 60, False, False, "Pipeline"),
    Stage("Perception Analysis", 70, False, False, "Pipeline"),
    Stage("Proposal/Price Quote", 75, False, False, "Pipeline"),
    Stage("Negotiation/Review", 90, False, False, "Commit"),
    Stage("Closed Won", 100, True, True, "Closed"),
    Stage("Closed Lost", 0, True, False, "Omitted"),
)
STAGE_BY_NAME = {st.name.lower(): st for st in OPPORTUNITY_STAGES}


def _address(prefix: str) -> tuple[FieldDef, ...]:
    return (
        ta(f"{prefix}Street", 255),
        s(f"{prefix}City", 40),
        s(f"{prefix}State", 80),
        s(f"{prefix}PostalCode", 20),
        s(f"{prefix}Country", 80),
    )


_PERSON_NAME = (
    pk("Salutation", SALUTATIONS),
    s("FirstName", 40),
    s("LastName", 80, nillable=False),
    s("Name", 121, calculated=True, **READ_ONLY),
)

LEAD = ObjectDef(
    "Lead", "Lead", "Leads", KEY_PREFIXES["Lead"], mergeable=True,
    fields=system_fields() + (
        ref("MasterRecordId", "Lead", relationship="MasterRecord", **READ_ONLY),
        *_PERSON_NAME,
        s("Title", 128),
        s("Company", 255, nillable=False),
        *_address(""),
        ph("Phone"), ph("MobilePhone"), ph("Fax"),
        em(),
        url("Website"),
        ta("Description", 32000),
        pk("LeadSource", LEAD_SOURCES),
        pk("Status", LEAD_STATUSES, nillable=False, defaulted_on_create=True, default_value="Open - Not Contacted"),
        pk("Industry", INDUSTRIES),
        pk("Rating", RATINGS),
        cur("AnnualRevenue", 18, 0),
        integer("NumberOfEmployees", 8),
        b("HasOptedOutOfEmail"),
        b("DoNotCall"),
        b("IsConverted", **READ_ONLY),
        d("ConvertedDate", **READ_ONLY),
        ref("ConvertedAccountId", "Account", **READ_ONLY),
        ref("ConvertedContactId", "Contact", **READ_ONLY),
        ref("ConvertedOpportunityId", "Opportunity", **READ_ONLY),
        b("IsUnreadByOwner"),
        d("LastActivityDate", **READ_ONLY),
    ),
    child_relationships=(
        ChildRelationship("CampaignMember", "LeadId", "CampaignMembers", True),
        ChildRelationship("Task", "WhoId", "Tasks", True),
    ),
)  # fmt: skip

CONTACT = ObjectDef(
    "Contact", "Contact", "Contacts", KEY_PREFIXES["Contact"], mergeable=True,
    fields=system_fields() + (
        ref("MasterRecordId", "Contact", relationship="MasterRecord", **READ_ONLY),
        ref("AccountId", "Account"),
        *_PERSON_NAME,
        *_address("Mailing"),
        ph("Phone"), ph("Fax"), ph("MobilePhone"),
        em(),
        s("Title", 128),
        s("Department", 80),
        pk("LeadSource", LEAD_SOURCES),
        d("Birthdate"),
        ta("Description", 32000),
        b("HasOptedOutOfEmail"),
        b("DoNotCall"),
        d("LastActivityDate", **READ_ONLY),
    ),
    child_relationships=(
        ChildRelationship("OpportunityContactRole", "ContactId", "OpportunityContactRoles", True),
        ChildRelationship("CampaignMember", "ContactId", "CampaignMembers", True),
        ChildRelationship("Task", "WhoId", "Tasks", True),
    ),
)  # fmt: skip

ACCOUNT = ObjectDef(
    "Account", "Account", "Accounts", KEY_PREFIXES["Account"], mergeable=True,
    fields=system_fields() + (
        ref("MasterRecordId", "Account", relationship="MasterRecord", **READ_ONLY),
        s("Name", 255, nillable=False),
        pk("Type", _pick("Prospect", "Customer - Direct", "Customer - Channel", "Channel Partner / Reseller",
                         "Installation Partner", "Technology Partner", "Other")),
        ref("ParentId", "Account", relationship="Parent"),
        *_address("Billing"),
        *_address("Shipping"),
        ph("Phone"), ph("Fax"),
        url("Website"),
        pk("Industry", INDUSTRIES),
        cur("AnnualRevenue", 18, 0),
        integer("NumberOfEmployees", 8),
        pk("Rating", RATINGS),
        pk("AccountSource", LEAD_SOURCES),
        s("Sic", 20),
        ta("Description", 32000),
        d("LastActivityDate", **READ_ONLY),
    ),
    child_relationships=(
        ChildRelationship("Contact", "AccountId", "Contacts"),
        ChildRelationship("Opportunity", "AccountId", "Opportunities", True),
        ChildRelationship("Account", "ParentId", "ChildAccounts"),
        ChildRelationship("Task", "WhatId", "Tasks", True),
    ),
)  # fmt: skip

OPPORTUNITY = ObjectDef(
    "Opportunity", "Opportunity", "Opportunities", KEY_PREFIXES["Opportunity"],
    fields=system_fields() + (
        ref("AccountId", "Account"),
        s("Name", 120, nillable=False),
        ta("Description", 32000),
        pk("StageName", tuple(PicklistValue(st.name) for st in OPPORTUNITY_STAGES), nillable=False),
        cur("Amount", 18, 2),
        pct("Probability", 3, 0),
        d("CloseDate", nillable=False),
        pk("Type", _pick("Existing Customer - Upgrade", "Existing Customer - Replacement",
                         "Existing Customer - Downgrade", "New Customer")),
        s("NextStep", 255),
        pk("LeadSource", LEAD_SOURCES),
        b("IsClosed", **READ_ONLY),
        b("IsWon", **READ_ONLY),
        pk("ForecastCategoryName", _pick("Omitted", "Pipeline", "Best Case", "Commit", "Closed")),
        ref("CampaignId", "Campaign"),
        ref("ContactId", "Contact"),
        integer("FiscalYear", 4, **READ_ONLY),
        integer("FiscalQuarter", 1, **READ_ONLY),
        d("LastActivityDate", **READ_ONLY),
    ),
    child_relationships=(
        ChildRelationship("OpportunityContactRole", "OpportunityId", "OpportunityContactRoles", True),
        ChildRelationship("Task", "WhatId", "Tasks", True),
    ),
)  # fmt: skip

OPPORTUNITY_CONTACT_ROLE = ObjectDef(
    "OpportunityContactRole", "Opportunity Contact Role", "Opportunity Contact Role",
    KEY_PREFIXES["OpportunityContactRole"],
    fields=system_fields(owner=False) + (
        ref("OpportunityId", "Opportunity", nillable=False),
        ref("ContactId", "Contact", nillable=False),
        pk("Role", _pick("Business User", "Decision Maker", "Economic Buyer", "Economic Decision Maker",
                         "Evaluator", "Executive Sponsor", "Influencer", "Technical Buyer", "Other")),
        b("IsPrimary"),
    ),
)  # fmt: skip

CAMPAIGN = ObjectDef(
    "Campaign", "Campaign", "Campaigns", KEY_PREFIXES["Campaign"],
    fields=system_fields() + (
        s("Name", 80, nillable=False),
        ref("ParentId", "Campaign", relationship="Parent"),
        pk("Type", _pick("Conference", "Webinar", "Trade Show", "Public Relations", "Partners", "Referral Program",
                         "Advertisement", "Banner Ads", "Direct Mail", "Email", "Telemarketing", "Other")),
        pk("Status", _pick("Planned", "In Progress", "Completed", "Aborted")),
        d("StartDate"),
        d("EndDate"),
        cur("ExpectedRevenue", 18, 0),
        cur("BudgetedCost", 18, 0),
        cur("ActualCost", 18, 0),
        pct("ExpectedResponse", 10, 2),
        b("IsActive"),
        ta("Description", 32000),
        integer("NumberOfLeads", **READ_ONLY),
        integer("NumberOfConvertedLeads", **READ_ONLY),
        integer("NumberOfContacts", **READ_ONLY),
        integer("NumberOfResponses", **READ_ONLY),
        integer("NumberOfOpportunities", **READ_ONLY),
        integer("NumberOfWonOpportunities", **READ_ONLY),
        cur("AmountAllOpportunities", **READ_ONLY),
        cur("AmountWonOpportunities", **READ_ONLY),
    ),
    child_relationships=(ChildRelationship("CampaignMember", "CampaignId", "CampaignMembers", True),),
)  # fmt: skip

CAMPAIGN_MEMBER = ObjectDef(
    "CampaignMember", "Campaign Member", "Campaign Members", KEY_PREFIXES["CampaignMember"],
    fields=system_fields(owner=False) + (
        ref("CampaignId", "Campaign", nillable=False, updateable=False),
        ref("LeadId", "Lead", updateable=False),
        ref("ContactId", "Contact", updateable=False),
        pk("Status", _pick("Planned", "Received", "Sent", "Responded", default="Sent"),
           defaulted_on_create=True, default_value="Sent"),
        b("HasResponded", **READ_ONLY),
        d("FirstRespondedDate", **READ_ONLY),
        s("FirstName", 40, **READ_ONLY),
        s("LastName", 80, **READ_ONLY),
        FieldDef("Email", FieldType.EMAIL, length=80, **READ_ONLY),
        s("CompanyOrAccount", 255, **READ_ONLY),
        ref("LeadOrContactId", "Lead", "Contact", relationship="", **READ_ONLY),
        ref("LeadOrContactOwnerId", "User", relationship="", **READ_ONLY),
    ),
)  # fmt: skip

TASK = ObjectDef(
    "Task", "Task", "Tasks", KEY_PREFIXES["Task"],
    fields=system_fields() + (
        ref("WhoId", "Lead", "Contact", relationship="Who"),
        ref("WhatId", "Account", "Opportunity", "Campaign", relationship="What"),
        FieldDef("Subject", FieldType.COMBOBOX, length=255,
                 picklist_values=_pick("Call", "Send Letter", "Send Quote", "Email", "Other")),
        d("ActivityDate"),
        pk("Status", _pick("Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred",
                           default="Not Started"),
           nillable=False, defaulted_on_create=True, default_value="Not Started"),
        pk("Priority", _pick("High", "Normal", "Low", default="Normal"),
           nillable=False, defaulted_on_create=True, default_value="Normal"),
        pk("Type", _pick("Call", "Email", "Meeting", "Other")),
        ta("Description", 32000),
        b("IsClosed", **READ_ONLY),
        ref("AccountId", "Account", **READ_ONLY),
    ),
)  # fmt: skip

USER = ObjectDef(
    "User", "User", "Users", KEY_PREFIXES["User"], deletable=False,
    fields=system_fields(owner=False) + (
        s("Username", 80, nillable=False, unique=True),
        s("FirstName", 40),
        s("LastName", 80, nillable=False),
        s("Name", 121, calculated=True, **READ_ONLY),
        s("Alias", 8, nillable=False),
        FieldDef("Email", FieldType.EMAIL, length=128, nillable=False),
        b("IsActive", default_value=True),
        s("Title", 80),
        s("Department", 80),
        s("CompanyName", 80),
        pk("TimeZoneSidKey", _pick("Asia/Tokyo", "America/Los_Angeles", "Europe/London", "UTC"),
           nillable=False, defaulted_on_create=True, default_value="Asia/Tokyo"),
        pk("LocaleSidKey", _pick("ja_JP", "en_US"), nillable=False, defaulted_on_create=True, default_value="ja_JP"),
        pk("EmailEncodingKey", _pick("UTF-8", "ISO-2022-JP", "Shift_JIS"), nillable=False,
           defaulted_on_create=True, default_value="UTF-8"),
        pk("LanguageLocaleKey", _pick("ja", "en_US"), nillable=False, defaulted_on_create=True, default_value="ja"),
    ),
)  # fmt: skip

STANDARD_OBJECTS: dict[str, ObjectDef] = {
    o.name: o
    for o in (
        LEAD,
        CONTACT,
        ACCOUNT,
        OPPORTUNITY,
        OPPORTUNITY_CONTACT_ROLE,
        CAMPAIGN,
        CAMPAIGN_MEMBER,
        TASK,
        USER,
    )
}

#: Table name in the store for each CRM object.
TABLE_NAMES: dict[str, str] = {name: f"crm_{name.lower()}" for name in STANDARD_OBJECTS}


def table_name(object_name: str) -> str:
    return TABLE_NAMES.get(object_name, f"crm_{object_name.lower()}")


def stage(name: str | None) -> Stage | None:
    return STAGE_BY_NAME.get(name.lower()) if name else None
