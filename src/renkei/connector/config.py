"""Connector configuration (``connector.yaml``): mappings, rules, filters, cap and creation — one
validated object with the query methods the engine asks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from renkei.connector.adapters.salesforce import SalesforceConfig
from renkei.core.sync.judge import Rule
from renkei.errors import ConfigError

CRM_OBJECTS = ("Lead", "Contact")


class FieldMapping(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ma: str = Field(description="prospect field (Account Engagement API v5 name)")
    crm: str | dict[str, str] = Field(description="CRM API name, or {Lead: …, Contact: …} when they differ")
    rule: Rule = Rule.CRM_WINS
    sync_blanks: bool = False

    def crm_field(self, object_name: str) -> str | None:
        if isinstance(self.crm, str):
            return self.crm
        return self.crm.get(object_name)


class ObjectSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filter: str | None = Field(None, description="SOQL WHERE: which records sync")


#: Visitor activities sales wants to see as CRM tasks (``code`` or ``code/typeName``): form, form handler
#: and landing-page successes, email link clicks, file views (downloads) and custom-redirect clicks.
DEFAULT_TASK_TYPES: tuple[int | str, ...] = (4, "1/Email Tracker", "2/File", 21)


class ActivityTasks(BaseModel):
    """Opt-in export of new visitor activities of linked prospects as completed CRM ``Task`` records."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    types: list[int | str] = Field(default_factory=lambda: list(DEFAULT_TASK_TYPES),
                                   description="activity type codes, or code/typeName for one asset kind")  # fmt: skip
    subject_prefix: str = "[MA] "
    status: str = "Completed"
    backfill_days: int = Field(30, ge=0, description="how far back a newly linked prospect's activities go")
    #: The org's time zone: ActivityDate is the activity's day there (an 08:00 JST visit is that day's).
    timezone: str = "Asia/Tokyo"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as Asia/Tokyo)") from None
        return value

    @field_validator("types")
    @classmethod
    def _selectors(cls, value: list[int | str]) -> list[int | str]:
        for entry in value:
            _selector(entry)
        return value

    def selectors(self) -> list[tuple[int, str | None]]:
        """(type code, typeName or None for any) pairs an activity must match one of."""
        return [_selector(e) for e in self.types]


def _selector(entry: int | str) -> tuple[int, str | None]:
    code, _, name = str(entry).partition("/")
    if not code.strip().isdigit():
        raise ValueError(f"activity type {entry!r}: use a type code (4) or code/typeName (2/File)")
    return int(code), name.strip() or None


#: Rules under which a CRM value never reaches marketing.
_NEVER_PULLED = (Rule.MA_TO_CRM, Rule.MA_WINS, Rule.NONE)


class CrmConnection(BaseModel):
    """Which CRM the connector syncs with: renkei's built-in CRM (the same database) or a
    Salesforce org (or another renkei's ``renkei serve``) through its REST API."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["builtin", "salesforce"] = "builtin"
    salesforce: SalesforceConfig | None = None

    @model_validator(mode="after")
    def _settings_given(self) -> CrmConnection:
        if self.type == "salesforce" and self.salesforce is None:
            raise ValueError("type salesforce needs the org's settings under crm.salesforce")
        return self


class ConnectorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    crm: CrmConnection = Field(default_factory=CrmConnection)

    paused: bool = False
    auto_create_prospects: bool = True
    create_in_crm: Literal["on_assignment", "always", "never"] = "on_assignment"
    prefer: Literal["contact", "lead"] = "contact"
    on_filter_mismatch: Literal["recycle", "unlink"] = "recycle"
    on_crm_delete: Literal["recycle", "unlink"] = "recycle"
    partial_writes: bool = True
    cap: int | None = None
    queue_threshold: int = 400
    bulk_create_threshold: int = Field(1000, ge=0)
    rate_per_hour: int | None = None
    daily_api_budget: int | None = None
    placeholder: str = "[[unknown]]"
    objects: dict[str, ObjectSettings] = Field(
        default_factory=lambda: {o: ObjectSettings() for o in CRM_OBJECTS}
    )
    fields: list[FieldMapping] = Field(default_factory=list)
    activity_tasks: ActivityTasks = Field(default_factory=ActivityTasks)

    @field_validator("fields")
    @classmethod
    def _unique(cls, value: list[FieldMapping]) -> list[FieldMapping]:
        seen = set()
        for m in value:
            if m.ma in seen:
                raise ValueError(f"prospect field {m.ma!r} is mapped twice")
            seen.add(m.ma)
        return value

    def mappings(self, object_name: str) -> list[tuple[FieldMapping, str]]:
        """(mapping, CRM field name) for an object; mappings without a field on it are left out."""
        out = []
        for m in self.fields:
            name = m.crm_field(object_name)
            if name:
                out.append((m, name))
        return out

    def fields_to_pull(self, object_name: str) -> list[tuple[FieldMapping, str]]:
        """The pairs whose CRM value may reach marketing (a new prospect takes these from the record)."""
        return [(m, f) for m, f in self.mappings(object_name) if m.rule not in _NEVER_PULLED]

    def fields_to_create_in_crm(self, object_name: str) -> list[tuple[FieldMapping, str]]:
        """The pairs a new CRM record takes from its prospect (the CRM holds nothing yet, so
        ``crm_wins`` fields go too; ``crm_to_ma`` and ``none`` never write the CRM)."""
        return [(m, f) for m, f in self.mappings(object_name) if m.rule not in (Rule.CRM_TO_MA, Rule.NONE)]

    def rule_for(self, ma_field: str) -> Rule | None:
        return next((m.rule for m in self.fields if m.ma == ma_field), None)

    def filter_for(self, object_name: str) -> str | None:
        settings = self.objects.get(object_name)
        return settings.filter if settings else None


#: AE's default mappings (standard fields) and the managed package's fields sales sees.
DEFAULT_FIELDS: list[dict[str, Any]] = [
    {"ma": "email", "crm": "Email", "rule": "crm_wins"},
    {"ma": "firstName", "crm": "FirstName", "rule": "crm_wins"},
    {"ma": "lastName", "crm": "LastName", "rule": "crm_wins"},
    {"ma": "salutation", "crm": "Salutation", "rule": "crm_wins"},
    {"ma": "company", "crm": {"Lead": "Company"}, "rule": "crm_wins"},
    {"ma": "jobTitle", "crm": "Title", "rule": "crm_wins"},
    {"ma": "department", "crm": {"Contact": "Department"}, "rule": "crm_wins"},
    {"ma": "phone", "crm": "Phone", "rule": "crm_wins"},
    {"ma": "fax", "crm": "Fax", "rule": "crm_wins"},
    {"ma": "addressOne", "crm": {"Lead": "Street", "Contact": "MailingStreet"}, "rule": "crm_wins"},
    {"ma": "city", "crm": {"Lead": "City", "Contact": "MailingCity"}, "rule": "crm_wins"},
    {"ma": "state", "crm": {"Lead": "State", "Contact": "MailingState"}, "rule": "crm_wins"},
    {"ma": "zip", "crm": {"Lead": "PostalCode", "Contact": "MailingPostalCode"}, "rule": "crm_wins"},
    {"ma": "country", "crm": {"Lead": "Country", "Contact": "MailingCountry"}, "rule": "crm_wins"},
    {"ma": "website", "crm": {"Lead": "Website"}, "rule": "most_recent"},
    {"ma": "industry", "crm": {"Lead": "Industry"}, "rule": "most_recent"},
    {"ma": "source", "crm": "LeadSource", "rule": "crm_wins_unless_blank"},
    {"ma": "comments", "crm": "Description", "rule": "ma_wins"},
    {"ma": "optedOut", "crm": "HasOptedOutOfEmail", "rule": "most_recent"},
    {"ma": "isDoNotCall", "crm": "DoNotCall", "rule": "most_recent"},
    {"ma": "score", "crm": "pi__score__c", "rule": "ma_to_crm", "sync_blanks": True},
    {"ma": "grade", "crm": "pi__grade__c", "rule": "ma_to_crm", "sync_blanks": True},
    {"ma": "createdAt", "crm": "pi__created_date__c", "rule": "ma_to_crm"},
    {"ma": "lastActivityAt", "crm": "pi__last_activity__c", "rule": "ma_to_crm"},
    {"ma": "firstActivityAt", "crm": "pi__first_activity__c", "rule": "ma_to_crm"},
    {"ma": "convertedAt", "crm": "pi__conversion_date__c", "rule": "ma_to_crm"},
    {"ma": "campaignParameter", "crm": "pi__utm_campaign__c", "rule": "ma_to_crm"},
    {"ma": "sourceParameter", "crm": "pi__utm_source__c", "rule": "ma_to_crm"},
    {"ma": "mediumParameter", "crm": "pi__utm_medium__c", "rule": "ma_to_crm"},
]

#: The managed package's fields, added to Lead and Contact by ``renkei connector install-package``.
PACKAGE_FIELDS: list[tuple[str, str, dict[str, Any]]] = [
    ("pi__score__c", "number", {"precision": 18, "scale": 0}),
    ("pi__grade__c", "text", {"length": 2}),
    ("pi__created_date__c", "datetime", {}),
    ("pi__last_activity__c", "datetime", {}),
    ("pi__first_activity__c", "datetime", {}),
    ("pi__conversion_date__c", "datetime", {}),
    ("pi__url__c", "url", {}),
    ("pi__campaign__c", "text", {"length": 255}),
    ("pi__utm_campaign__c", "text", {"length": 255}),
    ("pi__utm_source__c", "text", {"length": 255}),
    ("pi__utm_medium__c", "text", {"length": 255}),
    ("pi__comments__c", "longtextarea", {}),
]

#: On Task: which visitor activity a task was exported from (the key that keeps the export idempotent).
TASK_KEY_FIELD = "pi__activity_id__c"
PACKAGE_TASK_FIELDS: list[tuple[str, str, dict[str, Any]]] = [(TASK_KEY_FIELD, "text", {"length": 40})]

DEFAULT_YAML = """\
# renkei connector: prospects (marketing) <-> leads and contacts (CRM).
# Rules per field: crm_wins | ma_wins | most_recent (AE's three) and crm_wins_unless_blank |
# ma_wins_unless_blank | crm_to_ma | ma_to_crm | none. A blank never overwrites a value unless the
# field has sync_blanks: true. Seed 000's advice: personal details (name, company, address, phone)
# CRM wins (business-card data is cleaner); inquiry contents marketing wins.
crm:
  type: builtin               # builtin (this renkei's CRM) | salesforce (an org, through its REST API)
  # salesforce:               # with type: salesforce — secrets are {env: VAR} or {file: PATH}, never the value
  #   instance_url: https://example.my.salesforce.com
  #   flow: client_credentials  # token | client_credentials | password
  #   client_id: 3MVG9...
  #   client_secret: {env: SF_CLIENT_SECRET}
  #   # username: integration@example.co.jp   # flow: password
  #   # password: {file: /etc/renkei/sf-password}
  #   # token: {env: SF_TOKEN}                 # flow: token (e.g. `renkei token create` on a renkei CRM)
  #   # ca_file: certs/ca.pem                  # trust a private CA (renkei dev-cert); default: system CAs
  #   # budget_reserve: 5000                   # API calls per day left for people
paused: false                 # pause the connector (nothing syncs)
auto_create_prospects: true   # a CRM lead/contact that passes its filter creates a prospect
create_in_crm: on_assignment  # a new prospect creates a CRM lead: on_assignment | always | never
prefer: contact               # a lead and a contact share an email: link the contact (or: lead)
on_filter_mismatch: recycle   # a record that stops matching its filter: recycle the prospect | unlink
on_crm_delete: recycle        # a CRM delete: recycle the prospect | unlink
partial_writes: true          # one bad field does not block the record's other fields
cap: null                     # licence cap on synced prospects (e.g. 10000); reaching it is an error per record
bulk_create_threshold: 1000   # a cycle with this many pending unlinked CRM records creates the plain new prospects in bulk (built-in CRM)
queue_threshold: 400          # more pending changes than this go to the queue …
rate_per_hour: null           # … worked at this rate (AE: 12000); null = unlimited
daily_api_budget: null        # CRM API calls per day the connector may spend; null = unlimited
placeholder: "[[unknown]]"    # written to required CRM fields (Lead.Company, LastName) that are blank
objects:
  Lead:
    # SOQL WHERE deciding who syncs, e.g. seed 001:
    # filter: "Billing_Contact__c = false AND Recruiting__c = false AND Partner__c = false AND CreatedDate = LAST_N_YEARS:3 AND Company != null"
    filter: null
  Contact:
    filter: null
activity_tasks:               # visitor activities of linked prospects -> completed CRM Task records
  enabled: false              # opt-in; needs Task.pi__activity_id__c (renkei connector install-package)
  # which activities: a type code (4 = every success) or code/typeName (2/File = file views only);
  # default: form/form handler/landing page successes, email link clicks, file views, custom redirects
  types: [4, 1/Email Tracker, 2/File, 21]
  subject_prefix: "[MA] "     # Subject = prefix + activity type + asset, e.g. "[MA] Success (Form): Contact us"
  status: Completed           # Task.Status of the exported tasks
  backfill_days: 30           # a prospect linked later brings its activities of the last N days
  timezone: Asia/Tokyo        # Task.ActivityDate is the activity's date in this (the org's) time zone
fields:
""" + "".join(
    f"  - {{ma: {f['ma']}, crm: {f['crm'] if isinstance(f['crm'], str) else yaml.safe_dump(f['crm'], default_flow_style=True).strip()}, rule: {f['rule']}"
    + (", sync_blanks: true" if f.get("sync_blanks") else "") + "}\n"
    for f in DEFAULT_FIELDS
)  # fmt: skip


def config_path() -> Path:
    return Path(os.environ.get("RENKEI_CONNECTOR_CONFIG", "connector.yaml"))


def parse(text: str, source: str = "connector.yaml") -> ConnectorConfig:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    try:
        return ConnectorConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{source}: {where}: {first['msg']}") from None


def load(path: Path | None = None) -> ConnectorConfig:
    path = path or config_path()
    if not path.exists():
        return parse(DEFAULT_YAML, "default configuration")
    return parse(path.read_text(encoding="utf-8"), str(path))


def dump(config: ConnectorConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), allow_unicode=True, sort_keys=False)
