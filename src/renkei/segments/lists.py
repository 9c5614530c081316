"""Dynamic, static and suppression lists over the rule language.

A dynamic list keeps its members equal to "live prospects matching the rule now". A full refresh
evaluates the rule over every prospect; an incremental refresh re-evaluates only the prospects
that may have changed since the last run:

- prospects whose ``updatedAt`` is later than the latest one seen by the last run, prospects
  with new ``visitor_activity`` rows (by id), prospects on opportunities / prospect accounts
  whose ``updatedAt`` is later than the latest seen (strictly: rows sharing the latest timestamp
  were visible to the last run, so a bulk import is not re-evaluated again and again);
- prospects logged in ``segment_change`` by the triggers on ``tag_object``, ``list_membership``
  and ``opportunity_prospect`` (these rows carry no timestamp);
- prospects for which a relative window of the rule flips between the last run's "now" and this
  one's (an activity leaving "the last 7 days", a close date entering "the last 12 months").

Incremental membership equals a full refresh (a hypothesis property in the tests). A list that
uses another list sees that list's changes on its next run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from renkei.clock import Clock, SystemClock
from renkei.core.rules.evaluate import Moment, evaluate, explain
from renkei.core.rules.model import (
    WINDOW_OPS,
    ActivityPredicate,
    Condition,
    FieldPredicate,
    Kind,
    Node,
    Op,
    OpportunityPredicate,
    referenced_lists,
    rule_from_json,
    validate,
    walk,
)
from renkei.core.rules.text import format_rule, parse_rule
from renkei.errors import InputError, NotFoundError
from renkei.segments.compile import (
    SqlContext,
    activity_conditions,
    condition_sql,
    context_for,
    live,
    matching_ids,
    members_query,
    opportunity_condition_sql,
    rule_sql,
)
from renkei.segments.facts import load_facts
from renkei.store import tables as t
from renkei.store.tables_segments import segment_change, segment_list

DYNAMIC, STATIC = "dynamic", "static"
_CHUNK = 1000
#: Up to this many candidates an incremental refresh probes each one; above, it evaluates all.
_PROBE_LIMIT = 20_000


@dataclass(frozen=True, slots=True)
class RefreshResult:
    list_id: int
    mode: str  # full, incremental
    evaluated: int | None  # candidates looked at (None: every prospect)
    added: int
    removed: int
    member_count: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "listId": self.list_id,
            "mode": self.mode,
            "evaluated": self.evaluated,
            "added": self.added,
            "removed": self.removed,
            "memberCount": self.member_count,
        }


class SegmentService:
    """Lists kept by rules: create, refresh (full or incremental), members, counts, explain."""

    def __init__(self, engine: Engine, *, clock: Clock | None = None, tz: str = "Asia/Tokyo") -> None:
        self.engine = engine
        self.clock = clock or SystemClock()
        self.tz = tz

    # -- rules ----------------------------------------------------------------------------------

    def parse(self, conn: Connection, text: str, *, list_id: int | None = None) -> Node:
        """Parse and validate rule text against the live schema; lists it names must exist."""
        node = parse_rule(text)
        ctx = context_for(conn, self._moment())
        validate(node, ctx.catalog)
        named = referenced_lists(node)
        if list_id is not None and list_id in named:
            raise InputError(f"list {list_id} cannot use its own membership in its rule", code="INVALID_RULE")
        if named:
            found = set(conn.execute(sa.select(t.list_.c.id).where(t.list_.c.id.in_(named))).scalars())
            missing = sorted(named - found)
            if missing:
                raise NotFoundError(f"the rule names lists that do not exist: {missing}", code="INVALID_RULE")
        return node

    def _moment(self, now: dt.datetime | None = None) -> Moment:
        return Moment(now or self.clock.now(), self.tz)

    # -- lists ----------------------------------------------------------------------------------

    def create(
        self,
        name: str,
        *,
        rule: str | None = None,
        static: bool = False,
        suppression: bool = False,
        description: str | None = None,
    ) -> dict[str, Any]:
        """A dynamic list (rule required, filled now), or a static list (filled once by the rule
        when one is given, then edited by hand). ``suppression`` marks it for exclusion."""
        if not name.strip():
            raise InputError("a list needs a name", code="REQUIRED_FIELD_MISSING")
        if not static and not rule:
            raise InputError("a dynamic list needs --rule (or pass --static)", code="REQUIRED_FIELD_MISSING")
        now = self.clock.now()
        with self.engine.begin() as conn:
            node = self.parse(conn, rule) if rule else None
            list_id = conn.execute(
                t.list_.insert()
                .values(
                    name=name,
                    description=description,
                    isDynamic=not static,
                    isPublic=False,
                    isCrmVisible=False,
                    createdAt=now,
                    updatedAt=now,
                )
                .returning(t.list_.c.id)
            ).scalar_one()
            conn.execute(
                segment_list.insert().values(
                    listId=list_id,
                    kind=STATIC if static else DYNAMIC,
                    isSuppression=suppression,
                    rule=node.to_json() if node else None,
                    ruleText=format_rule(node) if node else None,
                    createdAt=now,
                    updatedAt=now,
                )
            )
            if node is not None:
                self._full(conn, list_id, node, now)
        return self.get(list_id)

    def _row(self, conn: Connection, list_id: int) -> dict[str, Any]:
        row = conn.execute(
            sa.select(t.list_, segment_list.c.kind, segment_list.c.isSuppression, segment_list.c.ruleText,
                      segment_list.c.rule, segment_list.c.refreshedAt)
            .select_from(t.list_.outerjoin(segment_list, segment_list.c.listId == t.list_.c.id))
            .where(t.list_.c.id == list_id)
        ).mappings().first()  # fmt: skip
        if row is None:
            raise NotFoundError(f"list {list_id} not found")
        return dict(row)

    def _shape(self, conn: Connection, row: dict[str, Any]) -> dict[str, Any]:
        m = t.list_membership
        count = conn.execute(sa.select(sa.func.count()).where(m.c.listId == row["id"])).scalar_one()
        kind = row["kind"] or (DYNAMIC if row["isDynamic"] else STATIC)
        return {
            "id": row["id"],
            "name": row["name"],
            "description": row["description"],
            "kind": kind,
            "isDynamic": kind == DYNAMIC,
            "isSuppression": bool(row["isSuppression"]),
            "rule": row["ruleText"],
            "memberCount": count,
            "refreshedAt": row["refreshedAt"],
            "createdAt": row["createdAt"],
            "updatedAt": row["updatedAt"],
        }

    def get(self, list_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            return self._shape(conn, self._row(conn, list_id))

    def lists(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            ids = conn.execute(sa.select(t.list_.c.id).order_by(t.list_.c.id)).scalars().all()
            return [self._shape(conn, self._row(conn, i)) for i in ids]

    def members(self, list_id: int, *, limit: int = 1000, offset: int = 0) -> list[dict[str, Any]]:
        m, p = t.list_membership, t.prospect
        with self.engine.connect() as conn:
            self._row(conn, list_id)
            query = (
                sa.select(p.c.id, p.c.email, p.c.firstName, p.c.lastName, p.c.score, p.c.grade, m.c.optedOut)
                .select_from(m.join(p, p.c.id == m.c.prospectId))
                .where(m.c.listId == list_id)
                .order_by(p.c.id)
                .limit(limit)
                .offset(offset)
            )
            return [dict(r) for r in conn.execute(query).mappings()]

    def member_ids(self, list_id: int) -> set[int]:
        with self.engine.connect() as conn:
            return self._member_ids(conn, list_id)

    def _member_ids(self, conn: Connection, list_id: int, among: Any | None = None) -> set[int]:
        m = t.list_membership
        query = sa.select(m.c.prospectId).where(m.c.listId == list_id)
        if among is not None:
            query = query.where(m.c.prospectId.in_(among))
        return set(conn.execute(query).scalars())

    def add(self, list_id: int, prospect_ids: Iterable[int]) -> int:
        """Add prospects to a static list; returns how many were new."""
        with self.engine.begin() as conn:
            self._static(conn, list_id)
            wanted = set(prospect_ids)
            p = t.prospect
            found = set(conn.execute(sa.select(p.c.id).where(p.c.id.in_(wanted), live(p))).scalars())
            if wanted - found:
                raise NotFoundError(f"prospects not found: {sorted(wanted - found)}")
            new = wanted - self._member_ids(conn, list_id)
            self._write(conn, list_id, new, set(), self.clock.now())
            return len(new)

    def remove(self, list_id: int, prospect_ids: Iterable[int]) -> int:
        with self.engine.begin() as conn:
            self._static(conn, list_id)
            gone = set(prospect_ids) & self._member_ids(conn, list_id)
            self._write(conn, list_id, set(), gone, self.clock.now())
            return len(gone)

    def _static(self, conn: Connection, list_id: int) -> None:
        row = self._row(conn, list_id)
        if (row["kind"] or (DYNAMIC if row["isDynamic"] else STATIC)) == DYNAMIC:
            raise InputError(
                f"list {list_id} is dynamic: its members follow its rule", code="INVALID_OPERATION"
            )

    def set_rule(self, list_id: int, rule: str) -> dict[str, Any]:
        """Replace a dynamic list's rule and refresh it fully."""
        now = self.clock.now()
        with self.engine.begin() as conn:
            row = self._row(conn, list_id)
            if row["kind"] != DYNAMIC:
                raise InputError(f"list {list_id} is not a dynamic list", code="INVALID_OPERATION")
            node = self.parse(conn, rule, list_id=list_id)
            conn.execute(
                segment_list.update()
                .where(segment_list.c.listId == list_id)
                .values(rule=node.to_json(), ruleText=format_rule(node), updatedAt=now)
            )
            self._full(conn, list_id, node, now)
        return self.get(list_id)

    # -- refresh --------------------------------------------------------------------------------

    def refresh(self, list_id: int | None = None, *, full: bool = False) -> list[RefreshResult]:
        """Refresh one dynamic list or all of them (incrementally unless ``full``)."""
        results = []
        with self.engine.connect() as conn:
            query = sa.select(segment_list.c.listId).where(segment_list.c.kind == DYNAMIC)
            if list_id is not None:
                row = self._row(conn, list_id)
                if row["kind"] != DYNAMIC:
                    raise InputError(f"list {list_id} is not a dynamic list", code="INVALID_OPERATION")
                query = query.where(segment_list.c.listId == list_id)
            ids = conn.execute(query.order_by(segment_list.c.listId)).scalars().all()
        for lid in ids:
            with self.engine.begin() as conn:
                state = (
                    conn.execute(sa.select(segment_list).where(segment_list.c.listId == lid)).mappings().one()
                )
                node = rule_from_json(state["rule"])
                now = self.clock.now()
                if full or state["refreshedAt"] is None:
                    results.append(self._full(conn, lid, node, now))
                else:
                    results.append(self._incremental(conn, lid, node, dict(state), now))
        if list_id is None:
            self._prune_changes()
        return results

    def _marks(self, conn: Connection) -> dict[str, Any]:
        p, va, o, a = t.prospect, t.visitor_activity, t.opportunity, t.prospect_account
        return {
            "prospectMark": conn.execute(sa.select(sa.func.max(p.c.updatedAt))).scalar(),
            "activityMark": conn.execute(sa.select(sa.func.max(va.c.id))).scalar() or 0,
            "opportunityMark": conn.execute(sa.select(sa.func.max(o.c.updatedAt))).scalar(),
            "accountMark": conn.execute(sa.select(sa.func.max(a.c.updatedAt))).scalar(),
        }

    def _finish(self, conn: Connection, list_id: int, marks: dict[str, Any], now: dt.datetime) -> None:
        change = conn.execute(sa.select(sa.func.max(segment_change.c.seq))).scalar() or 0
        conn.execute(
            segment_list.update()
            .where(segment_list.c.listId == list_id)
            .values(refreshedAt=now, changeMark=change, **marks)
        )

    def _full(self, conn: Connection, list_id: int, node: Node, now: dt.datetime) -> RefreshResult:
        marks = self._marks(conn)
        wanted = matching_ids(conn, node, context_for(conn, self._moment(now)))
        current = self._member_ids(conn, list_id)
        added, removed = self._write(conn, list_id, wanted - current, current - wanted, now)
        self._finish(conn, list_id, marks, now)
        return RefreshResult(list_id, "full", None, added, removed, len(wanted))

    def _incremental(
        self, conn: Connection, list_id: int, node: Node, state: dict[str, Any], now: dt.datetime
    ) -> RefreshResult:
        marks = self._marks(conn)
        ctx = context_for(conn, self._moment(now))
        before = self._moment(state["refreshedAt"])
        candidates = set(conn.execute(sa.union(*candidate_queries(ctx, node, state, before))).scalars())
        candidates.discard(None)
        members = self._member_ids(conn, list_id)
        if len(candidates) > _PROBE_LIMIT:
            # Many candidates: one evaluation over everyone (sets built once) is cheaper.
            wanted = matching_ids(conn, node, ctx) & candidates
        else:
            probe = replace(ctx, correlated=True)
            ids = sorted(candidates)
            wanted = set()
            for i in range(0, len(ids), _CHUNK):
                wanted |= matching_ids(conn, node, probe, among=ids[i : i + _CHUNK])
        current = members & candidates
        added, removed = self._write(conn, list_id, wanted - current, current - wanted, now)
        self._finish(conn, list_id, marks, now)
        return RefreshResult(
            list_id, "incremental", len(candidates), added, removed, len(members) + added - removed
        )

    def _write(
        self, conn: Connection, list_id: int, add: set[int], remove: set[int], now: dt.datetime
    ) -> tuple[int, int]:
        m = t.list_membership
        new = sorted(add)
        for i in range(0, len(new), _CHUNK):
            conn.execute(
                m.insert(),
                [
                    {
                        "listId": list_id,
                        "prospectId": pid,
                        "optedOut": False,
                        "createdAt": now,
                        "updatedAt": now,
                    }
                    for pid in new[i : i + _CHUNK]
                ],
            )
        gone = sorted(remove)
        for i in range(0, len(gone), _CHUNK):
            conn.execute(m.delete().where(m.c.listId == list_id, m.c.prospectId.in_(gone[i : i + _CHUNK])))
        return len(new), len(gone)

    def _prune_changes(self) -> None:
        """Forget change-log rows every dynamic list has seen."""
        with self.engine.begin() as conn:
            low = conn.execute(
                sa.select(sa.func.min(sa.func.coalesce(segment_list.c.changeMark, 0))).where(
                    segment_list.c.kind == DYNAMIC
                )
            ).scalar()
            if low is None:
                low = conn.execute(sa.select(sa.func.max(segment_change.c.seq))).scalar() or 0
            conn.execute(segment_change.delete().where(segment_change.c.seq <= low))

    # -- explain --------------------------------------------------------------------------------

    def explain(self, list_id: int, prospect_id: int) -> dict[str, Any]:
        """Which predicates of the list's rule the prospect meets, and whether it is a member."""
        with self.engine.connect() as conn:
            row = self._row(conn, list_id)
            if row["rule"] is None:
                raise InputError(f"list {list_id} has no rule to explain", code="INVALID_OPERATION")
            node = rule_from_json(row["rule"])
            facts = load_facts(conn, [prospect_id]).get(prospect_id)
            if facts is None:
                raise NotFoundError(f"prospect {prospect_id} not found")
            ctx = context_for(conn, self._moment())
            result = explain(node, facts, ctx.catalog, ctx.moment)
            member = prospect_id in self._member_ids(conn, list_id, among=[prospect_id])
        return {
            "listId": list_id,
            "prospectId": prospect_id,
            "matches": result.matched and not facts.prospect.get("isDeleted"),
            "isMember": member,
            "explanation": result.to_dict(),
        }

    def evaluate_prospects(self, text: str, prospect_ids: Sequence[int]) -> dict[int, bool]:
        """Plain-Python evaluation of rule text for some prospects (automation and tests)."""
        with self.engine.connect() as conn:
            node = self.parse(conn, text)
            ctx = context_for(conn, self._moment())
            facts = load_facts(conn, prospect_ids)
        return {pid: evaluate(node, f, ctx.catalog, ctx.moment) for pid, f in facts.items()}

    def count(self, text: str) -> int:
        """How many live prospects match rule text now (a preview, nothing stored)."""
        with self.engine.connect() as conn:
            node = self.parse(conn, text)
            query = members_query(node, context_for(conn, self._moment())).subquery()
            return int(conn.execute(sa.select(sa.func.count()).select_from(query)).scalar_one())


def _xor(a: Any, b: Any) -> Any:
    return sa.or_(sa.and_(a, sa.not_(b)), sa.and_(sa.not_(a), b))


def candidate_queries(ctx: SqlContext, node: Node, state: dict[str, Any], before: Moment) -> list[Any]:
    """SELECTs of prospect ids that may have changed membership since ``state`` was recorded."""
    p, va, o, a, link = (
        t.prospect,
        t.visitor_activity,
        t.opportunity,
        t.prospect_account,
        t.opportunity_prospect,
    )
    ch = segment_change
    queries: list[Any] = [
        sa.select(ch.c.prospectId).where(ch.c.seq > (state["changeMark"] or 0)),
        sa.select(va.c.prospectId).where(
            va.c.id > (state["activityMark"] or 0), va.c.prospectId.is_not(None)
        ),
    ]
    if state["prospectMark"] is not None:
        queries.append(sa.select(p.c.id).where(p.c.updatedAt > state["prospectMark"]))
    else:
        queries.append(sa.select(p.c.id))
    opp_mark = state["opportunityMark"]
    queries.append(
        sa.select(link.c.prospectId)
        .select_from(link.join(o, o.c.id == link.c.opportunityId))
        .where(o.c.updatedAt > opp_mark if opp_mark is not None else sa.true())
    )
    acc_mark = state["accountMark"]
    queries.append(
        sa.select(p.c.id)
        .select_from(p.join(a, a.c.id == p.c.prospectAccountId))
        .where(a.c.updatedAt > acc_mark if acc_mark is not None else sa.true())
    )
    queries += _window_candidates(ctx, node, before)
    return queries


def _window_candidates(ctx: SqlContext, node: Node, before: Moment) -> list[Any]:
    """Prospects for which some relative window of the rule flips between two moments."""
    p, va = ctx.prospect, t.visitor_activity
    then = SqlContext(ctx.prospect, ctx.catalog, before)
    out: list[Any] = []
    for item in walk(node):
        if isinstance(item, ActivityPredicate) and item.window is not None:
            # Only activities the predicate counts, dated where the window moved (index-friendly).
            filters = ActivityPredicate(types=item.types, asset=item.asset, campaign_id=item.campaign_id)
            start0, end0 = before.bounds(item.window, Kind.DATETIME)
            start1, end1 = ctx.moment.bounds(item.window, Kind.DATETIME)
            moved = sa.or_(
                sa.and_(va.c.createdAt >= start0, va.c.createdAt < start1),
                sa.and_(va.c.createdAt > end0, va.c.createdAt <= end1),
            )
            conds = activity_conditions(filters, ctx.moment)
            out.append(sa.select(va.c.prospectId).where(va.c.prospectId.is_not(None), moved, *conds))
        elif isinstance(item, FieldPredicate) and item.condition.op in WINDOW_OPS:
            within = _as_within(item.condition)
            if item.on_account:
                pred = FieldPredicate(within)
                out.append(sa.select(p.c.id).where(_xor(rule_sql(pred, ctx), rule_sql(pred, then))))
            else:
                kind = ctx.catalog.prospect[within.field]
                col = p.c[within.field]
                out.append(
                    sa.select(p.c.id).where(
                        _xor(
                            condition_sql(within, kind, col, ctx.moment),
                            condition_sql(within, kind, col, before),
                        )
                    )
                )
        elif isinstance(item, OpportunityPredicate):
            o, link = t.opportunity, t.opportunity_prospect
            for cond in item.conditions:
                if cond.op in WINDOW_OPS:
                    within = _as_within(cond)
                    flips = _xor(
                        opportunity_condition_sql(within, ctx.catalog, ctx.moment),
                        opportunity_condition_sql(within, ctx.catalog, before),
                    )
                    out.append(
                        sa.select(link.c.prospectId)
                        .select_from(link.join(o, o.c.id == link.c.opportunityId))
                        .where(flips)
                    )
    return out


def _as_within(cond: Condition) -> Condition:
    return Condition(cond.field, Op.WITHIN, window=cond.window)
