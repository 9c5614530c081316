"""Rules → one SQL query with bound parameters, identical on SQLite and PostgreSQL.

Each predicate becomes a two-valued boolean expression (a comparison with NULL is guarded to be
false), so the result equals ``renkei.core.rules.evaluate`` row for row. Related data becomes
``id [NOT] IN (SELECT prospectId …)`` (with ``GROUP BY … HAVING`` for "at least N") over ``visitor_activity``,
``opportunity_prospect``/``opportunity``, ``prospect_account``, ``tag_object`` and
``list_membership``. The only dialect-specific pieces are ASCII case folding and substring search,
compiled per dialect below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from renkei.core.rules.evaluate import Moment
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
    OpportunityPredicate,
    TagPredicate,
    build_catalog,
    coerce,
    json_field_kind,
)
from renkei.store import tables as t
from renkei.store.dynamic import load_crm_schema, load_prospect_schema

Bool = ColumnElement[bool]


class ascii_fold(FunctionElement[str]):
    """Lower-case A–Z only (SQLite's ``lower`` does exactly that; PostgreSQL's does under "C")."""

    type = sa.String()
    inherit_cache = True


@compiles(ascii_fold)
def _fold_default(element: ascii_fold, compiler: SQLCompiler, **kw: Any) -> str:
    return f"lower({compiler.process(element.clauses, **kw)})"


@compiles(ascii_fold, "postgresql")
def _fold_pg(element: ascii_fold, compiler: SQLCompiler, **kw: Any) -> str:
    # Under the "C" collation PostgreSQL's lower() folds ASCII letters only, like SQLite's.
    return f'lower(({compiler.process(element.clauses, **kw)}) COLLATE "C")'


class text_position(FunctionElement[int]):
    """1-based position of the second argument in the first, 0 when absent."""

    type = sa.Integer()
    inherit_cache = True


@compiles(text_position)
def _position_default(element: text_position, compiler: SQLCompiler, **kw: Any) -> str:
    return f"instr({compiler.process(element.clauses, **kw)})"


@compiles(text_position, "postgresql")
def _position_pg(element: text_position, compiler: SQLCompiler, **kw: Any) -> str:
    return f"strpos({compiler.process(element.clauses, **kw)})"


@dataclass(frozen=True, slots=True)
class SqlContext:
    prospect: sa.Table
    catalog: Catalog
    moment: Moment
    #: Correlated ``EXISTS`` probes per prospect (fast for a few candidates) instead of
    #: ``IN (SELECT …)`` sets built once (fast for everyone). The results are the same.
    correlated: bool = False


def context_for(conn: Connection, moment: Moment) -> SqlContext:
    """The live prospect table and field catalog (custom fields included) for this database."""
    schema = load_prospect_schema(conn)
    opportunity = load_crm_schema(conn).objects["Opportunity"]
    return SqlContext(schema.table, build_catalog(schema.fields, opportunity.custom_fields), moment)


def _not_true(col: Any) -> Bool:
    return sa.or_(col.is_(None), col.is_not(True))


def condition_sql(
    cond: Condition, kind: Kind, col: ColumnElement[Any], moment: Moment, *, json_text: bool = False
) -> Bool:
    """One condition on one column (``json_text``: a text value extracted from JSON)."""
    textual = kind in (Kind.TEXT, Kind.GRADE)
    if cond.op is Op.EMPTY:
        return sa.or_(col.is_(None), col == "") if textual else col.is_(None)
    if cond.op is Op.NOT_EMPTY:
        return sa.and_(col.is_not(None), col != "") if textual else col.is_not(None)
    if kind is Kind.BOOLEAN:
        want = bool(cond.value) if cond.op is Op.EQ else not cond.value
        return col.is_(True) if want else _not_true(col)
    x: ColumnElement[Any] = col
    if kind is Kind.GRADE:
        x = sa.case(GRADE_INDEX, value=col, else_=None)
    elif kind is Kind.TEXT:
        x = ascii_fold(col)
    elif kind is Kind.DATE and json_text:
        x = sa.func.substr(col, 1, 10)

    def target(value: Any) -> Any:
        v = coerce(kind, value)
        return v.isoformat() if json_text and kind is Kind.DATE else v

    if cond.op in WINDOW_OPS:
        assert cond.window is not None
        start, end = moment.bounds(cond.window, kind)
        if json_text:
            start, end = start.isoformat(), end.isoformat()
        inside = x.between(sa.literal(start, type_=col.type), sa.literal(end, type_=col.type))
        return sa.and_(col.is_not(None), inside if cond.op is Op.WITHIN else sa.not_(inside))
    if cond.op is Op.IN:
        values = cond.value if isinstance(cond.value, tuple) else (cond.value,)
        # each value bound with the column's type, as the comparisons below are: without it, on
        # PostgreSQL `Seats__c IN (-5, 1.5)` missed a prospect holding 1.5 (found by the SQL = Python property)
        test: Bool = x.in_([sa.literal(target(v), type_=x.type) for v in values])
    elif cond.op is Op.CONTAINS:
        test = text_position(x, target(cond.value)) > 0
    elif cond.op is Op.STARTS_WITH:
        needle = target(cond.value)
        test = sa.func.substr(x, 1, len(needle)) == needle
    else:
        test = COMPARATORS[cond.op](x, sa.literal(target(cond.value), type_=x.type))
    return sa.and_(x.is_not(None), test)


def _json_condition(cond: Condition, kind: Kind, doc: ColumnElement[Any], moment: Moment) -> Bool:
    item = doc[cond.field]
    if kind is Kind.NUMBER:
        return condition_sql(cond, kind, item.as_float(), moment)
    if kind is Kind.BOOLEAN:
        return condition_sql(cond, kind, item.as_boolean(), moment)
    return condition_sql(cond, kind, item.as_string(), moment, json_text=True)


def rule_sql(node: Node, ctx: SqlContext) -> Bool:
    """The rule as a boolean expression over ``ctx.prospect``.

    Related data is tested with uncorrelated ``id IN (SELECT prospectId …)`` subqueries: both
    databases build each set once (SQLite an ephemeral index, PostgreSQL a hashed semi-join)
    instead of probing per prospect; the subqueries never yield NULL, so ``NOT IN`` is safe. With
    ``ctx.correlated`` they are correlated ``EXISTS`` probes instead (for a few candidates)."""
    p = ctx.prospect
    moment = ctx.moment
    if isinstance(node, Group):
        # Cheap, selective tests first: SQLite evaluates the terms in order and stops early.
        parts = [rule_sql(i, ctx) for i in sorted(node.items, key=_cost)]
        if not parts:
            return sa.true() if node.match is Match.ALL else sa.false()
        return sa.and_(*parts) if node.match is Match.ALL else sa.or_(*parts)
    if isinstance(node, FieldPredicate):
        cond = node.condition
        if not node.on_account:
            return condition_sql(cond, ctx.catalog.prospect[cond.field], p.c[cond.field], moment)
        a = t.prospect_account
        name = cond.field.removeprefix("account.")
        local = Condition(name, cond.op, cond.value, cond.window)
        if name in ctx.catalog.account:
            test = condition_sql(local, ctx.catalog.account[name], a.c[name], moment)
        else:
            test = _json_condition(local, json_field_kind(local, {}), a.c.customFields, moment)
        accounts = sa.select(a.c.id).where(_not_true(a.c.isDeleted), test)
        if ctx.correlated:
            return sa.exists(accounts.where(a.c.id == p.c.prospectAccountId))
        return sa.and_(p.c.prospectAccountId.is_not(None), p.c.prospectAccountId.in_(accounts))
    if isinstance(node, TagPredicate):
        o, tag = t.tag_object, t.tag
        tagged = (
            sa.select(o.c.objectId)
            .select_from(o.join(tag, tag.c.id == o.c.tagId))
            .where(o.c.objectType == "prospect", tag.c.name == node.tag)
        )
        return _linked(ctx, tagged, o.c.objectId, node.has)
    if isinstance(node, ListPredicate):
        m = t.list_membership
        members = sa.select(m.c.prospectId).where(m.c.listId == node.list_id)
        return _linked(ctx, members, m.c.prospectId, node.member)
    if isinstance(node, ActivityPredicate):
        va = t.visitor_activity
        active = sa.select(va.c.prospectId).where(
            va.c.prospectId.is_not(None), *activity_conditions(node, moment)
        )
        if node.at_least > 1:
            if ctx.correlated:
                count = (
                    sa.select(sa.func.count())
                    .select_from(va)
                    .where(va.c.prospectId == p.c.id, *activity_conditions(node, moment))
                    .scalar_subquery()
                )
                return count >= node.at_least
            active = active.group_by(va.c.prospectId).having(sa.func.count() >= node.at_least)
        return _linked(ctx, active, va.c.prospectId, node.has)
    return opportunity_sql(node, ctx)


def _linked(ctx: SqlContext, ids: sa.Select[Any], column: ColumnElement[Any], has: bool) -> Bool:
    """``prospect.id`` in a set of prospect ids (or not), as a set or as a correlated probe."""
    p = ctx.prospect
    found: Bool = sa.exists(ids.where(column == p.c.id)) if ctx.correlated else p.c.id.in_(ids)
    return found if has else sa.not_(found)


def _cost(node: Node) -> int:
    """A rough rank of how expensive a predicate is to test per prospect."""
    if isinstance(node, FieldPredicate):
        return 1 if node.on_account else 0
    if isinstance(node, (TagPredicate, ListPredicate)):
        return 2
    if isinstance(node, OpportunityPredicate):
        return 3
    if isinstance(node, ActivityPredicate):
        return 4
    return 5 + max((_cost(i) for i in node.items), default=0)


def activity_conditions(node: ActivityPredicate, moment: Moment) -> list[Bool]:
    va = t.visitor_activity
    conds: list[Bool] = []
    if node.types:
        conds.append(va.c.type.in_(node.types) if len(node.types) > 1 else va.c.type == node.types[0])
    if node.asset is not None:
        conds.append(va.c[node.asset.kind.column] == node.asset.id)
    if node.campaign_id is not None:
        conds.append(va.c.campaignId == node.campaign_id)
    if node.window is not None:
        inside = va.c.createdAt.between(node.window.start(moment.now), moment.now)
        conds.append(sa.not_(inside) if node.outside_window else inside)
    return conds


def opportunity_condition_sql(cond: Condition, catalog: Catalog, moment: Moment) -> Bool:
    """One condition on an ``opportunity`` row (a column, or a key of ``customFields``)."""
    o = t.opportunity
    if cond.field in catalog.opportunity:
        return condition_sql(cond, catalog.opportunity[cond.field], o.c[cond.field], moment)
    kind = json_field_kind(cond, catalog.opportunity_json)
    return _json_condition(cond, kind, o.c.customFields, moment)


def opportunity_sql(node: OpportunityPredicate, ctx: SqlContext) -> Bool:
    o, op = t.opportunity, t.opportunity_prospect
    conds: list[Bool] = [_not_true(o.c.isDeleted)]
    conds += [opportunity_condition_sql(c, ctx.catalog, ctx.moment) for c in node.conditions]
    linked = sa.select(op.c.prospectId).select_from(op.join(o, o.c.id == op.c.opportunityId)).where(*conds)
    return _linked(ctx, linked, op.c.prospectId, node.has)


def live(p: sa.Table) -> Bool:
    return _not_true(p.c.isDeleted)


def members_query(node: Node, ctx: SqlContext, *, among: Any | None = None) -> sa.Select[Any]:
    """``SELECT id FROM prospect WHERE <live> AND <rule>`` (optionally limited to candidate ids)."""
    p = ctx.prospect
    where: list[Bool] = [live(p), rule_sql(node, ctx)]
    if among is not None:
        where.insert(0, p.c.id.in_(among))
    return sa.select(p.c.id).where(*where)


def matching_ids(conn: Connection, node: Node, ctx: SqlContext, among: Any | None = None) -> set[int]:
    return set(conn.execute(members_query(node, ctx, among=among)).scalars())
