"""Reports: built-in reports from the seeds and analytics, and saved reports with rule filters.

A report is a table (``columns`` + ``rows``) exportable as JSON or CSV (optionally with a UTF-8
BOM for Excel). Built-in reports:

- ``leads-web-visits``: CRM leads with web visits in the last 7 days (seed 000)
- ``lost-reengaged``: contacts on opportunities lost over a year ago who were active in the last
  30 days (seed 000)
- ``score-grade``: prospects by score band and grade
- ``funnel``: the lead-phase funnel visitor → prospect → MQL → sales accepted → opportunity → won,
  with conversion rates and average days in the previous phase
- ``campaign-influence``: won amount credited to campaigns by first touch, last touch and even
  distribution over the campaigns a won opportunity's prospects touched before it was created
- ``campaign-roi``: campaign cost against won amount (primary campaign and even-distribution
  influence)

Saved reports (table ``report_definition``) filter live prospects by a rule, group them by
prospect fields (or ``scoreBand``) and compute ``count`` and ``sum:FIELD`` / ``avg:FIELD``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from renkei.clock import Clock, SystemClock
from renkei.core.activities import ActivityType
from renkei.core.rules.evaluate import Moment
from renkei.core.rules.model import GRADE_ORDER, Kind, validate
from renkei.core.rules.text import format_rule, parse_rule
from renkei.core.soql import check_query, parse_query
from renkei.crm.soql_sql import run_query
from renkei.errors import InputError, NotFoundError
from renkei.segments.compile import context_for, members_query
from renkei.store import tables as t
from renkei.store.dynamic import load_crm_schema
from renkei.store.tables_segments import report_definition


@dataclass(frozen=True, slots=True)
class Report:
    name: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]
    summary: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "title": self.title, "columns": list(self.columns)}
        out["rows"] = [dict(r) for r in self.rows]
        if self.summary is not None:
            out["summary"] = dict(self.summary)
        return out

    def to_csv(self, *, bom: bool = False) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(self.columns)
        for row in self.rows:
            writer.writerow([_csv_value(row.get(c)) for c in self.columns])
        return ("\ufeff" if bom else "") + buffer.getvalue()


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


#: Activity types that show a prospect engaging (not sends, opens, bounces or opportunity events).
ENGAGED_TYPES = tuple(int(a) for a in ActivityType if not a.passive and a is not ActivityType.SPAM_COMPLAINT)
SCORE_BANDS: tuple[tuple[str, int | None, int | None], ...] = (
    ("<0", None, 0),
    ("0-24", 0, 25),
    ("25-49", 25, 50),
    ("50-99", 50, 100),
    ("100+", 100, None),
)


def _score_band(score: Any) -> Any:
    whens = []
    for label, low, high in SCORE_BANDS:
        conds = []
        if low is not None:
            conds.append(score >= low)
        if high is not None:
            conds.append(score < high)
        whens.append((sa.and_(*conds), label))
    return sa.case(*whens, else_="none")


class ReportService:
    def __init__(self, engine: Engine, *, clock: Clock | None = None, tz: str = "Asia/Tokyo") -> None:
        self.engine = engine
        self.clock = clock or SystemClock()
        self.tz = tz
        self._builtins: dict[str, tuple[str, Callable[[Connection, Moment], Report]]] = {
            "leads-web-visits": ("Leads with web visits in the last 7 days", self._leads_web_visits),
            "lost-reengaged": ("Contacts on opportunities lost over a year ago, active in the last 30 days", self._lost_reengaged),
            "score-grade": ("Prospects by score band and grade", self._score_grade),
            "funnel": ("Lead-phase funnel with conversion rates and time in phase", self._funnel),
            "campaign-influence": ("Won amount by campaign: first touch, last touch, even distribution", self._influence),
            "campaign-roi": ("Campaign cost against won amount", self._roi),
        }  # fmt: skip

    # -- catalogue ------------------------------------------------------------------------------

    def reports(self) -> list[dict[str, Any]]:
        out = [{"name": n, "kind": "built-in", "title": title} for n, (title, _) in self._builtins.items()]
        with self.engine.connect() as conn:
            for row in conn.execute(
                sa.select(report_definition).order_by(report_definition.c.name)
            ).mappings():
                out.append({"name": row["name"], "kind": "saved", "title": row["description"] or row["name"]})
        return out

    def save(
        self,
        name: str,
        *,
        rule: str | None = None,
        group_by: Sequence[str] = (),
        measures: Sequence[str] = ("count",),
        description: str | None = None,
        soql: str | None = None,
    ) -> dict[str, Any]:
        """Save (or replace) a report: over prospects (rule filter, grouping, measures), or on the
        CRM side as a SOQL query (any object, ``VisitorActivity`` and ``VisitorPageView`` too)."""
        if name in self._builtins:
            raise InputError(f"'{name}' is a built-in report name", code="DUPLICATE_VALUE")
        now = self.clock.now()
        with self.engine.begin() as conn:
            if soql is not None:
                if rule or group_by:
                    raise InputError("a SOQL report takes no --rule or --group-by", code="INVALID_ARGUMENT")
                check_query(parse_query(soql), load_crm_schema(conn).objects, now=now, tz=self.tz)
                definition: dict[str, Any] = {"soql": soql}
            else:
                definition = self._check(conn, rule, list(group_by), list(measures))
            existing = conn.execute(
                sa.select(report_definition.c.id).where(report_definition.c.name == name)
            ).scalar()
            values = {"definition": definition, "description": description, "updatedAt": now}
            if existing is None:
                conn.execute(report_definition.insert().values(name=name, createdAt=now, **values))
            else:
                conn.execute(
                    report_definition.update().where(report_definition.c.id == existing).values(**values)
                )
        return {"name": name, "description": description, **definition}

    def delete(self, name: str) -> None:
        with self.engine.begin() as conn:
            if not conn.execute(report_definition.delete().where(report_definition.c.name == name)).rowcount:
                raise NotFoundError(f"saved report '{name}' not found")

    def _check(
        self, conn: Connection, rule: str | None, group_by: list[str], measures: list[str]
    ) -> dict[str, Any]:
        ctx = context_for(conn, Moment(self.clock.now(), self.tz))
        text = None
        if rule:
            node = parse_rule(rule)
            validate(node, ctx.catalog)
            text = format_rule(node)
        for g in group_by:
            if g != "scoreBand" and g not in ctx.catalog.prospect:
                raise InputError(f"cannot group by unknown prospect field '{g}'", code="INVALID_FIELD")
        if not measures:
            raise InputError(
                "a report needs at least one measure (count, sum:FIELD, avg:FIELD)", code="INVALID_FIELD"
            )
        for m in measures:
            fn, _, fld = m.partition(":")
            if m == "count":
                continue
            if fn not in ("sum", "avg") or ctx.catalog.prospect.get(fld) is not Kind.NUMBER:
                raise InputError(
                    f"bad measure '{m}': use count, sum:FIELD or avg:FIELD on a number field",
                    code="INVALID_FIELD",
                )
        return {"rule": text, "groupBy": group_by, "measures": measures}

    # -- running --------------------------------------------------------------------------------

    def run(self, name: str) -> Report:
        moment = Moment(self.clock.now(), self.tz)
        with self.engine.connect() as conn:
            if name in self._builtins:
                return self._builtins[name][1](conn, moment)
            row = (
                conn.execute(sa.select(report_definition).where(report_definition.c.name == name))
                .mappings()
                .first()
            )
            if row is None:
                names = ", ".join(self._builtins)
                raise NotFoundError(f"report '{name}' not found (built-in: {names}; or a saved report)")
            title, definition = row["description"] or name, row["definition"]
            if "soql" in definition:
                return self._soql(conn, name, title, definition["soql"], moment)
            return self._saved(conn, name, title, definition, moment)

    def _soql(self, conn: Connection, name: str, title: str, soql: str, moment: Moment) -> Report:
        result = run_query(
            conn, load_crm_schema(conn), soql, include_deleted=False, now=moment.now, tz=self.tz
        )
        rows = [_flatten(r) for r in result["records"]]
        columns = list(dict.fromkeys(k for r in rows for k in r))
        return Report(name, title, tuple(columns), tuple(rows), {"totalSize": result["totalSize"]})

    def _saved(
        self, conn: Connection, name: str, title: str, definition: dict[str, Any], moment: Moment
    ) -> Report:
        ctx = context_for(conn, moment)
        p = ctx.prospect
        ids = members_query(parse_rule(definition["rule"]), ctx) if definition.get("rule") else None
        keys = [
            (_score_band(p.c.score) if g == "scoreBand" else p.c[g]).label(g) for g in definition["groupBy"]
        ]
        measures = []
        for m in definition["measures"]:
            fn, _, fld = m.partition(":")
            if m == "count":
                measures.append(sa.func.count().label("count"))
            else:
                measures.append(getattr(sa.func, fn)(p.c[fld]).label(m))
        query = sa.select(*keys, *measures).select_from(p)
        query = query.where(p.c.id.in_(ids)) if ids is not None else query.where(p.c.isDeleted.is_not(True))
        if keys:
            query = query.group_by(*keys).order_by(*keys)
        rows = tuple({k: _round(v) for k, v in r.items()} for r in conn.execute(query).mappings())
        return Report(name, title, tuple(definition["groupBy"]) + tuple(definition["measures"]), rows)

    # -- built-in reports -----------------------------------------------------------------------

    def _rule_ids(self, conn: Connection, moment: Moment, rule: str) -> Any:
        return members_query(parse_rule(rule), context_for(conn, moment))

    def _leads_web_visits(self, conn: Connection, moment: Moment) -> Report:
        ids = self._rule_ids(
            conn,
            moment,
            "all(salesforceLeadId is not empty, has activity(type in (VISIT), within last 7 days))",
        )
        p, va = t.prospect, t.visitor_activity
        start = moment.now - dt.timedelta(days=7)
        visits = (
            sa.select(
                va.c.prospectId,
                sa.func.count().label("visits"),
                sa.func.max(va.c.createdAt).label("lastVisitAt"),
            )
            .where(va.c.type == int(ActivityType.VISIT), va.c.createdAt.between(start, moment.now))
            .group_by(va.c.prospectId)
            .subquery()
        )
        query = (
            sa.select(
                p.c.id.label("prospectId"), p.c.salesforceLeadId, p.c.email, p.c.lastName, p.c.firstName,
                p.c.company, p.c.score, p.c.grade, visits.c.visits, visits.c.lastVisitAt,
            )
            .select_from(p.join(visits, visits.c.prospectId == p.c.id))
            .where(p.c.id.in_(ids))
            .order_by(visits.c.lastVisitAt.desc(), p.c.id)
        )  # fmt: skip
        rows = tuple(dict(r) for r in conn.execute(query).mappings())
        columns = ("prospectId", "salesforceLeadId", "email", "lastName", "firstName", "company", "score", "grade",
                   "visits", "lastVisitAt")  # fmt: skip
        return Report("leads-web-visits", self._builtins["leads-web-visits"][0], columns, rows)

    def _lost_reengaged(self, conn: Connection, moment: Moment) -> Report:
        engaged = ", ".join(ActivityType(c).name for c in ENGAGED_TYPES)
        rule = (
            "all(salesforceContactId is not empty, "
            "has opportunity(isClosed = true, isWon = false, closeDate not within last 12 months), "
            f"has activity(type in ({engaged}), within last 30 days))"
        )
        ids = self._rule_ids(conn, moment, rule)
        p, o, link, va = t.prospect, t.opportunity, t.opportunity_prospect, t.visitor_activity
        lost = (
            sa.select(link.c.prospectId, sa.func.max(o.c.closeDate).label("lostCloseDate"))
            .select_from(link.join(o, o.c.id == link.c.opportunityId))
            .where(o.c.isClosed.is_(True), o.c.isWon.is_not(True), o.c.isDeleted.is_not(True))
            .group_by(link.c.prospectId)
            .subquery()
        )
        recent = (
            sa.select(va.c.prospectId, sa.func.count().label("recentActivities"))
            .where(
                va.c.type.in_(ENGAGED_TYPES),
                va.c.createdAt.between(moment.now - dt.timedelta(days=30), moment.now),
            )
            .group_by(va.c.prospectId)
            .subquery()
        )
        query = (
            sa.select(
                p.c.id.label("prospectId"), p.c.salesforceContactId, p.c.email, p.c.lastName, p.c.firstName,
                p.c.company, lost.c.lostCloseDate, recent.c.recentActivities, p.c.lastActivityAt,
            )
            .select_from(p.join(lost, lost.c.prospectId == p.c.id).join(recent, recent.c.prospectId == p.c.id))
            .where(p.c.id.in_(ids))
            .order_by(p.c.id)
        )  # fmt: skip
        rows = tuple(dict(r) for r in conn.execute(query).mappings())
        columns = ("prospectId", "salesforceContactId", "email", "lastName", "firstName", "company", "lostCloseDate",
                   "recentActivities", "lastActivityAt")  # fmt: skip
        return Report("lost-reengaged", self._builtins["lost-reengaged"][0], columns, rows)

    def _score_grade(self, conn: Connection, moment: Moment) -> Report:
        p = t.prospect
        band = _score_band(p.c.score).label("scoreBand")
        grade = sa.func.coalesce(sa.func.nullif(p.c.grade, ""), "none").label("grade")
        query = sa.select(band, grade, sa.func.count().label("prospects")).where(p.c.isDeleted.is_not(True))
        counts = {(r.scoreBand, r.grade): r.prospects for r in conn.execute(query.group_by(band, grade))}
        band_order = [b[0] for b in SCORE_BANDS] + ["none"]
        grade_order = list(reversed(GRADE_ORDER)) + ["none"]
        rows = tuple(
            {"scoreBand": b, "grade": g, "prospects": counts[(b, g)]}
            for b in band_order
            for g in grade_order
            if (b, g) in counts
        )
        total = sum(counts.values())
        return Report(
            "score-grade",
            self._builtins["score-grade"][0],
            ("scoreBand", "grade", "prospects"),
            rows,
            {"prospects": total},
        )

    def _funnel(self, conn: Connection, moment: Moment) -> Report:
        """Stages by the first time each prospect reached them; a prospect counts in every stage
        it reached. MQL = assigned to sales (``firstAssignedAt``), as AE's lifecycle report;
        sales accepted = its CRM lead converted (``ConvertedDate``)."""
        p, v, o, link = t.prospect, t.visitor, t.opportunity, t.opportunity_prospect
        visitors = conn.execute(sa.select(sa.func.count()).select_from(v)).scalar_one()
        first_visit = dict(
            conn.execute(
                sa.select(v.c.prospectId, sa.func.min(v.c.createdAt))
                .where(v.c.prospectId.is_not(None))
                .group_by(v.c.prospectId)
            ).all()
        )
        lead = load_crm_schema(conn).tables["Lead"]
        converted = dict(
            conn.execute(
                sa.select(p.c.id, lead.c.ConvertedDate)
                .select_from(p.join(lead, lead.c.Id == p.c.salesforceLeadId))
                .where(lead.c.IsConverted.is_(True))
            ).all()
        )
        opened = dict(
            conn.execute(
                sa.select(link.c.prospectId, sa.func.min(o.c.createdAt))
                .select_from(link.join(o, o.c.id == link.c.opportunityId))
                .where(o.c.isDeleted.is_not(True))
                .group_by(link.c.prospectId)
            ).all()
        )
        won = dict(
            conn.execute(
                sa.select(link.c.prospectId, sa.func.min(o.c.closeDate))
                .select_from(link.join(o, o.c.id == link.c.opportunityId))
                .where(o.c.isDeleted.is_not(True), o.c.isWon.is_(True))
                .group_by(link.c.prospectId)
            ).all()
        )
        stages: dict[str, dict[int, Any]] = {
            "prospect": {},
            "mql": {},
            "salesAccepted": {},
            "opportunity": {},
            "won": {},
        }
        for pid, created, assigned in conn.execute(
            sa.select(p.c.id, p.c.createdAt, p.c.firstAssignedAt).where(p.c.isDeleted.is_not(True))
        ):
            stages["prospect"][pid] = created
            if assigned is not None:
                stages["mql"][pid] = assigned
            for name, source in (("salesAccepted", converted), ("opportunity", opened), ("won", won)):
                if source.get(pid) is not None:
                    stages[name][pid] = source[pid]
        rows: list[dict[str, Any]] = [
            {"stage": "visitor", "count": visitors, "conversionRate": None, "avgDaysInPreviousStage": None}
        ]
        previous_count, previous_times = visitors, first_visit
        for name, reached in stages.items():
            spans = [
                _days(previous_times[pid], when) for pid, when in reached.items() if pid in previous_times
            ]
            days = [d for d in spans if d is not None and d >= 0]
            rows.append(
                {
                    "stage": name,
                    "count": len(reached),
                    "conversionRate": round(len(reached) / previous_count, 4) if previous_count else None,
                    "avgDaysInPreviousStage": round(sum(days) / len(days), 2) if days else None,
                }
            )
            previous_count, previous_times = len(reached), reached
        columns = ("stage", "count", "conversionRate", "avgDaysInPreviousStage")
        return Report("funnel", self._builtins["funnel"][0], columns, tuple(rows))

    def _touches(
        self, conn: Connection
    ) -> tuple[list[dict[str, Any]], dict[int, list[tuple[dt.datetime, int]]]]:
        """Won opportunities, and each prospect's campaign touches (time, campaign) in order."""
        o, link, va = t.opportunity, t.opportunity_prospect, t.visitor_activity
        won = [
            dict(r)
            for r in conn.execute(
                sa.select(o.c.id, o.c.amount, o.c.createdAt, o.c.campaignId)
                .where(o.c.isWon.is_(True), o.c.isDeleted.is_not(True))
                .order_by(o.c.id)
            ).mappings()
        ]
        prospects: dict[int, list[int]] = defaultdict(list)
        for oid, pid in conn.execute(sa.select(link.c.opportunityId, link.c.prospectId)):
            prospects[oid].append(pid)
        touches: dict[int, list[tuple[dt.datetime, int]]] = defaultdict(list)
        query = (
            sa.select(va.c.prospectId, va.c.createdAt, va.c.campaignId)
            .where(va.c.campaignId.is_not(None), va.c.prospectId.in_(sa.select(link.c.prospectId)))
            .order_by(va.c.createdAt, va.c.id)
        )
        for pid, when, campaign_id in conn.execute(query):
            touches[pid].append((when, campaign_id))
        for opp in won:
            opp["touches"] = sorted(
                (when, cid)
                for pid in prospects[opp["id"]]
                for when, cid in touches[pid]
                if when <= opp["createdAt"]
            )
        return won, touches

    def _campaign_names(self, conn: Connection) -> dict[int, dict[str, Any]]:
        c = t.campaign
        return {r["id"]: dict(r) for r in conn.execute(sa.select(c.c.id, c.c.name, c.c.cost)).mappings()}

    def _credit(self, conn: Connection) -> dict[int, dict[str, float]]:
        credit: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        won, _ = self._touches(conn)
        for opp in won:
            amount = float(opp["amount"] or 0)
            touches = opp["touches"]
            if not touches:
                continue
            credit[touches[0][1]]["firstTouch"] += amount
            credit[touches[-1][1]]["lastTouch"] += amount
            touched = sorted({cid for _, cid in touches})
            for cid in touched:
                credit[cid]["evenDistribution"] += amount / len(touched)
                credit[cid]["opportunities"] += 1
        return credit

    def _influence(self, conn: Connection, moment: Moment) -> Report:
        credit = self._credit(conn)
        names = self._campaign_names(conn)
        rows = tuple(
            {
                "campaignId": cid,
                "campaign": names.get(cid, {}).get("name"),
                "opportunities": int(c["opportunities"]),
                "firstTouch": round(c["firstTouch"], 2),
                "lastTouch": round(c["lastTouch"], 2),
                "evenDistribution": round(c["evenDistribution"], 2),
            }
            for cid, c in sorted(credit.items())
        )
        columns = ("campaignId", "campaign", "opportunities", "firstTouch", "lastTouch", "evenDistribution")
        return Report("campaign-influence", self._builtins["campaign-influence"][0], columns, rows)

    def _roi(self, conn: Connection, moment: Moment) -> Report:
        o = t.opportunity
        primary = dict(
            conn.execute(
                sa.select(o.c.campaignId, sa.func.sum(o.c.amount))
                .where(o.c.isWon.is_(True), o.c.isDeleted.is_not(True), o.c.campaignId.is_not(None))
                .group_by(o.c.campaignId)
            ).all()
        )
        credit = self._credit(conn)
        rows = []
        for cid, campaign in sorted(self._campaign_names(conn).items()):
            cost = float(campaign["cost"] or 0)
            won = float(primary.get(cid) or 0)
            influenced = credit.get(cid, {}).get("evenDistribution", 0.0)
            rows.append(
                {
                    "campaignId": cid,
                    "campaign": campaign["name"],
                    "cost": cost,
                    "wonAmount": round(won, 2),
                    "roi": round((won - cost) / cost, 4) if cost else None,
                    "influencedWonAmount": round(influenced, 2),
                    "influencedRoi": round((influenced - cost) / cost, 4) if cost else None,
                }
            )
        columns = (
            "campaignId",
            "campaign",
            "cost",
            "wonAmount",
            "roi",
            "influencedWonAmount",
            "influencedRoi",
        )
        return Report("campaign-roi", self._builtins["campaign-roi"][0], columns, tuple(rows))


def _flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A SOQL record as one row: ``attributes`` dropped, parent records as ``Lead.Company``."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key == "attributes":
            continue
        if isinstance(value, Mapping) and "records" not in value:
            out.update(_flatten(value, f"{prefix}{key}."))
        elif isinstance(value, Mapping):
            out[f"{prefix}{key}"] = value.get("totalSize")
        else:
            out[f"{prefix}{key}"] = value
    return out


def _days(start: Any, end: Any) -> float | None:
    if start is None or end is None:
        return None
    if not isinstance(start, dt.datetime):
        start = dt.datetime.combine(start, dt.time(), dt.UTC)
    if not isinstance(end, dt.datetime):
        end = dt.datetime.combine(end, dt.time(), dt.UTC)
    return float((end - start).total_seconds() / 86400)


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


# ---------------------------------------------------------------------------------------------
# Marketing calendar


def marketing_calendar(
    engine: Engine, start: dt.date, end: dt.date, *, tz: str = "Asia/Tokyo"
) -> list[dict[str, Any]]:
    """Scheduled list emails and campaign starts/ends between two dates (inclusive), by date."""
    from zoneinfo import ZoneInfo

    from renkei.store.tables_email import list_email

    if end < start:
        raise InputError("the calendar's end is before its start", code="INVALID_ARGUMENT")
    zone = ZoneInfo(tz)
    lo = dt.datetime.combine(start, dt.time(), zone).astimezone(dt.UTC)
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), zone).astimezone(dt.UTC)
    items: list[dict[str, Any]] = []
    c = t.campaign
    with engine.connect() as conn:
        query = sa.select(
            list_email.c.id, list_email.c.name, list_email.c.scheduledAt, list_email.c.campaignId
        ).where(
            list_email.c.status == "scheduled", list_email.c.scheduledAt >= lo, list_email.c.scheduledAt < hi
        )
        for r in conn.execute(query).mappings():
            items.append(
                {
                    "date": r["scheduledAt"].astimezone(zone).date().isoformat(),
                    "at": r["scheduledAt"],
                    "kind": "list_email",
                    "id": r["id"],
                    "title": r["name"],
                    "campaignId": r["campaignId"],
                }
            )
        for column, kind in ((c.c.startDate, "campaign_start"), (c.c.endDate, "campaign_end")):
            query2 = sa.select(c.c.id, c.c.name, column.label("day")).where(column >= start, column <= end)
            for r in conn.execute(query2).mappings():
                items.append(
                    {
                        "date": r["day"].isoformat(),
                        "at": None,
                        "kind": kind,
                        "id": r["id"],
                        "title": r["name"],
                        "campaignId": r["id"],
                    }
                )
    items.sort(
        key=lambda i: (i["date"], i["at"] or dt.datetime.min.replace(tzinfo=dt.UTC), i["kind"], i["id"])
    )
    return items
