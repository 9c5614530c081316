"""Automation rules and completion actions over the store.

``apply_actions`` is the one place actions touch prospects (assignment, lists, tags, score
ledger, fields, notifications, grading profile); completion actions of forms, form handlers,
landing pages, files and custom redirects call it after their activity, and rules call it for
each matching prospect. Actions are not activities: they never move ``lastActivityAt``.

Assignment sets ``assignedToId`` (and ``firstAssignedAt``) on an unowned prospect only — AE never
reassigns owned prospects; the connector creates the CRM lead from there under its
``on_assignment`` setting.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from renkei.clock import Clock, SystemClock, ensure_utc
from renkei.core.automation import Action, ActionKind, ActivityFact, ProspectFacts, RuleDefinition
from renkei.email.notify import queue_user_notification
from renkei.errors import ConfigError, InputError, NotFoundError
from renkei.marketing.activity_service import REFERENCE_COLUMNS
from renkei.marketing.scoring_service import adjust_score, regrade
from renkei.marketing.service import coerce_record
from renkei.store import dynamic
from renkei.store import tables as t
from renkei.store import tables_activity as ta

PROSPECT_TAG = "prospect"  # tag_object.objectType of prospects (as segmentation reads it)
#: Activities older than this are not loaded for rule evaluation (criteria windows are shorter).
_FACT_WINDOW = dt.timedelta(days=400)


def apply_actions(
    conn: Connection,
    prospect_id: int,
    actions: Sequence[Action],
    now: dt.datetime,
    *,
    source: str,
    source_id: int | None = None,
) -> list[str]:
    """Run ``actions`` for one prospect; returns a line per action saying what it did."""
    done: list[str] = []
    p = t.prospect
    for action in actions:
        kind = action.kind
        if kind in (ActionKind.ASSIGN_USER, ActionKind.ASSIGN_ROUND_ROBIN):
            owner = conn.execute(sa.select(p.c.assignedToId).where(p.c.id == prospect_id)).scalar_one()
            if owner is not None:
                done.append(f"already assigned to user {owner}")
                continue
            user = (
                int(action.option("user_id"))
                if kind is ActionKind.ASSIGN_USER
                else _next_round_robin(conn, action, source, source_id, now)
            )
            conn.execute(
                p.update()
                .where(p.c.id == prospect_id)
                .values(
                    assignedToId=user,
                    firstAssignedAt=sa.func.coalesce(p.c.firstAssignedAt, now),
                    updatedAt=now,
                )
            )
            done.append(f"assigned to user {user}")
        elif kind in (ActionKind.ADD_TO_LIST, ActionKind.REMOVE_FROM_LIST):
            done.append(
                _list_action(
                    conn, prospect_id, int(action.option("list_id")), kind is ActionKind.ADD_TO_LIST, now
                )
            )
        elif kind in (ActionKind.ADD_TAG, ActionKind.REMOVE_TAG):
            done.append(
                _tag_action(conn, prospect_id, str(action.option("tag")), kind is ActionKind.ADD_TAG, now)
            )
        elif kind is ActionKind.ADJUST_SCORE:
            points = int(action.option("points"))
            adjust_score(
                conn,
                prospect_id,
                points,
                reason=f"{source} {source_id or ''}".strip(),
                source=source,
                source_id=source_id,
                now=now,
            )
            done.append(f"score {points:+d}")
        elif kind is ActionKind.CHANGE_FIELD:
            schema = dynamic.load_prospect_schema(conn)
            name = str(action.option("field"))
            values = coerce_record(
                schema.fields, {name: action.option("value")}, writable=schema.fields.keys() - {"id", "email"}
            )
            conn.execute(
                schema.table.update().where(schema.table.c.id == prospect_id).values(**values, updatedAt=now)
            )
            done.append(f"{name} set")
        elif kind is ActionKind.NOTIFY_USER:
            user = (
                action.option("user_id")
                or conn.execute(sa.select(p.c.assignedToId).where(p.c.id == prospect_id)).scalar_one()
            )
            if user is None:
                done.append("no user to notify")
                continue
            message = str(action.option("message"))[:2048]
            conn.execute(
                ta.notification.insert().values(
                    userId=int(user), prospectId=prospect_id, message=message, isRead=False, createdAt=now
                )
            )
            emailed = None
            if action.option("email") is not False:  # email too unless the action says email: false
                emailed = queue_user_notification(conn, user_id=int(user), prospect_id=prospect_id,
                                                  message=message, source=f"{source} {source_id or ''}".strip(),
                                                  now=now)  # fmt: skip
            done.append(f"notified user {user}" + (f" (email {emailed} queued)" if emailed else ""))
        elif kind is ActionKind.CHANGE_PROFILE:
            conn.execute(
                p.update()
                .where(p.c.id == prospect_id)
                .values(profileId=int(action.option("profile_id")), updatedAt=now)
            )
            regrade(conn, [prospect_id], now)
            done.append(f"profile {action.option('profile_id')}")
    return done


def _next_round_robin(
    conn: Connection, action: Action, source: str, source_id: int | None, now: dt.datetime
) -> int:
    users = [int(u) for u in action.option("user_ids")]
    key = f"round_robin:{source}:{source_id}"
    s = t.setting
    position = conn.execute(sa.select(s.c.value).where(s.c.key == key)).scalar_one_or_none()
    index = int(position or 0)
    if position is None:
        conn.execute(s.insert().values(key=key, value=index + 1, updatedAt=now))
    else:
        conn.execute(s.update().where(s.c.key == key).values(value=index + 1, updatedAt=now))
    return users[index % len(users)]


def _list_action(conn: Connection, prospect_id: int, list_id: int, add: bool, now: dt.datetime) -> str:
    lst = conn.execute(sa.select(t.list_.c.isDynamic).where(t.list_.c.id == list_id)).first()
    if lst is None:
        return f"list {list_id} not found"
    if lst.isDynamic:
        return f"list {list_id} is dynamic: left alone"
    m = t.list_membership
    present = conn.execute(
        sa.select(m.c.id).where(m.c.listId == list_id, m.c.prospectId == prospect_id)
    ).first()
    if add and present is None:
        conn.execute(
            m.insert().values(
                listId=list_id, prospectId=prospect_id, optedOut=False, createdAt=now, updatedAt=now
            )
        )
    elif not add and present is not None:
        conn.execute(m.delete().where(m.c.id == present.id))
    return f"{'added to' if add else 'removed from'} list {list_id}"


def _tag_action(conn: Connection, prospect_id: int, name: str, add: bool, now: dt.datetime) -> str:
    tag_id = conn.execute(sa.select(t.tag.c.id).where(t.tag.c.name == name)).scalar_one_or_none()
    o = t.tag_object
    if add:
        if tag_id is None:
            tag_id = conn.execute(
                t.tag.insert().values(name=name, createdAt=now).returning(t.tag.c.id)
            ).scalar_one()
        key = (o.c.tagId == tag_id, o.c.objectType == PROSPECT_TAG, o.c.objectId == prospect_id)
        if conn.execute(sa.select(o.c.tagId).where(*key)).first() is None:
            conn.execute(o.insert().values(tagId=tag_id, objectType=PROSPECT_TAG, objectId=prospect_id))
        return f"tagged {name}"
    if tag_id is not None:
        conn.execute(
            o.delete().where(o.c.tagId == tag_id, o.c.objectType == PROSPECT_TAG, o.c.objectId == prospect_id)
        )
    return f"untagged {name}"


# ---------------------------------------------------------------------------------------------
# Facts and rules


def load_facts(conn: Connection, prospect_ids: Sequence[int], now: dt.datetime) -> dict[int, ProspectFacts]:
    ids = list(prospect_ids)
    p = t.prospect
    rows = {
        r["id"]: dict(r)
        for r in conn.execute(sa.select(p).where(p.c.id.in_(ids), p.c.isDeleted.is_(False))).mappings()
    }
    lists: dict[int, set[int]] = {i: set() for i in rows}
    m = t.list_membership
    for member in conn.execute(sa.select(m.c.prospectId, m.c.listId).where(m.c.prospectId.in_(ids))):
        lists.setdefault(member.prospectId, set()).add(member.listId)
    tags: dict[int, set[str]] = {i: set() for i in rows}
    o = t.tag_object
    query = (
        sa.select(o.c.objectId, t.tag.c.name)
        .join(t.tag, t.tag.c.id == o.c.tagId)
        .where(o.c.objectType == PROSPECT_TAG, o.c.objectId.in_(ids))
    )
    for tagged in conn.execute(query):
        tags.setdefault(tagged.objectId, set()).add(tagged.name)
    acts: dict[int, list[ActivityFact]] = {i: [] for i in rows}
    va = t.visitor_activity
    for r in conn.execute(
        sa.select(va).where(va.c.prospectId.in_(ids), va.c.createdAt >= now - _FACT_WINDOW)
    ).mappings():
        refs = {c: r[c] for c in REFERENCE_COLUMNS if r[c] is not None}
        acts[r["prospectId"]].append(ActivityFact(r["type"], r["typeName"], refs, ensure_utc(r["createdAt"])))
    return {
        pid: ProspectFacts(row, frozenset(lists[pid]), frozenset(tags[pid]), tuple(acts[pid]))
        for pid, row in rows.items()
    }


def _rule(row: Mapping[str, Any]) -> RuleDefinition:
    return RuleDefinition.from_dict(row["definition"])


class _SharedRules:
    """Verdicts of rules written in the shared rule language, for a set of prospects, with the
    segmentation feature's facts and catalog (loaded once, refreshed for a prospect on demand)."""

    def __init__(self, conn: Connection, now: dt.datetime) -> None:
        from renkei.core.rules.evaluate import Moment
        from renkei.core.rules.model import build_catalog

        self.conn = conn
        self.moment = Moment(now)
        schema = dynamic.load_prospect_schema(conn)
        self.catalog = build_catalog(schema.fields)
        self.facts: dict[int, Any] = {}

    def load(self, prospect_ids: Sequence[int]) -> None:
        from renkei.segments.facts import load_facts as load_rule_facts

        self.facts.update(load_rule_facts(self.conn, prospect_ids))

    def verdict(self, rule: RuleDefinition, prospect_id: int) -> bool | None:
        from renkei.core.rules.evaluate import evaluate

        node = rule.node
        if node is None:
            return None
        if prospect_id not in self.facts:
            self.load([prospect_id])
        facts = self.facts.get(prospect_id)
        return facts is not None and evaluate(node, facts, self.catalog, self.moment)


def run_rules(
    conn: Connection, prospect_ids: Iterable[int], now: dt.datetime, *, rule_ids: Sequence[int] | None = None
) -> list[dict[str, Any]]:
    """Evaluate active rules for these prospects and run the actions of those that match and
    are eligible (once, or again under repeat). Returns one entry per run."""
    ar, run = ta.automation_rule, ta.automation_run
    query = sa.select(ar).where(ar.c.isPaused.is_(False)).order_by(ar.c.id)
    if rule_ids is not None:
        query = query.where(ar.c.id.in_(list(rule_ids)))
    rules = [(r["id"], r["name"], _rule(dict(r))) for r in conn.execute(query).mappings()]
    ids = list(prospect_ids)
    if not rules or not ids:
        return []
    facts = load_facts(conn, ids, now)
    shared = _SharedRules(conn, now)
    if any(rule.rule for _, _, rule in rules):
        shared.load(ids)
    history = {
        (r["ruleId"], r["prospectId"]): (int(r["count"]), ensure_utc(r["lastRunAt"]))
        for r in conn.execute(sa.select(run).where(run.c.prospectId.in_(ids))).mappings()
    }
    ran: list[dict[str, Any]] = []
    for pid in ids:
        if pid not in facts:
            continue
        for rule_id, name, rule in rules:
            count, last = history.get((rule_id, pid), (0, None))
            if not rule.eligible(count, last, now):
                continue
            if not rule.matches(facts[pid], now, rule_matched=shared.verdict(rule, pid)):
                continue
            done = apply_actions(conn, pid, rule.actions, now, source="automation", source_id=rule_id)
            if count == 0:
                conn.execute(
                    run.insert().values(
                        ruleId=rule_id, prospectId=pid, count=1, firstRunAt=now, lastRunAt=now
                    )
                )
            else:
                conn.execute(
                    run.update()
                    .where(run.c.ruleId == rule_id, run.c.prospectId == pid)
                    .values(count=count + 1, lastRunAt=now)
                )
            history[(rule_id, pid)] = (count + 1, now)
            ran.append(
                {"ruleId": rule_id, "rule": name, "prospectId": pid, "run": count + 1, "actions": done}
            )
            # Later rules see this rule's effects (a score adjustment, a tag, …).
            facts.update(load_facts(conn, [pid], now))
            if any(r.rule for _, _, r in rules):
                shared.load([pid])
    return ran


class AutomationService:
    def __init__(self, engine: Engine, *, clock: Clock | None = None) -> None:
        self.engine = engine
        self.clock = clock or SystemClock()

    def save_rule(self, name: str, definition: Mapping[str, Any], *, paused: bool = True) -> dict[str, Any]:
        """Create or replace a rule (validated). New rules are saved paused, as in AE; edits never
        re-apply or undo past runs."""
        rule = RuleDefinition.from_dict(definition)
        ar = ta.automation_rule
        now = self.clock.now()
        with self.engine.begin() as conn:
            existing = conn.execute(sa.select(ar.c.id).where(ar.c.name == name)).scalar_one_or_none()
            values = {"definition": rule.to_dict(), "updatedAt": now}
            if existing is None:
                conn.execute(ar.insert().values(name=name, isPaused=paused, createdAt=now, **values))
            else:
                conn.execute(ar.update().where(ar.c.id == existing).values(values))
            return dict(conn.execute(sa.select(ar).where(ar.c.name == name)).mappings().one())

    def set_paused(self, rule_id: int, paused: bool) -> None:
        ar = ta.automation_rule
        with self.engine.begin() as conn:
            if not conn.execute(
                ar.update().where(ar.c.id == rule_id).values(isPaused=paused, updatedAt=self.clock.now())
            ).rowcount:
                raise NotFoundError(f"automation rule {rule_id} not found")

    def rules(self) -> list[dict[str, Any]]:
        ar = ta.automation_rule
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.select(ar).order_by(ar.c.id)).mappings()]

    def preview(self, rule_id: int) -> list[int]:
        """Prospects the rule would act on now (paused or not), without running anything."""
        ar, run = ta.automation_rule, ta.automation_run
        now = self.clock.now()
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(ar).where(ar.c.id == rule_id)).mappings().first()
            if row is None:
                raise NotFoundError(f"automation rule {rule_id} not found")
            rule = _rule(dict(row))
            matched = []
            for chunk in _live_prospect_chunks(conn):
                facts = load_facts(conn, chunk, now)
                shared = _SharedRules(conn, now)
                if rule.rule is not None:
                    shared.load(chunk)
                history = {
                    r["prospectId"]: (int(r["count"]), ensure_utc(r["lastRunAt"]))
                    for r in conn.execute(
                        sa.select(run).where(run.c.ruleId == rule_id, run.c.prospectId.in_(chunk))
                    ).mappings()
                }
                for pid in chunk:
                    count, last = history.get(pid, (0, None))
                    if (
                        pid in facts
                        and rule.eligible(count, last, now)
                        and rule.matches(facts[pid], now, rule_matched=shared.verdict(rule, pid))
                    ):
                        matched.append(pid)
            return matched

    def run_for(self, prospect_ids: Sequence[int]) -> list[dict[str, Any]]:
        with self.engine.begin() as conn:
            return run_rules(conn, prospect_ids, self.clock.now())

    def run_all(self) -> list[dict[str, Any]]:
        """The scheduled pass: every active rule over every live prospect, a chunk per transaction."""
        ran: list[dict[str, Any]] = []
        with self.engine.connect() as conn:
            chunks = list(_live_prospect_chunks(conn))
        for chunk in chunks:
            with self.engine.begin() as conn:
                ran += run_rules(conn, chunk, self.clock.now())
        return ran

    def completion_actions(
        self, prospect_id: int, actions: Sequence[Mapping[str, Any]], *, source: str, source_id: int | None
    ) -> list[str]:
        try:
            parsed = [Action.from_dict(a) for a in actions]
        except ConfigError as exc:
            raise InputError(str(exc.message), code="INVALID_ACTION") from None
        with self.engine.begin() as conn:
            return apply_actions(
                conn, prospect_id, parsed, self.clock.now(), source=source, source_id=source_id
            )

    def notifications(self, user_id: int) -> list[dict[str, Any]]:
        n = ta.notification
        with self.engine.connect() as conn:
            return [
                dict(r)
                for r in conn.execute(sa.select(n).where(n.c.userId == user_id).order_by(n.c.id)).mappings()
            ]


def _live_prospect_chunks(conn: Connection, size: int = 500) -> Iterable[list[int]]:
    p = t.prospect
    ids = list(conn.execute(sa.select(p.c.id).where(p.c.isDeleted.is_(False)).order_by(p.c.id)).scalars())
    for start in range(0, len(ids), size):
        yield ids[start : start + size]
