"""Visitor activities over the store: recording (with the effect on the prospect's activity dates
and score), the prospect's timeline, and moving a visitor's history onto a prospect.

Other features record activities through ``record_activities(conn, …)`` inside their own
transaction (the connector for opportunity events, email for sends/opens/clicks, …), so the
``lastActivityAt`` rule and the scoring model are applied in one place.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from renkei.clock import Clock, SystemClock, ensure_utc
from renkei.core.activities import ActivityType, AssetKind, moves_last_activity, type_label
from renkei.core.scoring import ScoreModel
from renkei.errors import InputError, NotFoundError
from renkei.marketing.scoring_service import current_model, recompute
from renkei.store import tables as t

#: ``visitor_activity`` columns naming the asset or event an activity is about.
REFERENCE_COLUMNS = (
    "visitId",
    "campaignId",
    "emailId",
    "emailTemplateId",
    "listEmailId",
    "formId",
    "formHandlerId",
    "landingPageId",
    "fileId",
    "customRedirectId",
    "visitorPageViewId",
    "opportunityId",
)


@dataclass(frozen=True, slots=True)
class NewActivity:
    """An activity to record: AE type code, asset kind (``typeName``), who and what it is about."""

    type: ActivityType | int
    type_name: AssetKind | str | None
    prospect_id: int | None = None
    visitor_id: int | None = None
    details: str | None = None
    refs: Mapping[str, Any] = field(default_factory=dict)
    at: dt.datetime | None = None

    def __post_init__(self) -> None:
        unknown = set(self.refs) - set(REFERENCE_COLUMNS)
        if unknown:
            raise InputError(
                f"unknown activity references: {', '.join(sorted(unknown))}", code="INVALID_FIELD"
            )
        if self.prospect_id is None and self.visitor_id is None:
            raise InputError("an activity belongs to a prospect or a visitor", code="REQUIRED_FIELD_MISSING")

    @property
    def type_name_text(self) -> str | None:
        return self.type_name.value if isinstance(self.type_name, AssetKind) else self.type_name


def record_activities(
    conn: Connection, activities: Sequence[NewActivity], now: dt.datetime, model: ScoreModel | None = None
) -> list[int]:
    """Insert the activities and apply their effect on each prospect: ``lastActivityAt`` and
    ``firstActivityAt`` for the types AE counts, the score by the current model."""
    if not activities:
        return []
    model = model or current_model(conn)
    va = t.visitor_activity
    ids: list[int] = []
    effects: dict[int, _Effect] = {}
    for a in activities:
        when = ensure_utc(a.at) if a.at else now
        row = {c: None for c in REFERENCE_COLUMNS} | dict(a.refs)
        row.update(
            type=int(a.type),
            typeName=a.type_name_text,
            details=(a.details or None) and a.details[:2048],
            prospectId=a.prospect_id,
            visitorId=a.visitor_id,
            createdAt=when,
            updatedAt=when,
        )
        ids.append(int(conn.execute(va.insert().values(row).returning(va.c.id)).scalar_one()))
        if a.prospect_id is not None:
            effect = effects.setdefault(a.prospect_id, _Effect())
            effect.points += model.activity_points_for(int(a.type), a.type_name_text, a.refs)
            if moves_last_activity(int(a.type)):
                effect.touch(when)
    for pid, effect in effects.items():
        apply_effect(conn, pid, effect.points, effect.first, effect.last, now)
    return ids


@dataclass(slots=True)
class _Effect:
    points: int = 0
    first: dt.datetime | None = None
    last: dt.datetime | None = None

    def touch(self, when: dt.datetime) -> None:
        self.first = when if self.first is None or when < self.first else self.first
        self.last = when if self.last is None or when > self.last else self.last


def apply_effect(
    conn: Connection,
    prospect_id: int,
    points: int,
    first: dt.datetime | None,
    last: dt.datetime | None,
    now: dt.datetime,
) -> None:
    """Move a prospect's score by ``points`` and its activity dates to include [first, last]."""
    p = t.prospect.c
    values: dict[str, Any] = {}
    if points:
        values["score"] = sa.func.coalesce(p.score, 0) + points
    if last is not None and first is not None:
        values["lastActivityAt"] = sa.case(
            (sa.or_(p.lastActivityAt.is_(None), p.lastActivityAt < last), last), else_=p.lastActivityAt
        )
        values["firstActivityAt"] = sa.case(
            (sa.or_(p.firstActivityAt.is_(None), p.firstActivityAt > first), first), else_=p.firstActivityAt
        )
    if values:
        values["updatedAt"] = now
        conn.execute(t.prospect.update().where(p.id == prospect_id).values(values))


def move_visitor_history(
    conn: Connection, visitor_ids: Sequence[int], prospect_id: int, now: dt.datetime
) -> None:
    """Attach visitors and their earlier visits, page views and activities to a prospect, then
    bring its activity dates and score in line with the history it gained."""
    if not visitor_ids:
        return
    ids = list(visitor_ids)
    conn.execute(
        t.visitor.update()
        .where(t.visitor.c.id.in_(ids))
        .values(prospectId=prospect_id, isIdentified=True, updatedAt=now)
    )
    for table in (t.visit, t.visitor_page_view, t.visitor_activity):
        conn.execute(
            table.update()
            .where(table.c.visitorId.in_(ids), table.c.prospectId.is_(None))
            .values(prospectId=prospect_id)
        )
    refresh_activity_dates(conn, prospect_id, now)
    recompute(conn, [prospect_id], now)


def refresh_activity_dates(conn: Connection, prospect_id: int, now: dt.datetime) -> None:
    """first/lastActivityAt recomputed from the non-passive activities and page views."""
    va, pv = t.visitor_activity, t.visitor_page_view
    active_codes = [c.value for c in ActivityType if moves_last_activity(c.value)]
    dates = sa.union_all(
        sa.select(va.c.createdAt.label("at")).where(
            va.c.prospectId == prospect_id, va.c.type.in_(active_codes)
        ),
        sa.select(pv.c.createdAt.label("at")).where(pv.c.prospectId == prospect_id),
    ).subquery()
    first, last = conn.execute(sa.select(sa.func.min(dates.c.at), sa.func.max(dates.c.at))).one()
    if first is not None:
        apply_effect(conn, prospect_id, 0, ensure_utc(first), ensure_utc(last), now)


class ActivityService:
    def __init__(self, engine: Engine, *, clock: Clock | None = None) -> None:
        self.engine = engine
        self.clock = clock or SystemClock()

    def record(self, activity: NewActivity) -> int:
        with self.engine.begin() as conn:
            if activity.prospect_id is not None:
                _require_prospect(conn, activity.prospect_id)
            return record_activities(conn, [activity], self.clock.now())[0]

    def timeline(
        self, prospect_id: int, *, limit: int = 200, page_views: bool = True
    ) -> list[dict[str, Any]]:
        """The prospect's activities (and page views), newest first, each with its points under
        the current scoring model."""
        va, pv = t.visitor_activity, t.visitor_page_view
        with self.engine.connect() as conn:
            _require_prospect(conn, prospect_id)
            model = current_model(conn)
            rows = conn.execute(
                sa.select(va)
                .where(va.c.prospectId == prospect_id)
                .order_by(va.c.createdAt.desc(), va.c.id.desc())
                .limit(limit)
            ).mappings()
            items = [activity_json(dict(r), model) for r in rows]
            if page_views:
                views = conn.execute(
                    sa.select(pv)
                    .where(pv.c.prospectId == prospect_id)
                    .order_by(pv.c.createdAt.desc(), pv.c.id.desc())
                    .limit(limit)
                ).mappings()
                items += [page_view_json(dict(r), model) for r in views]
        items.sort(key=lambda i: (i["createdAt"], i["kind"] == "page_view", i["id"]), reverse=True)
        return items[:limit]

    def visitor_activities(
        self, *, prospect_id: int | None = None, limit: int = 1000, offset: int = 0
    ) -> list[dict[str, Any]]:
        """v5 ``visitor-activities`` rows (ids ascending), optionally for one prospect."""
        va = t.visitor_activity
        query = sa.select(va).order_by(va.c.id).limit(min(limit, 1000)).offset(offset)
        if prospect_id is not None:
            query = query.where(va.c.prospectId == prospect_id)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]


def _require_prospect(conn: Connection, prospect_id: int) -> None:
    if conn.execute(sa.select(t.prospect.c.id).where(t.prospect.c.id == prospect_id)).first() is None:
        raise NotFoundError(f"prospect {prospect_id} not found")


def activity_json(row: Mapping[str, Any], model: ScoreModel) -> dict[str, Any]:
    refs = {c: row[c] for c in REFERENCE_COLUMNS if row.get(c) is not None}
    return {
        "kind": "activity",
        "id": row["id"],
        "type": row["type"],
        "typeLabel": type_label(row["type"]),
        "typeName": row["typeName"],
        "details": row["details"],
        "movesLastActivity": moves_last_activity(row["type"]),
        "points": model.activity_points_for(row["type"], row["typeName"], refs),
        "visitorId": row["visitorId"],
        **refs,
        "createdAt": ensure_utc(row["createdAt"]),
    }


def page_view_json(row: Mapping[str, Any], model: ScoreModel) -> dict[str, Any]:
    return {
        "kind": "page_view",
        "id": row["id"],
        "url": row["url"],
        "title": row["title"],
        "visitorId": row["visitorId"],
        "visitId": row["visitId"],
        "campaignId": row["campaignId"],
        "movesLastActivity": True,
        "points": model.page_view_points_for(row["url"]),
        "createdAt": ensure_utc(row["createdAt"]),
    }


def record_opportunity_events(
    conn: Connection, now: dt.datetime, *, prospect_ids: Sequence[int] | None = None
) -> int:
    """AE's opportunity activities from the CRM opportunities the connector mirrors
    (``opportunity`` + ``opportunity_prospect``): New Opportunity (8) for each prospect linked to
    an opportunity, then Opportunity Won (9) or Lost (10) once it closes — each recorded once
    per prospect and opportunity, scored by the model (+50 / 0 / −100 by default), and passive:
    ``lastActivityAt`` does not move. Returns how many activities were recorded."""
    o, op, va = t.opportunity, t.opportunity_prospect, t.visitor_activity
    query = (
        sa.select(
            o.c.salesforceId,
            o.c.id,
            o.c.name,
            o.c.isClosed,
            o.c.isWon,
            o.c.createdAt,
            o.c.updatedAt,
            op.c.prospectId,
        )
        .join(op, op.c.opportunityId == o.c.id)
        .where(o.c.isDeleted.is_(False))
    )
    if prospect_ids is not None:
        query = query.where(op.c.prospectId.in_(list(prospect_ids)))
    links = conn.execute(query).all()
    if not links:
        return 0
    codes = [
        int(ActivityType.NEW_OPPORTUNITY),
        int(ActivityType.OPPORTUNITY_WON),
        int(ActivityType.OPPORTUNITY_LOST),
    ]
    done = {
        (r.prospectId, r.opportunityId, r.type)
        for r in conn.execute(
            sa.select(va.c.prospectId, va.c.opportunityId, va.c.type).where(
                va.c.type.in_(codes), va.c.prospectId.in_({link.prospectId for link in links})
            )
        )
    }
    new: list[NewActivity] = []
    for link in links:
        ref = link.salesforceId or str(link.id)
        wanted = [(ActivityType.NEW_OPPORTUNITY, link.createdAt)]
        if link.isClosed:
            wanted.append(
                (
                    ActivityType.OPPORTUNITY_WON if link.isWon else ActivityType.OPPORTUNITY_LOST,
                    link.updatedAt,
                )
            )
        for code, when in wanted:
            if (link.prospectId, ref, int(code)) not in done:
                new.append(NewActivity(code, AssetKind.OPPORTUNITY, prospect_id=link.prospectId, details=link.name,
                                       refs={"opportunityId": ref}, at=when))  # fmt: skip
    record_activities(conn, new, now)
    return len(new)
