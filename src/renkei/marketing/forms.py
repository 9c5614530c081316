"""Forms, form handlers, landing pages, custom redirects and tracked files; submissions and the
conversion of a visitor into a prospect.

A submission is validated field by field (messages in Japanese or English) and cleaned with the
Japanese hygiene rules; an invalid one is recorded as an Error activity. A valid one, in one
transaction: finds the prospect (by normalised email, else creates it — the visitor's
*conversion*, with source, UTM and first-touch campaign from the visitor), writes the fields by
each field's overwrite rule, moves the visitor's earlier page views and activities onto the
prospect, records the Success activity, runs the asset's completion actions, regrades, and runs
the automation rules for the prospect.

Overwrite (seed 002): personal information a prospect already has is kept (``if_blank``) unless a
field says ``always``; inquiry content (``comments``) and other fields default to ``always``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import nh3
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from renkei.clock import Clock, FixedClock, SystemClock
from renkei.core.activities import ActivityType, AssetKind
from renkei.core.automation import parse_actions
from renkei.core.hygiene import company_key, lookup_postcode, normalize_width, parse_phone
from renkei.core.identity import email_key
from renkei.errors import ConfigError, InputError, NotFoundError
from renkei.marketing.activity_service import NewActivity, move_visitor_history, record_activities
from renkei.marketing.automation_service import apply_actions, run_rules
from renkei.marketing.schema import PROSPECT_FIELDS
from renkei.marketing.scoring_service import regrade
from renkei.marketing.service import ProspectService, coerce_record
from renkei.marketing.tracking import visitor_for_token
from renkei.store import dynamic
from renkei.store import tables as t
from renkei.store import tables_activity as ta

#: Personal information: kept once known unless the form field says ``overwrite: always``.
PERSONAL_FIELDS = frozenset(
    {"email", "salutation", "firstName", "lastName", "company", "jobTitle", "department", "phone", "fax",
     "addressOne", "addressTwo", "city", "state", "zip", "country"}
)  # fmt: skip
FIELD_TYPES = ("text", "email", "phone", "number", "textarea", "select", "checkbox", "zip", "hidden")
HONEYPOT = "renkei_hp"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")

MESSAGES = {
    "required": {"ja": "必須項目です。", "en": "This field is required."},
    "email": {"ja": "メールアドレスの形式が正しくありません。", "en": "Enter a valid email address."},
    "phone": {"ja": "電話番号の形式が正しくありません。", "en": "Enter a valid phone number."},
    "number": {"ja": "数値を入力してください。", "en": "Enter a number."},
    "zip": {"ja": "郵便番号が見つかりません。", "en": "Unknown postcode."},
    "zip_state": {
        "ja": "郵便番号と都道府県が一致しません。",
        "en": "The postcode is not in this prefecture.",
    },
    "choice": {"ja": "選択肢から選んでください。", "en": "Choose one of the options."},
    "length": {"ja": "入力が長すぎます。", "en": "This value is too long."},
}


def message(key: str, lang: str) -> str:
    return MESSAGES[key].get(lang, MESSAGES[key]["en"])


@dataclass(frozen=True, slots=True)
class FormField:
    name: str  # prospect field (v5 name or custom __c)
    label: Mapping[str, str]
    type: str = "text"
    required: bool = False
    options: tuple[str, ...] = ()
    always_show: bool = False
    overwrite: str = "always"  # always | if_blank

    def label_in(self, lang: str) -> str:
        return self.label.get(lang) or self.label.get("en") or self.label.get("ja") or self.name

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "label": dict(self.label), "type": self.type, "required": self.required,
            "options": list(self.options), "always_show": self.always_show, "overwrite": self.overwrite,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FormField:
        name = str(data.get("name", ""))
        label = data.get("label") or name
        f = cls(
            name,
            dict(label) if isinstance(label, Mapping) else {"ja": str(label), "en": str(label)},
            str(data.get("type", "email" if name == "email" else "text")),
            bool(data.get("required", name == "email")),
            tuple(str(o) for o in data.get("options") or ()),
            bool(data.get("always_show", False)),
            str(data.get("overwrite", "if_blank" if name in PERSONAL_FIELDS else "always")),
        )
        if f.type not in FIELD_TYPES:
            raise ConfigError(f"form field {name}: unknown type {f.type!r} (one of {', '.join(FIELD_TYPES)})")
        if f.overwrite not in ("always", "if_blank"):
            raise ConfigError(f"form field {name}: overwrite is 'always' or 'if_blank'")
        return f


def parse_fields(data: Sequence[Mapping[str, Any]], custom: Sequence[str] = ()) -> tuple[FormField, ...]:
    fields = tuple(FormField.from_dict(d) for d in data)
    known = set(PROSPECT_FIELDS) | set(custom)
    for f in fields:
        if f.name not in known:
            raise ConfigError(f"form field {f.name!r} is not a prospect field")
    if "email" not in {f.name for f in fields}:
        raise ConfigError("a form needs an email field (it identifies the prospect)")
    return fields


@dataclass(frozen=True, slots=True)
class Validated:
    values: dict[str, Any]
    errors: dict[str, str]


def validate(fields: Sequence[FormField], data: Mapping[str, str], lang: str) -> Validated:
    """Cleaned values (widths normalised, phones in national format, postcodes NNN-NNNN) and a
    message per invalid field."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for f in fields:
        raw = data.get(f.name)
        if f.type == "checkbox":
            values[f.name] = raw not in (None, "", "false", "0")
            continue
        text = normalize_width(raw) if isinstance(raw, str) else ""
        if not text:
            if f.required:
                errors[f.name] = message("required", lang)
            continue
        limit = PROSPECT_FIELDS[f.name].length if f.name in PROSPECT_FIELDS else 0
        if limit and len(text) > limit:
            errors[f.name] = message("length", lang)
        elif f.type == "email" and not _EMAIL.match(email_key(text) or ""):
            errors[f.name] = message("email", lang)
        elif f.type == "phone":
            phone = parse_phone(text)
            if phone is None:
                errors[f.name] = message("phone", lang)
            else:
                values[f.name] = phone.national
        elif f.type == "number" and not re.fullmatch(r"-?\d+(\.\d+)?", text.replace(",", "")):
            errors[f.name] = message("number", lang)
        elif f.type == "select" and f.options and text not in f.options:
            errors[f.name] = message("choice", lang)
        elif f.type == "zip":
            postcode = lookup_postcode(text)
            if postcode is None:
                errors[f.name] = message("zip", lang)
            else:
                values[f.name] = postcode.code
                state = normalize_width(data.get("state") or "")
                if state and state != postcode.prefecture:
                    errors[f.name] = message("zip_state", lang)
                values.setdefault("_postcode", postcode)
        values.setdefault(f.name, text)
    postcode = values.pop("_postcode", None)
    if postcode is not None and "state" not in values and "state" in {f.name for f in fields}:
        values["state"] = postcode.prefecture
    return Validated({k: v for k, v in values.items() if k not in errors}, errors)


def sanitize_html(html: str) -> str:
    """User HTML for landing pages, cleaned by nh3 (no scripts, event handlers or javascript: URLs)."""
    return nh3.clean(html)


# ---------------------------------------------------------------------------------------------
# Submissions


@dataclass(frozen=True, slots=True)
class Submission:
    """Where a submission came from: the asset kind and id, its campaign and completion actions."""

    kind: AssetKind
    asset_id: int
    name: str
    fields: tuple[FormField, ...]
    campaign_id: int | None
    actions: tuple[Mapping[str, Any], ...] = ()
    refs: Mapping[str, int] = field(default_factory=dict)

    @property
    def converted_from(self) -> str:
        return {
            AssetKind.FORM: "Form",
            AssetKind.FORM_HANDLER: "FormHandler",
            AssetKind.LANDING_PAGE: "LandingPage",
        }[self.kind]


@dataclass(frozen=True, slots=True)
class SubmitResult:
    ok: bool
    errors: Mapping[str, str]
    prospect_id: int | None = None
    created: bool = False
    spam: bool = False
    values: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "errors": dict(self.errors),
            "prospectId": self.prospect_id,
            "created": self.created,
        }


def submit(
    engine: Engine,
    clock: Clock,
    source: Submission,
    data: Mapping[str, str],
    *,
    token: str | None,
    lang: str,
    ip: str | None = None,
) -> SubmitResult:
    """Validate and record one submission (see the module docstring)."""
    if (data.get(HONEYPOT) or "").strip():
        return SubmitResult(True, {}, spam=True)  # bots are told it worked, nothing is kept
    checked = validate(source.fields, data, lang)
    now = clock.now()
    refs = {**source.refs, "campaignId": source.campaign_id}
    with engine.begin() as conn:
        visitor = visitor_for_token(conn, token, now, ip=ip) if token else None
        known = _visitor_prospect(conn, visitor)
        if checked.errors:
            details = f"{source.name}: " + ", ".join(sorted(checked.errors))
            error = NewActivity(
                ActivityType.ERROR,
                source.kind,
                prospect_id=known,
                visitor_id=visitor,
                details=details,
                refs=refs,
            )
            record_activities(conn, [error], now)
            return SubmitResult(False, checked.errors, known, values=checked.values)
        pid, created = _convert(conn, source, checked.values, visitor, now)
        if visitor is not None:
            move_visitor_history(conn, [visitor], pid, now)
        success = NewActivity(
            ActivityType.SUCCESS,
            source.kind,
            prospect_id=pid,
            visitor_id=visitor,
            details=source.name,
            refs=refs,
        )
        record_activities(conn, [success], now)
        apply_actions(
            conn,
            pid,
            parse_actions(source.actions),
            now,
            source=source.converted_from,
            source_id=source.asset_id,
        )
        regrade(conn, [pid], now)
        run_rules(conn, [pid], now)
    return SubmitResult(True, {}, pid, created, values=checked.values)


def _visitor_prospect(conn: Connection, visitor: int | None) -> int | None:
    if visitor is None:
        return None
    pid = conn.execute(
        sa.select(t.visitor.c.prospectId).where(t.visitor.c.id == visitor)
    ).scalar_one_or_none()
    return None if pid is None else int(pid)


def _convert(
    conn: Connection, source: Submission, values: Mapping[str, Any], visitor: int | None, now: dt.datetime
) -> tuple[int, bool]:
    schema = dynamic.load_prospect_schema(conn)
    p = schema.table
    key = email_key(str(values["email"]))
    existing = (
        conn.execute(
            sa.select(p)
            .where(p.c.emailKey == key, p.c.isDeleted.is_(False))
            .order_by(p.c.updatedAt.desc(), p.c.id.desc())
            .limit(1)
        )
        .mappings()
        .first()
    )
    writable = set(schema.fields) - {"id"}
    if existing is not None:
        changes = {}
        for f in source.fields:
            if f.name not in values or f.name == "email":
                continue
            current = existing.get(f.name)
            if f.overwrite == "always" or current is None or current == "":
                changes[f.name] = values[f.name]
        if changes:
            row = coerce_record(schema.fields, changes, writable=writable)
            conn.execute(p.update().where(p.c.id == existing["id"]).values(**row, updatedAt=now))
        return int(existing["id"]), False
    first_touch: dict[str, Any] = {}
    if visitor is not None:
        v = conn.execute(sa.select(t.visitor).where(t.visitor.c.id == visitor)).mappings().one()
        first_touch = {k: v[k] for k in ("sourceParameter", "campaignParameter", "mediumParameter", "contentParameter",
                                         "termParameter", "firstReferrerUrl") if v[k]}  # fmt: skip
        if v["campaignId"]:
            first_touch["campaignId"] = v["campaignId"]
    new = {
        **{k: v for k, v in values.items() if k in schema.fields},
        "prospectAccountId": account_for_company(conn, values.get("company")),
        "campaignId": first_touch.pop("campaignId", source.campaign_id),
        "source": first_touch.get("sourceParameter") or source.name,
        "convertedAt": now,
        "convertedFromObjectType": source.converted_from,
        "convertedFromObjectName": source.name,
        **first_touch,
    }
    row = coerce_record(schema.fields, new, writable=writable)
    created = ProspectService(conn.engine, clock=FixedClock(now))._insert(conn, schema, row)
    return int(created["id"]), True


def account_for_company(conn: Connection, company: str | None) -> int | None:
    """The prospect account whose name is the same company — compared by ``company_key``, so
    「㈱サンプル」 finds 「株式会社サンプル」 — when exactly one matches."""
    key = company_key(company)
    if key is None:
        return None
    pa = t.prospect_account
    rows = conn.execute(sa.select(pa.c.id, pa.c.name).where(pa.c.isDeleted.is_(False)))
    matches = [r.id for r in rows if company_key(r.name) == key]
    return int(matches[0]) if len(matches) == 1 else None


# ---------------------------------------------------------------------------------------------
# Assets


_ASSET_TABLES: dict[str, sa.Table] = {
    "form": ta.form,
    "form_handler": ta.form_handler,
    "landing_page": ta.landing_page,
    "custom_redirect": ta.custom_redirect,
    "tracked_file": ta.tracked_file,
}
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,100}$")


class AssetService:
    """Create and read marketing assets; every asset's settings are validated when saved."""

    def __init__(self, engine: Engine, *, clock: Clock | None = None) -> None:
        self.engine = engine
        self.clock = clock or SystemClock()

    def _custom_fields(self) -> list[str]:
        with self.engine.connect() as conn:
            return [f.name for f in dynamic.load_prospect_schema(conn).custom_fields]

    def _insert(self, kind: str, values: dict[str, Any]) -> dict[str, Any]:
        table = _ASSET_TABLES[kind]
        now = self.clock.now()
        parse_actions(values.get("completionActions"))
        if "slug" in values and not _SLUG.match(str(values["slug"])):
            raise InputError(
                f"slug {values['slug']!r}: lowercase letters, digits and dashes", code="INVALID_FIELD"
            )
        with self.engine.begin() as conn:
            try:
                new_id = conn.execute(
                    table.insert().values(createdAt=now, updatedAt=now, **values).returning(table.c.id)
                ).scalar_one()
            except sa.exc.IntegrityError:
                raise InputError(
                    f"{kind} conflicts with an existing one (name or slug)", code="DUPLICATE_VALUE"
                ) from None
        return self.get(kind, int(new_id))

    def get(self, kind: str, asset_id: int) -> dict[str, Any]:
        table = _ASSET_TABLES[kind]
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(table).where(table.c.id == asset_id)).mappings().first()
        if row is None:
            raise NotFoundError(f"{kind} {asset_id} not found")
        return dict(row)

    def by_slug(self, kind: str, slug: str) -> dict[str, Any]:
        table = _ASSET_TABLES[kind]
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(table).where(table.c.slug == slug)).mappings().first()
        if row is None:
            raise NotFoundError(f"{kind} {slug!r} not found")
        return dict(row)

    def create_form(self, name: str, fields: Sequence[Mapping[str, Any]], *, campaign_id: int | None = None,
                    thank_you: str | None = None, redirect_url: str | None = None, language: str = "ja",
                    completion_actions: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:  # fmt: skip
        parsed = parse_fields(fields, self._custom_fields())
        return self._insert("form", {
            "name": name, "campaignId": campaign_id, "fields": [f.to_dict() for f in parsed],
            "thankYouContent": sanitize_html(thank_you) if thank_you else None, "redirectUrl": redirect_url,
            "language": language, "completionActions": list(completion_actions),
        })  # fmt: skip

    def create_form_handler(self, name: str, fields: Sequence[Mapping[str, Any]], *, campaign_id: int | None = None,
                            success_url: str | None = None, error_url: str | None = None,
                            completion_actions: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:  # fmt: skip
        parsed = parse_fields(fields, self._custom_fields())
        return self._insert("form_handler", {
            "name": name, "campaignId": campaign_id, "fields": [f.to_dict() for f in parsed], "successUrl": success_url,
            "errorUrl": error_url, "completionActions": list(completion_actions),
        })  # fmt: skip

    def create_landing_page(self, name: str, slug: str, *, title: str, content: str, form_id: int | None = None,
                            layout: str = "default", campaign_id: int | None = None,
                            completion_actions: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:  # fmt: skip
        if layout not in LAYOUTS:
            raise InputError(f"unknown layout {layout!r} (one of {', '.join(LAYOUTS)})", code="INVALID_FIELD")
        if form_id is not None:
            self.get("form", form_id)
        return self._insert("landing_page", {
            "name": name, "slug": slug, "title": title, "layout": layout, "content": sanitize_html(content),
            "formId": form_id, "campaignId": campaign_id, "completionActions": list(completion_actions),
        })  # fmt: skip

    def create_redirect(self, name: str, slug: str, destination: str, *, campaign_id: int | None = None,
                        completion_actions: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:  # fmt: skip
        if not destination.startswith(("https://", "http://")):
            raise InputError("a custom redirect goes to an http(s) URL", code="INVALID_FIELD")
        return self._insert("custom_redirect", {
            "name": name, "slug": slug, "destinationUrl": destination, "campaignId": campaign_id,
            "completionActions": list(completion_actions),
        })  # fmt: skip

    def create_file(self, name: str, slug: str, content: bytes, content_type: str, *, campaign_id: int | None = None,
                    completion_actions: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:  # fmt: skip
        return self._insert("tracked_file", {
            "name": name, "slug": slug, "content": content, "contentType": content_type, "campaignId": campaign_id,
            "completionActions": list(completion_actions),
        })  # fmt: skip

    # -- submissions and clicks --------------------------------------------------------------

    def form_submission(
        self, form: Mapping[str, Any], landing_page: Mapping[str, Any] | None = None
    ) -> Submission:
        """A form posted on its own, or on a landing page (then it logs as the landing page's)."""
        fields = tuple(FormField.from_dict(f) for f in form["fields"])
        if landing_page is None:
            return Submission(AssetKind.FORM, form["id"], form["name"], fields, form["campaignId"],
                              tuple(form["completionActions"]), {"formId": form["id"]})  # fmt: skip
        actions = tuple(form["completionActions"]) + tuple(landing_page["completionActions"])
        return Submission(AssetKind.LANDING_PAGE, landing_page["id"], landing_page["name"], fields,
                          landing_page["campaignId"] or form["campaignId"], actions,
                          {"formId": form["id"], "landingPageId": landing_page["id"]})  # fmt: skip

    def handler_submission(self, handler: Mapping[str, Any]) -> Submission:
        fields = tuple(FormField.from_dict(f) for f in handler["fields"])
        return Submission(AssetKind.FORM_HANDLER, handler["id"], handler["name"], fields, handler["campaignId"],
                          tuple(handler["completionActions"]), {"formHandlerId": handler["id"]})  # fmt: skip

    def record_view(
        self,
        kind: AssetKind,
        asset: Mapping[str, Any],
        token: str | None,
        *,
        ip: str | None = None,
        url: str = "",
        referrer: str | None = None,
    ) -> int | None:
        """A View (type 2) of a form, landing page or file, or a Custom URL click (type 21), for the
        visitor (and its prospect); files and redirects run their completion actions."""
        now = self.clock.now()
        column = {AssetKind.FORM: "formId", AssetKind.LANDING_PAGE: "landingPageId", AssetKind.FILE: "fileId",
                  AssetKind.CUSTOM_REDIRECT: "customRedirectId"}[kind]  # fmt: skip
        code = ActivityType.CUSTOM_URL_CLICK if kind is AssetKind.CUSTOM_REDIRECT else ActivityType.VIEW
        with self.engine.begin() as conn:
            visitor = (
                visitor_for_token(conn, token, now, ip=ip, url=url, referrer=referrer) if token else None
            )
            pid = _visitor_prospect(conn, visitor)
            if visitor is None and pid is None:
                return None
            activity = NewActivity(code, kind, prospect_id=pid, visitor_id=visitor, details=asset["name"],
                                   refs={column: asset["id"], "campaignId": asset["campaignId"]})  # fmt: skip
            record_activities(conn, [activity], now)
            if pid is not None and kind in (AssetKind.FILE, AssetKind.CUSTOM_REDIRECT):
                apply_actions(
                    conn,
                    pid,
                    parse_actions(asset["completionActions"]),
                    now,
                    source=kind.value,
                    source_id=asset["id"],
                )
                run_rules(conn, [pid], now)
            return pid

    def prefill(self, form: Mapping[str, Any], token: str | None) -> tuple[list[FormField], dict[str, Any]]:
        """The fields to show a visitor and their pre-filled values: a known prospect sees its
        values, and fields it has already filled are skipped unless required or always shown
        (progressive profiling)."""
        fields = [FormField.from_dict(f) for f in form["fields"]]
        if not token:
            return fields, {}
        k, p = ta.tracking_visitor_key, t.prospect
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(p).join(t.visitor, t.visitor.c.prospectId == p.c.id).join(k, k.c.visitorId == t.visitor.c.id)
                .where(k.c.token == token, p.c.isDeleted.is_(False))
            ).mappings().first()  # fmt: skip
        if row is None:
            return fields, {}
        shown = [f for f in fields if f.required or f.always_show or row.get(f.name) in (None, "")]
        return shown, {f.name: row.get(f.name) for f in shown if row.get(f.name) is not None}


LAYOUTS = ("default", "simple")
