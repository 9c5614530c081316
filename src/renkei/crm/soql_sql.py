"""SOQL compiled to SQLAlchemy Core over the CRM's tables, with bound parameters throughout.

The pure side (``renkei.core.soql``) parses and checks the query and lowers WHERE to predicates;
this module turns those predicates into SQL with the same meaning as the in-memory evaluator:

- text compares case-insensitively as ``lower(column) op lower(:value)``; equality keeps the
  shape an expression index on ``lower(column)`` serves, ordering comparisons and ORDER BY use
  code-point order (``COLLATE "C"`` on PostgreSQL, SQLite's default) so both databases agree;
- ids and reference fields compare exactly (plain indexes serve them);
- every comparison is false on a null column (``col IS NOT NULL AND …`` where the column may be
  null), so ``NOT`` keeps SOQL's two-valued logic;
- parent fields (``Account.Name``) are LEFT OUTER JOINs in ``run_query`` and correlated scalar
  subqueries in ``compile_where`` (which has to return one boolean expression).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from renkei.clock import sf_datetime
from renkei.core.soql import bind as b
from renkei.core.soql import parse_query, parse_where
from renkei.core.soql.bind import CheckedQuery, FieldRef, Kind, Pred
from renkei.crm.schema import FieldType, ObjectDef
from renkei.store.dynamic import CrmSchema

API_VERSION = "v60.0"
DEFAULT_TZ = "Asia/Tokyo"


class code_point_order(FunctionElement[str]):
    """Its argument, compared by code point: ``COLLATE "C"`` on PostgreSQL; SQLite's default."""

    type = sa.String()
    name = "code_point_order"
    inherit_cache = True


@compiles(code_point_order)
def _code_point_default(element: code_point_order, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(code_point_order, "postgresql")
def _code_point_postgresql(element: code_point_order, compiler: SQLCompiler, **kw: Any) -> str:
    return f'({compiler.process(element.clauses, **kw)}) COLLATE "C"'


# --- columns of fields ---------------------------------------------------------------------------

#: A field's SQL expression and whether it can be null.
Resolver = Callable[[FieldRef], tuple[ColumnElement[Any], bool]]


class _Joins:
    """The root table plus one LEFT OUTER JOIN per parent relationship path used by the query."""

    def __init__(self, schema: CrmSchema, root: ObjectDef) -> None:
        self.schema = schema
        self.root = schema.tables[root.name]
        self.source: sa.FromClause = self.root
        self._aliases: dict[tuple[str, ...], sa.FromClause] = {(): self.root}

    def table_for(self, hops: tuple[b.Hop, ...]) -> sa.FromClause:
        key = tuple(h.relationship for h in hops)
        found = self._aliases.get(key)
        if found is not None:
            return found
        child = self.table_for(hops[:-1])
        hop = hops[-1]
        alias = self.schema.tables[hop.target].alias(f"p{len(self._aliases)}")
        self.source = self.source.outerjoin(alias, alias.c.Id == child.c[hop.reference_field])
        self._aliases[key] = alias
        return alias

    def resolve(self, ref: FieldRef) -> tuple[ColumnElement[Any], bool]:
        table = self.table_for(ref.hops)
        column = table.c[ref.field.name]
        return column, bool(ref.hops) or column.nullable is not False


def _subquery_resolver(schema: CrmSchema, root: sa.Table) -> Resolver:
    """Parent fields as correlated scalar subqueries (for a WHERE that must stand alone)."""

    def resolve(ref: FieldRef) -> tuple[ColumnElement[Any], bool]:
        if not ref.hops:
            column = root.c[ref.field.name]
            return column, column.nullable is not False
        aliases = [schema.tables[h.target].alias(f"s{i}") for i, h in enumerate(ref.hops)]
        source: sa.FromClause = aliases[0]
        for i in range(1, len(aliases)):
            source = source.join(aliases[i], aliases[i].c.Id == aliases[i - 1].c[ref.hops[i].reference_field])
        sub = (
            sa.select(aliases[-1].c[ref.field.name])
            .select_from(source)
            .where(aliases[0].c.Id == root.c[ref.hops[0].reference_field])
            .scalar_subquery()
        )
        return sub, True

    return resolve


# --- predicates ----------------------------------------------------------------------------------


def _param(ref: FieldRef, column: ColumnElement[Any], value: b.Value) -> ColumnElement[Any]:
    if ref.kind is Kind.NUMBER:
        exact = isinstance(value, int) and ref.field.type is FieldType.INT
        return sa.literal(value, sa.BigInteger() if exact else sa.Float())
    return sa.literal(value, column.type)


def _folded(ref: FieldRef, column: ColumnElement[Any], value: b.Value) -> tuple[ColumnElement[Any], Any]:
    if ref.kind in (Kind.TEXT, Kind.MULTI):
        return sa.func.lower(column), sa.func.lower(sa.literal(value, sa.String()))
    return column, _param(ref, column, value)


def _compare(ref: FieldRef, column: ColumnElement[Any], op: b.CmpOp, value: b.Value) -> ColumnElement[bool]:
    left, right = _folded(ref, column, value)
    if op is not b.CmpOp.EQ and ref.kind in (Kind.TEXT, Kind.MULTI, Kind.ID):
        left, right = code_point_order(left), code_point_order(right)
    ops: dict[b.CmpOp, Callable[[Any, Any], ColumnElement[bool]]] = {
        b.CmpOp.EQ: lambda x, y: x == y,
        b.CmpOp.LT: lambda x, y: x < y,
        b.CmpOp.LE: lambda x, y: x <= y,
        b.CmpOp.GT: lambda x, y: x > y,
        b.CmpOp.GE: lambda x, y: x >= y,
    }
    return ops[op](left, right)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _includes(column: ColumnElement[Any], groups: tuple[tuple[str, ...], ...]) -> ColumnElement[bool]:
    padded = sa.func.lower(sa.literal(";", sa.String()) + column + sa.literal(";", sa.String()))
    return sa.or_(
        sa.false(),
        *(
            sa.and_(
                *(
                    padded.like(sa.func.lower(sa.literal(f"%;{_like_escape(v)};%", sa.String())), escape="\\")
                    for v in group
                )
            )
            for group in groups
        ),
    )


def _in_set(ref: FieldRef, column: ColumnElement[Any], values: tuple[b.Value, ...]) -> ColumnElement[bool]:
    if not values:
        return sa.false()
    if ref.kind in (Kind.TEXT, Kind.MULTI):
        return sa.func.lower(column).in_([sa.func.lower(sa.literal(v, sa.String())) for v in values])
    return column.in_([_param(ref, column, v) for v in values])


def compile_pred(pred: Pred, resolve: Resolver) -> ColumnElement[bool]:
    """A predicate as a SQL boolean that is never NULL (two-valued, like SOQL)."""
    if isinstance(pred, b.AllOf):
        return sa.and_(sa.true(), *(compile_pred(p, resolve) for p in pred.items))
    if isinstance(pred, b.AnyOf):
        return sa.or_(sa.false(), *(compile_pred(p, resolve) for p in pred.items))
    if isinstance(pred, b.Negate):
        return sa.not_(compile_pred(pred.item, resolve))
    column, nullable = resolve(pred.ref)
    if isinstance(pred, b.IsNull):
        return column.is_(None) if nullable else sa.false()
    test: ColumnElement[bool]
    if isinstance(pred, b.Compare):
        test = _compare(pred.ref, column, pred.op, pred.value)
    elif isinstance(pred, b.InSet):
        test = _in_set(pred.ref, column, pred.values)
    elif isinstance(pred, b.Like):
        test = sa.func.lower(column).like(sa.func.lower(sa.literal(pred.pattern, sa.String())), escape="\\")
    else:
        test = _includes(column, pred.groups)
    if not nullable:
        return test
    guarded = sa.and_(column.is_not(None), test)
    if isinstance(pred, b.InSet) and pred.with_null:
        return sa.or_(column.is_(None), guarded)
    return guarded


# --- public entry points -------------------------------------------------------------------------


def compile_where(
    schema: CrmSchema, object_name: str, where_text: str, *, now: dt.datetime, tz: str = DEFAULT_TZ
) -> ColumnElement[bool]:
    """A WHERE clause (without the keyword) as a boolean over ``schema.table(object_name)``."""
    obj = b.Catalog(schema.objects).object(object_name)
    pred = b.bind_condition(parse_where(where_text), obj, schema.objects, now=now, tz=tz)
    return compile_pred(pred, _subquery_resolver(schema, schema.tables[obj.name]))


def count_where(
    conn: Connection,
    schema: CrmSchema,
    object_name: str,
    where_text: str,
    *,
    now: dt.datetime,
    tz: str = DEFAULT_TZ,
    include_deleted: bool = False,
) -> int:
    """How many records of ``object_name`` satisfy the WHERE clause."""
    table = schema.table(object_name)
    cond = compile_where(schema, object_name, where_text, now=now, tz=tz)
    if not include_deleted:
        cond = sa.and_(table.c.IsDeleted == sa.false(), cond)
    return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(cond)).scalar_one())


def _order_by(order: b.Order, resolve: Resolver) -> Any:
    column, _nullable = resolve(order.ref)
    key: ColumnElement[Any] = column
    if order.ref.kind in (Kind.TEXT, Kind.MULTI):
        key = code_point_order(sa.func.lower(column))
    elif order.ref.kind is Kind.ID:
        key = code_point_order(column)
    key = key.desc() if order.descending else key.asc()
    return key.nulls_first() if order.nulls_first else key.nulls_last()


def _api_value(kind: Kind, value: Any) -> Any:
    if value is None:
        return None
    if kind is Kind.DATETIME:
        return sf_datetime(value)
    if kind is Kind.DATE:
        return value.isoformat()
    return value


def _attributes(object_name: str, record_id: str) -> dict[str, str]:
    return {"type": object_name, "url": f"/services/data/{API_VERSION}/sobjects/{object_name}/{record_id}"}


def _records(
    rows: Sequence[sa.Row[Any]], checked: CheckedQuery, id_labels: dict[tuple[str, ...], str]
) -> list[dict[str, Any]]:
    """Salesforce-shaped records: parents nested under their relationship names (null when unset)."""
    out: list[dict[str, Any]] = []
    hop_targets: dict[tuple[str, ...], str] = {(): checked.root.name}
    for ref in checked.fields:
        for i in range(1, len(ref.hops) + 1):
            hop_targets[tuple(h.relationship for h in ref.hops[:i])] = ref.hops[i - 1].target
    for row in rows:
        m = row._mapping
        record: dict[str, Any] = {"attributes": _attributes(checked.root.name, m[id_labels[()]])}
        for index, ref in enumerate(checked.fields):
            node: dict[str, Any] | None = record
            for depth in range(1, len(ref.hops) + 1):
                key = ref.path[:depth]
                assert node is not None
                if key[-1] not in node:
                    parent_id = m[id_labels[key]]
                    node[key[-1]] = (
                        None
                        if parent_id is None
                        else {"attributes": _attributes(hop_targets[key], parent_id)}
                    )
                node = node[key[-1]]
                if node is None:
                    break
            if node is not None:
                node[ref.field.name] = _api_value(ref.kind, m[f"f{index}"])
        out.append(record)
    return out


@dataclass(frozen=True, slots=True)
class CompiledQuery:
    """A checked query and the one SELECT that answers it.

    ``shape`` is ``"records"`` (rows to serialise), ``"count"`` (``COUNT()``: one number) or
    ``"aggregate"`` (``COUNT(field)``: one row of counts labelled by alias).
    """

    checked: CheckedQuery
    statement: sa.Select[Any]
    shape: str
    id_labels: dict[tuple[str, ...], str]


def compile_query(
    schema: CrmSchema, soql: str, *, include_deleted: bool, now: dt.datetime, tz: str = DEFAULT_TZ
) -> CompiledQuery:
    """Parse, check and compile a SOQL statement (``EXPLAIN`` its ``statement`` to see the plan)."""
    checked = b.check_query(parse_query(soql), schema.objects, now=now, tz=tz)
    joins = _Joins(schema, checked.root)
    conditions: list[ColumnElement[bool]] = []
    if not include_deleted:
        conditions.append(joins.root.c.IsDeleted == sa.false())
    if checked.where is not None:
        conditions.append(compile_pred(checked.where, joins.resolve))
    if checked.count_only or checked.aggregates:
        return _aggregate(checked, joins, conditions)

    columns: list[ColumnElement[Any]] = [joins.root.c.Id.label("id0")]
    id_labels: dict[tuple[str, ...], str] = {(): "id0"}
    for index, ref in enumerate(checked.fields):
        column, _nullable = joins.resolve(ref)
        columns.append(column.label(f"f{index}"))
        for depth in range(1, len(ref.hops) + 1):
            key = ref.path[:depth]
            if key not in id_labels:
                id_labels[key] = f"id{len(id_labels)}"
                columns.append(joins.table_for(ref.hops[:depth]).c.Id.label(id_labels[key]))
    order = [_order_by(o, joins.resolve) for o in checked.order_by]
    stmt = sa.select(*columns).select_from(joins.source).where(*conditions)
    stmt = stmt.order_by(*order, joins.root.c.Id)
    if checked.limit is not None:
        stmt = stmt.limit(checked.limit)
    if checked.offset:
        stmt = stmt.offset(checked.offset)
    return CompiledQuery(checked, stmt, "records", id_labels)


def _aggregate(checked: CheckedQuery, joins: _Joins, conditions: list[ColumnElement[bool]]) -> CompiledQuery:
    """``COUNT()`` counts the rows; ``COUNT(field)`` counts the rows where the field is not null."""
    counted: list[ColumnElement[Any]] = [joins.root.c.Id.label("_root_id")]
    for agg in checked.aggregates:
        column, _nullable = joins.resolve(agg.ref)
        counted.append(column.label(agg.alias))
    inner = sa.select(*counted).select_from(joins.source).where(*conditions)
    if checked.limit is not None or checked.offset:
        inner = inner.order_by(joins.root.c.Id).limit(checked.limit).offset(checked.offset or None)
    sub = inner.subquery()
    if checked.count_only:
        return CompiledQuery(checked, sa.select(sa.func.count()).select_from(sub), "count", {})
    counts: list[ColumnElement[Any]] = [
        sa.func.count(sub.c[a.alias]).label(a.alias) for a in checked.aggregates
    ]
    return CompiledQuery(checked, sa.select(*counts), "aggregate", {})


def run_query(
    conn: Connection,
    schema: CrmSchema,
    soql: str,
    *,
    include_deleted: bool,
    now: dt.datetime,
    tz: str = DEFAULT_TZ,
) -> dict[str, Any]:
    """Run a SOQL query: ``{"totalSize", "done", "records"}`` shaped like Salesforce's answer.

    ``include_deleted`` is queryAll (records in the recycle bin too); ``now`` and ``tz`` resolve
    relative date literals.
    """
    compiled = compile_query(schema, soql, include_deleted=include_deleted, now=now, tz=tz)
    if compiled.shape == "count":
        total = conn.execute(compiled.statement).scalar_one()
        return {"totalSize": int(total), "done": True, "records": []}
    if compiled.shape == "aggregate":
        row = conn.execute(compiled.statement).one()
        record: dict[str, Any] = {"attributes": {"type": "AggregateResult"}}
        record.update({key: int(value) for key, value in row._mapping.items()})
        return {"totalSize": 1, "done": True, "records": [record]}
    rows = conn.execute(compiled.statement).all()
    records = _records(rows, compiled.checked, compiled.id_labels)
    return {"totalSize": len(records), "done": True, "records": records}


__all__ = ["CompiledQuery", "compile_pred", "compile_query", "compile_where", "count_where", "run_query"]
