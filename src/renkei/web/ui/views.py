"""Read models for the app's pages: the counts, lists and chart series the sections show.

Read-only queries over the store, one function per page (the writes go through the features'
services). Features that other issues are still building are looked up with ``landed``, so a page
can say plainly that something is not available instead of showing made-up data.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from renkei.clock import ensure_utc
from renkei.store import tables as t
from renkei.store import tables_activity as ta
from renkei.store import tables_email as te

PAGE_SIZE = 50


def landed(module: str) -> bool:
    """Has the feature that provides ``module`` been installed in this tree?"""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _count(conn: Connection, table: sa.Table, *where: sa.ColumnElement[bool]) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one())


def _live() -> sa.ColumnElement[bool]:
    return t.prospect.c.isDeleted.is_(False)


# ---------------------------------------------------------------------------------------------
# Dashboard


def dashboard(engine: Engine, now: dt.datetime) -> dict[str, Any]:
    p, va = t.prospect, t.visitor_activity
    since = now - dt.timedelta(days=30)
    with engine.connect() as conn:
        created = conn.execute(sa.select(p.c.createdAt).where(_live(), p.c.createdAt >= since)).scalars()
        per_day: dict[str, int] = {
            (since + dt.timedelta(days=i + 1)).date().isoformat(): 0 for i in range(30)
        }
        for when in created:
            key = ensure_utc(when).date().isoformat()
            if key in per_day:
                per_day[key] += 1
        prospects = _count(conn, p, _live())
        asset = sa.or_(
            va.c.formId.is_not(None),
            va.c.formHandlerId.is_not(None),
            va.c.landingPageId.is_not(None),
            va.c.fileId.is_not(None),
            va.c.customRedirectId.is_not(None),
        )
        top_assets = [
            {"typeName": r.typeName, "details": r.details, "count": int(r.n)}
            for r in conn.execute(
                sa.select(va.c.typeName, va.c.details, sa.func.count().label("n"))
                .where(asset, va.c.createdAt >= since)
                .group_by(va.c.typeName, va.c.details)
                .order_by(sa.desc("n"), va.c.details)
                .limit(8)
            )
        ]
        recent = [
            dict(r)
            for r in conn.execute(
                sa.select(
                    p.c.id,
                    p.c.email,
                    p.c.firstName,
                    p.c.lastName,
                    p.c.company,
                    p.c.score,
                    p.c.grade,
                    p.c.createdAt,
                )
                .where(_live())
                .order_by(p.c.createdAt.desc(), p.c.id.desc())
                .limit(8)
            ).mappings()
        ]
    return {
        "created30": sum(per_day.values()),
        "createdPerDay": per_day,
        "prospects": prospects,
        "topAssets": top_assets,
        "recent": recent,
    }


# ---------------------------------------------------------------------------------------------
# Prospects


def prospect_search(
    engine: Engine,
    *,
    q: str = "",
    grade: str = "",
    min_score: int | None = None,
    crm: str = "",
    rule: str = "",
    now: dt.datetime | None = None,
    page: int = 1,
) -> dict[str, Any]:
    """A page of live prospects matching a free-text search, simple filters and, when the
    segmentation feature is installed, a segmentation rule (its text form)."""
    p = t.prospect
    where: list[sa.ColumnElement[bool]] = [_live()]
    if q.strip():
        like = f"%{q.strip().lower()}%"
        where.append(
            sa.or_(
                *(
                    sa.func.lower(sa.func.coalesce(c, "")).like(like)
                    for c in (p.c.email, p.c.firstName, p.c.lastName, p.c.company)
                )
            )
        )
    if grade:
        where.append(p.c.grade == grade)
    if min_score is not None:
        where.append(p.c.score >= min_score)
    if crm == "linked":
        where.append(p.c.salesforceId.is_not(None))
    elif crm == "unlinked":
        where.append(p.c.salesforceId.is_(None))
    page = max(page, 1)
    cols = (p.c.id, p.c.email, p.c.firstName, p.c.lastName, p.c.company, p.c.score, p.c.grade)
    with engine.connect() as conn:
        if rule.strip():
            where.append(p.c.id.in_(_rule_members(conn, engine, rule, now)))
        total = _count(conn, p, *where)
        rows = conn.execute(
            sa.select(*cols, p.c.lastActivityAt, p.c.salesforceId, p.c.createdAt)
            .where(*where)
            .order_by(p.c.id.desc())
            .limit(PAGE_SIZE)
            .offset((page - 1) * PAGE_SIZE)
        ).mappings()
        return {
            "rows": [dict(r) for r in rows],
            "total": total,
            "page": page,
            "pages": max(1, -(-total // PAGE_SIZE)),
        }


def _rule_members(conn: Connection, engine: Engine, rule: str, now: dt.datetime | None) -> sa.Select[Any]:
    """The ids matching a segmentation rule (parsed and checked by the segmentation service)."""
    from renkei.core.rules.evaluate import Moment
    from renkei.segments.compile import context_for, members_query
    from renkei.segments.lists import SegmentService

    moment = Moment(now or dt.datetime.now(dt.UTC))
    node = SegmentService(engine).parse(conn, rule)
    return members_query(node, context_for(conn, moment))


def prospect_extras(engine: Engine, prospect_id: int) -> dict[str, Any]:
    """Lists, tags, campaign and email messages of one prospect."""
    with engine.connect() as conn:
        lists = [
            dict(r)
            for r in conn.execute(
                sa.select(t.list_.c.id, t.list_.c.name, t.list_membership.c.optedOut)
                .join(t.list_membership, t.list_membership.c.listId == t.list_.c.id)
                .where(t.list_membership.c.prospectId == prospect_id)
                .order_by(t.list_.c.name)
            ).mappings()
        ]
        tags = list(
            conn.execute(
                sa.select(t.tag.c.name)
                .join(t.tag_object, t.tag_object.c.tagId == t.tag.c.id)
                .where(t.tag_object.c.objectType == "prospect", t.tag_object.c.objectId == prospect_id)
                .order_by(t.tag.c.name)
            ).scalars()
        )
        m = te.email_message
        emails = [
            dict(r)
            for r in conn.execute(
                sa.select(
                    m.c.id, m.c.subject, m.c.status, m.c.sentAt, m.c.openedAt, m.c.clickCount, m.c.bouncedAt
                )
                .where(m.c.prospectId == prospect_id)
                .order_by(m.c.id.desc())
                .limit(20)
            ).mappings()
        ]
    return {"lists": lists, "tags": tags, "emails": emails}


# ---------------------------------------------------------------------------------------------
# Sections


def campaigns(engine: Engine) -> list[dict[str, Any]]:
    c, p = t.campaign, t.prospect
    first_touch = (
        sa.select(p.c.campaignId, sa.func.count().label("n"))
        .where(_live())
        .group_by(p.c.campaignId)
        .subquery()
    )
    with engine.connect() as conn:
        return [
            dict(r)
            for r in conn.execute(
                sa.select(c, sa.func.coalesce(first_touch.c.n, 0).label("prospects"))
                .outerjoin(first_touch, first_touch.c.campaignId == c.c.id)
                .order_by(c.c.id)
            ).mappings()
        ]


def _asset_rows(conn: Connection, table: sa.Table, column: str) -> list[dict[str, Any]]:
    va = t.visitor_activity
    counts = (
        sa.select(va.c[column].label("asset"), sa.func.count().label("n"))
        .where(va.c[column].is_not(None))
        .group_by(va.c[column])
        .subquery()
    )
    query = (
        sa.select(table, sa.func.coalesce(counts.c.n, 0).label("activityCount"))
        .outerjoin(counts, counts.c.asset == table.c.id)
        .order_by(table.c.id)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def content(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    with engine.connect() as conn:
        return {
            "forms": _asset_rows(conn, ta.form, "formId"),
            "formHandlers": _asset_rows(conn, ta.form_handler, "formHandlerId"),
            "landingPages": _asset_rows(conn, ta.landing_page, "landingPageId"),
            "customRedirects": _asset_rows(conn, ta.custom_redirect, "customRedirectId"),
            "files": _asset_rows(conn, ta.tracked_file, "fileId"),
        }


def automation(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    with engine.connect() as conn:
        rules = [
            dict(r)
            for r in conn.execute(sa.select(ta.automation_rule).order_by(ta.automation_rule.c.id)).mappings()
        ]
        programs = [
            dict(r)
            for r in conn.execute(sa.select(te.nurture_program).order_by(te.nurture_program.c.id)).mappings()
        ]
    return {"rules": rules, "programs": programs}


def email(engine: Engine) -> dict[str, Any]:
    m, le, tpl = te.email_message, te.list_email, te.email_template
    with engine.connect() as conn:
        templates = [
            dict(r)
            for r in conn.execute(
                sa.select(tpl.c.id, tpl.c.name, tpl.c.subject, tpl.c.createdAt).order_by(tpl.c.id)
            ).mappings()
        ]
        sends = [
            dict(r)
            for r in conn.execute(
                sa.select(
                    le.c.id,
                    le.c.name,
                    le.c.status,
                    le.c.scheduledAt,
                    sa.func.count(m.c.id).label("recipients"),
                    sa.func.count(m.c.sentAt).label("sent"),
                    sa.func.count(m.c.openedAt).label("opened"),
                    sa.func.count(m.c.bouncedAt).label("bounced"),
                    sa.func.coalesce(sa.func.sum(m.c.clickCount), 0).label("clicks"),
                )
                .outerjoin(m, m.c.listEmailId == le.c.id)
                .group_by(le.c.id, le.c.name, le.c.status, le.c.scheduledAt)
                .order_by(le.c.id.desc())
            ).mappings()
        ]
    return {"templates": templates, "sends": sends}


def reports(engine: Engine, now: dt.datetime) -> dict[str, Any]:
    va, p = t.visitor_activity, t.prospect
    since = now - dt.timedelta(days=30)
    with engine.connect() as conn:
        by_type = [
            {"type": int(r.type), "typeName": r.typeName, "count": int(r.n)}
            for r in conn.execute(
                sa.select(va.c.type, va.c.typeName, sa.func.count().label("n"))
                .where(va.c.createdAt >= since)
                .group_by(va.c.type, va.c.typeName)
                .order_by(sa.desc("n"))
            )
        ]
        by_source = [
            {"source": r.source or "", "count": int(r.n)}
            for r in conn.execute(
                sa.select(p.c.source, sa.func.count().label("n"))
                .where(_live())
                .group_by(p.c.source)
                .order_by(sa.desc("n"))
            )
        ]
        by_grade = [
            {"grade": r.grade or "", "count": int(r.n)}
            for r in conn.execute(
                sa.select(p.c.grade, sa.func.count().label("n"))
                .where(_live())
                .group_by(p.c.grade)
                .order_by(p.c.grade)
            )
        ]
    return {"byType": by_type, "bySource": by_source, "byGrade": by_grade}


def calendar(engine: Engine, year: int, month: int, tz: str) -> dict[str, Any]:
    """A month grid of the marketing calendar (segmentation's ``marketing_calendar``: scheduled
    list emails, campaign starts and ends), days in the user's time zone."""
    from renkei.segments.reports import marketing_calendar

    start = dt.date(year, month, 1)
    end = dt.date(year + (month == 12), month % 12 + 1, 1) - dt.timedelta(days=1)
    events: dict[int, list[dict[str, Any]]] = {}
    for item in marketing_calendar(engine, start, end, tz=tz):
        events.setdefault(dt.date.fromisoformat(item["date"]).day, []).append(item)
    cells: list[int | None] = [None] * start.weekday() + list(range(1, end.day + 1))
    cells += [None] * (-len(cells) % 7)
    weeks = [cells[i : i + 7] for i in range(0, len(cells), 7)]
    prev = (year - (month == 1), (month - 2) % 12 + 1)
    nxt = (year + (month == 12), month % 12 + 1)
    return {"year": year, "month": month, "weeks": weeks, "events": events, "prev": prev, "next": nxt}


def tracking_snippet(base_url: str) -> str:
    return f'<script async src="{base_url.rstrip("/")}/track/renkei.js"></script>'


# ---------------------------------------------------------------------------------------------
# CRM pages (read side) and the marketing panel

CRM_OBJECTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "leads": ("Lead", ("Name", "Company", "Email", "Status", "LeadSource", "IsConverted", "CreatedDate")),
    "contacts": ("Contact", ("Name", "AccountId", "Email", "Title", "Department", "CreatedDate")),
    "accounts": (
        "Account",
        ("Name", "Industry", "BillingState", "Phone", "NumberOfEmployees", "CreatedDate"),
    ),
    "opportunities": ("Opportunity", ("Name", "AccountId", "StageName", "Amount", "CloseDate", "IsWon")),
}


def crm_list(engine: Engine, kind: str, *, q: str = "", page: int = 1) -> dict[str, Any]:
    object_name, columns = CRM_OBJECTS[kind]
    table = t.CRM_TABLES[object_name]
    where: list[sa.ColumnElement[bool]] = [table.c.IsDeleted.is_(False)]
    if q.strip():
        like = f"%{q.strip().lower()}%"
        searchable = [c for c in ("Name", "Email", "Company") if c in table.c]
        where.append(
            sa.or_(*(sa.func.lower(sa.func.coalesce(table.c[c], "")).like(like) for c in searchable))
        )
    page = max(page, 1)
    with engine.connect() as conn:
        total = _count(conn, table, *where)
        rows = conn.execute(
            sa.select(table.c.Id, *(table.c[c] for c in columns))
            .where(*where)
            .order_by(table.c.CreatedDate.desc(), table.c.Id.desc())
            .limit(PAGE_SIZE)
            .offset((page - 1) * PAGE_SIZE)
        ).mappings()
        return {
            "object": object_name,
            "columns": columns,
            "rows": [dict(r) for r in rows],
            "total": total,
            "page": page,
            "pages": max(1, -(-total // PAGE_SIZE)),
        }


def crm_record(engine: Engine, kind: str, record_id: str) -> dict[str, Any] | None:
    object_name, _ = CRM_OBJECTS[kind]
    table = t.CRM_TABLES[object_name]
    with engine.connect() as conn:
        row = conn.execute(sa.select(table).where(table.c.Id == record_id)).mappings().first()
        if row is None:
            return None
        record = dict(row)
        related: dict[str, list[dict[str, Any]]] = {}
        if object_name == "Account":
            contact = t.CRM_TABLES["Contact"]
            opp = t.CRM_TABLES["Opportunity"]
            related["contacts"] = [
                dict(r)
                for r in conn.execute(
                    sa.select(contact.c.Id, contact.c.Name, contact.c.Email, contact.c.Title)
                    .where(contact.c.AccountId == record_id, contact.c.IsDeleted.is_(False))
                    .order_by(contact.c.Name)
                    .limit(100)
                ).mappings()
            ]
            related["opportunities"] = [
                dict(r)
                for r in conn.execute(
                    sa.select(opp.c.Id, opp.c.Name, opp.c.StageName, opp.c.Amount, opp.c.CloseDate)
                    .where(opp.c.AccountId == record_id, opp.c.IsDeleted.is_(False))
                    .order_by(opp.c.CloseDate.desc())
                    .limit(100)
                ).mappings()
            ]
        return {
            "object": object_name,
            "record": record,
            "related": related,
            "panel": _marketing_panel(conn, object_name, record),
        }


def _linked_prospects(
    conn: Connection, object_name: str, record: dict[str, Any]
) -> list[tuple[dict[str, Any], str]]:
    """Prospects behind a lead or contact: by CRM id when synced, else by the email key (how the
    connector will match them); for accounts and opportunities, those of their contacts."""
    from renkei.core.identity import email_key

    p = t.prospect
    cols = (
        p.c.id,
        p.c.email,
        p.c.firstName,
        p.c.lastName,
        p.c.score,
        p.c.grade,
        p.c.createdAt,
        p.c.lastActivityAt,
    )
    found: list[tuple[dict[str, Any], str]] = []
    if object_name in ("Lead", "Contact"):
        link = p.c.salesforceLeadId if object_name == "Lead" else p.c.salesforceContactId
        rows = (
            conn.execute(
                sa.select(*cols).where(
                    _live(), sa.or_(link == record["Id"], p.c.salesforceId == record["Id"])
                )
            )
            .mappings()
            .all()
        )
        found = [(dict(r), "crm-id") for r in rows]
        key = email_key(record.get("Email") or "")
        if not found and key:
            rows = conn.execute(sa.select(*cols).where(_live(), p.c.emailKey == key)).mappings().all()
            found = [(dict(r), "email") for r in rows]
        return found
    contact = t.CRM_TABLES["Contact"]
    account_id = record["Id"] if object_name == "Account" else record.get("AccountId")
    if not account_id:
        return []
    emails = [
        email_key(e)
        for e in conn.execute(
            sa.select(contact.c.Email)
            .where(contact.c.AccountId == account_id, contact.c.IsDeleted.is_(False))
            .limit(200)
        ).scalars()
        if e
    ]
    if not emails:
        return []
    rows = (
        conn.execute(sa.select(*cols).where(_live(), p.c.emailKey.in_([e for e in emails if e])))
        .mappings()
        .all()
    )
    return [(dict(r), "account") for r in rows]


def _marketing_panel(conn: Connection, object_name: str, record: dict[str, Any]) -> dict[str, Any]:
    prospects = _linked_prospects(conn, object_name, record)
    ids = [p["id"] for p, _ in prospects]
    va = t.visitor_activity
    history = []
    if ids:
        history = [
            dict(r)
            for r in conn.execute(
                sa.select(va.c.id, va.c.prospectId, va.c.type, va.c.typeName, va.c.details, va.c.createdAt)
                .where(va.c.prospectId.in_(ids))
                .order_by(va.c.createdAt.desc(), va.c.id.desc())
                .limit(50)
            ).mappings()
        ]
    return {"prospects": [dict(p, linkedBy=how) for p, how in prospects], "history": history}


# ---------------------------------------------------------------------------------------------
# Connector console


def connector_installed() -> bool:
    return landed("renkei.connector.settings") and landed("renkei.connector.check")


_PERSONAL = frozenset({
    "email", "salutation", "firstName", "lastName", "company", "jobTitle", "department", "phone", "fax",
    "addressOne", "addressTwo", "city", "state", "zip", "country", "territory",
})  # fmt: skip
_INQUIRY = frozenset({"comments", "notes"})
_COMPUTED = frozenset(
    {"score", "grade", "createdAt", "lastActivityAt", "firstActivityAt", "convertedAt", "campaignId"}
)
_CONSENT = frozenset({"optedOut", "isDoNotEmail", "isDoNotCall", "doNotSell"})


def recommended_rule(ma_field: str) -> str | None:
    """The seed's guidance for a prospect field: personal details CRM wins (business-card data is
    cleaner), inquiry contents marketing wins, computed values marketing → CRM, consent both ways."""
    if ma_field in _PERSONAL:
        return "crm_wins"
    if ma_field in _INQUIRY or ma_field.endswith("__c"):
        return "ma_wins"
    if ma_field in _COMPUTED or ma_field.endswith("Parameter"):
        return "ma_to_crm"
    if ma_field in _CONSENT:
        return "most_recent"
    return None


def sync_runs(engine: Engine, limit: int = 20) -> list[dict[str, Any]]:
    from renkei.store.tables_sync import sync_run

    with engine.connect() as conn:
        query = sa.select(sync_run).order_by(sync_run.c.id.desc()).limit(limit)
        return [dict(r) for r in conn.execute(query).mappings()]
