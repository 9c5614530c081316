"""Plain-Python evaluation of rules over one prospect's facts: ``explain`` and the SQL oracle.

The semantics here are the definition; ``renkei.segments.compile`` must give the same answer on
SQLite and PostgreSQL (a hypothesis property checks it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from renkei.core.rules.model import (
    COMPARATORS,
    GRADE_INDEX,
    WINDOW_OPS,
    ActivityPredicate,
    Catalog,
    Condition,
    FieldPredicate,
    Group,
    Kind,
    ListPredicate,
    Match,
    Node,
    Op,
    TagPredicate,
    Window,
    coerce,
    fold,
    json_field_kind,
)
from renkei.core.rules.text import format_predicate


@dataclass(frozen=True, slots=True)
class Facts:
    """What a rule can see of one prospect (rows as mappings of column → value)."""

    prospect: Mapping[str, Any]
    account: Mapping[str, Any] | None = None
    tags: frozenset[str] = frozenset()
    lists: frozenset[int] = frozenset()
    activities: tuple[Mapping[str, Any], ...] = ()
    opportunities: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class Moment:
    """ "Now" for relative windows: the instant, and today's date in the account time zone."""

    now: dt.datetime
    tz: str = "Asia/Tokyo"

    @property
    def today(self) -> dt.date:
        return self.now.astimezone(ZoneInfo(self.tz)).date()

    def bounds(self, window: Window, kind: Kind) -> tuple[Any, Any]:
        """Inclusive (start, end) of a window for a field of this kind."""
        if kind is Kind.DATETIME:
            return window.start(self.now), self.now
        today = self.today
        return window.start_date(today), today


@dataclass(frozen=True, slots=True)
class Explanation:
    """One node of a rule with whether it matched, and its children for groups."""

    text: str
    matched: bool
    children: tuple[Explanation, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rule": self.text, "matched": self.matched}
        if self.children:
            out["children"] = [c.to_dict() for c in self.children]
        return out


def _is_empty(kind: Kind, raw: Any) -> bool:
    return raw is None or (kind in (Kind.TEXT, Kind.GRADE) and raw == "")


def holds(cond: Condition, kind: Kind, raw: Any, moment: Moment, *, json_text: bool = False) -> bool:
    """Whether a stored value meets a condition. ``json_text``: the value came from a JSON
    document and compares as text (dates: their first 10 characters)."""
    if cond.op is Op.EMPTY:
        return _is_empty(kind, raw)
    if cond.op is Op.NOT_EMPTY:
        return not _is_empty(kind, raw)
    if kind is Kind.BOOLEAN:
        flag = bool(raw) if raw is not None else False
        return flag == cond.value if cond.op is Op.EQ else flag != cond.value
    if raw is None:
        return False
    x: Any
    if kind is Kind.GRADE:
        x = GRADE_INDEX.get(raw)
        if x is None:
            return False
    elif kind is Kind.TEXT:
        x = fold(str(raw))
    elif kind is Kind.DATE and json_text:
        x = str(raw)[:10]
    else:
        x = raw
    if cond.op in WINDOW_OPS:
        assert cond.window is not None
        start, end = moment.bounds(cond.window, kind)
        if json_text:
            start, end = start.isoformat(), end.isoformat()
        inside = bool(start <= x <= end)
        return inside if cond.op is Op.WITHIN else not inside
    if cond.op is Op.IN:
        values = cond.value if isinstance(cond.value, tuple) else (cond.value,)
        return any(x == _target(kind, v, json_text) for v in values)
    target = _target(kind, cond.value, json_text)
    if cond.op is Op.CONTAINS:
        return bool(target in x)
    if cond.op is Op.STARTS_WITH:
        return bool(x.startswith(target))
    return bool(COMPARATORS[cond.op](x, target))


def _target(kind: Kind, value: Any, json_text: bool) -> Any:
    target = coerce(kind, value)
    if json_text and kind is Kind.DATE:
        return target.isoformat()
    return target


def _opportunity_holds(cond: Condition, opp: Mapping[str, Any], catalog: Catalog, moment: Moment) -> bool:
    if cond.field in catalog.opportunity:
        return holds(cond, catalog.opportunity[cond.field], opp.get(cond.field), moment)
    custom = opp.get("customFields") or {}
    kind = json_field_kind(cond, catalog.opportunity_json)
    return holds(cond, kind, custom.get(cond.field), moment, json_text=True)


def _account_holds(cond: Condition, account: Mapping[str, Any], catalog: Catalog, moment: Moment) -> bool:
    name = cond.field.removeprefix("account.")
    local = Condition(name, cond.op, cond.value, cond.window)
    if name in catalog.account:
        return holds(local, catalog.account[name], account.get(name), moment)
    custom = account.get("customFields") or {}
    return holds(local, json_field_kind(local, {}), custom.get(name), moment, json_text=True)


def _activity_matches(pred: ActivityPredicate, row: Mapping[str, Any], moment: Moment) -> bool:
    if pred.types and row.get("type") not in pred.types:
        return False
    if pred.asset is not None and row.get(pred.asset.kind.column) != pred.asset.id:
        return False
    if pred.campaign_id is not None and row.get("campaignId") != pred.campaign_id:
        return False
    if pred.window is not None:
        created = row["createdAt"]
        inside = pred.window.start(moment.now) <= created <= moment.now
        if inside == pred.outside_window:
            return False
    return True


def evaluate(node: Node, facts: Facts, catalog: Catalog, moment: Moment) -> bool:
    """Whether the prospect of ``facts`` matches the rule."""
    if isinstance(node, Group):
        results = (evaluate(i, facts, catalog, moment) for i in node.items)
        return all(results) if node.match is Match.ALL else any(results)
    if isinstance(node, FieldPredicate):
        cond = node.condition
        if node.on_account:
            account = facts.account
            return (
                account is not None
                and not account.get("isDeleted")
                and _account_holds(cond, account, catalog, moment)
            )
        kind = catalog.prospect[cond.field]
        return holds(cond, kind, facts.prospect.get(cond.field), moment)
    if isinstance(node, TagPredicate):
        return (node.tag in facts.tags) == node.has
    if isinstance(node, ListPredicate):
        return (node.list_id in facts.lists) == node.member
    if isinstance(node, ActivityPredicate):
        count = sum(1 for a in facts.activities if _activity_matches(node, a, moment))
        return count >= node.at_least if node.has else count == 0
    found = any(
        all(_opportunity_holds(c, opp, catalog, moment) for c in node.conditions)
        for opp in facts.opportunities
        if not opp.get("isDeleted")
    )
    return found == node.has


def explain(node: Node, facts: Facts, catalog: Catalog, moment: Moment) -> Explanation:
    """The rule tree annotated with which predicates matched and which did not."""
    if isinstance(node, Group):
        children = tuple(explain(i, facts, catalog, moment) for i in node.items)
        flags = [c.matched for c in children]
        matched = all(flags) if node.match is Match.ALL else any(flags)
        return Explanation(f"{node.match.value}(…)", matched, children)
    return Explanation(format_predicate(node), evaluate(node, facts, catalog, moment))


__all__ = ["Explanation", "Facts", "Moment", "evaluate", "explain", "holds"]
