"""Checking a parsed query against the CRM's metadata, and the predicates both evaluators share.

``bind_condition`` resolves every field path (case-insensitively, through parent relationships),
checks each literal against its field's type with Salesforce's messages, resolves relative date
literals to concrete boundaries, and lowers the condition to a small predicate language:

    Compare(ref, op, value)     op in = < <= > >=; false when the field is null
    IsNull(ref)                 ``= null``
    InSet(ref, values, null)    ``IN (…)``
    Like(ref, pattern)          SQL LIKE syntax with ``\\`` as the escape character
    Includes(ref, groups)       multi-select picklists: any group whose every value is selected
    AllOf / AnyOf / Negate      AND / OR / NOT

SOQL's logic is two-valued: a comparison with a null field is false, so ``!=`` and ``NOT IN`` are
the negations of ``=`` and ``IN`` and keep the nulls. The in-memory evaluator (``evaluate``) and the
SQL compiler (``renkei.crm.soql_sql``) both consume these predicates, which is what makes their
answers equal.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass

from renkei.core.soql import nodes as n
from renkei.core.soql.dates import day_range, instant_range
from renkei.core.soql.parser import SoqlError, like_pattern
from renkei.crm.schema import FieldDef, FieldType, ObjectDef
from renkei.ids import MalformedIdError, to18


class Kind(enum.StrEnum):
    """How a field's values compare."""

    TEXT = "text"  # case-insensitive
    ID = "id"  # exact, 15-character ids widened to 18
    MULTI = "multipicklist"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATE = "date"
    DATETIME = "datetime"


_KINDS: dict[FieldType, Kind] = {
    FieldType.ID: Kind.ID,
    FieldType.REFERENCE: Kind.ID,
    FieldType.MULTIPICKLIST: Kind.MULTI,
    FieldType.BOOLEAN: Kind.BOOLEAN,
    FieldType.DATE: Kind.DATE,
    FieldType.DATETIME: Kind.DATETIME,
    FieldType.INT: Kind.NUMBER,
    FieldType.DOUBLE: Kind.NUMBER,
    FieldType.CURRENCY: Kind.NUMBER,
    FieldType.PERCENT: Kind.NUMBER,
}

#: Salesforce's type names in "must be of type …" messages.
_TYPE_NAMES: dict[Kind, str] = {
    Kind.NUMBER: "double",
    Kind.BOOLEAN: "boolean",
    Kind.DATE: "date",
    Kind.DATETIME: "dateTime",
}


def kind_of(f: FieldDef) -> Kind:
    return _KINDS.get(f.type, Kind.TEXT)


@dataclass(frozen=True, slots=True)
class Hop:
    """One step up a parent relationship: ``reference_field`` on the child points at ``target``."""

    reference_field: str
    relationship: str
    target: str


@dataclass(frozen=True, slots=True)
class FieldRef:
    """A resolved field: the relationship hops from the root object, then the field itself."""

    hops: tuple[Hop, ...]
    field: FieldDef
    kind: Kind

    @property
    def path(self) -> tuple[str, ...]:
        """Canonical API names (``("Account", "Name")``), as the JSON nests them."""
        return tuple(h.relationship for h in self.hops) + (self.field.name,)


class CmpOp(enum.StrEnum):
    EQ = "="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="


Value = str | int | float | bool | dt.date | dt.datetime


@dataclass(frozen=True, slots=True)
class Compare:
    ref: FieldRef
    op: CmpOp
    value: Value


@dataclass(frozen=True, slots=True)
class IsNull:
    ref: FieldRef


@dataclass(frozen=True, slots=True)
class InSet:
    ref: FieldRef
    values: tuple[Value, ...]
    with_null: bool = False


@dataclass(frozen=True, slots=True)
class Like:
    ref: FieldRef
    pattern: str


@dataclass(frozen=True, slots=True)
class Includes:
    ref: FieldRef
    groups: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, slots=True)
class AllOf:
    items: tuple[Pred, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    items: tuple[Pred, ...]


@dataclass(frozen=True, slots=True)
class Negate:
    item: Pred


Pred = Compare | IsNull | InSet | Like | Includes | AllOf | AnyOf | Negate


# --- resolving names -----------------------------------------------------------------------------


class Catalog:
    """Case-insensitive access to object definitions by name."""

    def __init__(self, objects: Mapping[str, ObjectDef]) -> None:
        self._objects = {name.lower(): obj for name, obj in objects.items()}

    def get(self, name: str) -> ObjectDef | None:
        return self._objects.get(name.lower())

    def object(self, name: str, pos: n.Position | None = None) -> ObjectDef:
        obj = self.get(name)
        if obj is None:
            raise SoqlError(f"sObject type '{name}' is not supported.", code="INVALID_TYPE", pos=pos)
        return obj


def _no_such_column(name: str, obj: ObjectDef, pos: n.Position) -> SoqlError:
    return SoqlError(
        f"No such column '{name}' on entity '{obj.name}'. If you are attempting to use a custom field, "
        "be sure to append the '__c' after the custom field name.",
        code="INVALID_FIELD",
        pos=pos,
    )


def resolve(path: n.FieldPath, root: ObjectDef, catalog: Catalog) -> FieldRef:
    """The field a path names, through up to five parent relationships."""
    if len(path.parts) > 6:
        raise SoqlError("relationship paths may span at most 5 levels", code="INVALID_FIELD", pos=path.pos)
    obj = root
    hops: list[Hop] = []
    for name in path.parts[:-1]:
        ref = obj.relationship(name) if name else None
        if ref is None or not ref.reference_to:
            raise SoqlError(
                f"Didn't understand relationship '{name}' in field path. If you are attempting to use a "
                "custom relationship, be sure to append the '__r' after the custom relationship name.",
                code="INVALID_FIELD",
                pos=path.pos,
            )
        if len(ref.reference_to) != 1:
            raise SoqlError(
                f"polymorphic relationship '{ref.relationship_name}' is not supported in this SOQL subset",
                code="INVALID_FIELD",
                pos=path.pos,
            )
        target = catalog.object(ref.reference_to[0], path.pos)
        hops.append(Hop(ref.name, ref.relationship_name or name, target.name))
        obj = target
    f = obj.field(path.parts[-1])
    if f is None:
        raise _no_such_column(path.parts[-1], obj, path.pos)
    return FieldRef(tuple(hops), f, kind_of(f))


# --- literals against field types ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Context:
    root: ObjectDef
    catalog: Catalog
    now: dt.datetime
    tz: str


def _type_error(ref: FieldRef, pos: n.Position) -> SoqlError:
    if ref.kind in (Kind.TEXT, Kind.MULTI, Kind.ID):
        message = (
            f"value of filter criterion for field '{ref.field.name}' must be of type string "
            "and should be enclosed in quotes"
        )
    else:
        type_name = "integer" if ref.field.type is FieldType.INT else _TYPE_NAMES[ref.kind]
        message = (
            f"value of filter criterion for field '{ref.field.name}' must be of type {type_name} "
            "and should not be enclosed in quotes"
        )
    return SoqlError(message, code="INVALID_FIELD", pos=pos)


def _scalar(ref: FieldRef, lit: n.Literal, pos: n.Position) -> Value:
    """A plain literal's value for this field (not null, not a date range)."""
    kind = ref.kind
    if kind in (Kind.TEXT, Kind.MULTI) and isinstance(lit, n.StringLit):
        return lit.value
    if kind is Kind.ID and isinstance(lit, n.StringLit):
        try:
            return to18(lit.value)
        except MalformedIdError:
            raise SoqlError(
                f"invalid ID field: {lit.value}", code="INVALID_QUERY_FILTER_OPERATOR", pos=pos
            ) from None
    if kind is Kind.NUMBER and isinstance(lit, n.NumberLit):
        return lit.value
    if kind is Kind.BOOLEAN and isinstance(lit, n.BoolLit):
        return lit.value
    if kind is Kind.DATE and isinstance(lit, n.DateLit):
        return lit.value
    if kind is Kind.DATETIME and isinstance(lit, n.DateTimeLit):
        return lit.value
    raise _type_error(ref, pos)


def _bounds(ref: FieldRef, lit: n.DateRangeLit, ctx: _Context, pos: n.Position) -> tuple[Value, Value]:
    if ref.kind not in (Kind.DATE, Kind.DATETIME):
        raise _type_error(ref, pos)
    days = day_range(lit.name, lit.n, now=ctx.now, tz=ctx.tz)
    if ref.kind is Kind.DATE:
        return days
    return instant_range(days, ctx.tz)


def _within(ref: FieldRef, start: Value, end: Value) -> Pred:
    return AllOf((Compare(ref, CmpOp.GE, start), Compare(ref, CmpOp.LT, end)))


_ALLOWED_OPS: dict[Kind, frozenset[n.Op]] = {
    Kind.BOOLEAN: frozenset({n.Op.EQ, n.Op.NE}),
    Kind.MULTI: frozenset({n.Op.EQ, n.Op.NE}),
}


def _comparison(c: n.Comparison, ctx: _Context) -> Pred:
    ref = resolve(c.field, ctx.root, ctx.catalog)
    if isinstance(c.value, n.NullLit):
        if c.op is n.Op.EQ:
            return IsNull(ref)
        if c.op is n.Op.NE:
            return Negate(IsNull(ref))
        raise SoqlError(f"invalid operator on null: {c.op}", pos=c.pos)
    allowed = _ALLOWED_OPS.get(ref.kind)
    if allowed is not None and c.op not in allowed:
        raise SoqlError(f"invalid operator {c.op} on {ref.kind} field '{ref.field.name}'", pos=c.pos)
    if isinstance(c.value, n.DateRangeLit):
        start, end = _bounds(ref, c.value, ctx, c.pos)
        ranged: dict[n.Op, Pred] = {
            n.Op.EQ: _within(ref, start, end),
            n.Op.NE: Negate(_within(ref, start, end)),
            n.Op.LT: Compare(ref, CmpOp.LT, start),
            n.Op.LE: Compare(ref, CmpOp.LT, end),
            n.Op.GT: Compare(ref, CmpOp.GE, end),
            n.Op.GE: Compare(ref, CmpOp.GE, start),
        }
        return ranged[c.op]
    value = _scalar(ref, c.value, c.pos)
    if c.op is n.Op.NE:
        return Negate(Compare(ref, CmpOp.EQ, value))
    return Compare(ref, CmpOp(c.op.value), value)


def _in_list(c: n.InList, ctx: _Context) -> Pred:
    ref = resolve(c.field, ctx.root, ctx.catalog)
    values: list[Value] = []
    ranges: list[Pred] = []
    with_null = False
    for lit in c.values:
        if isinstance(lit, n.NullLit):
            with_null = True
        elif isinstance(lit, n.DateRangeLit):
            ranges.append(_within(ref, *_bounds(ref, lit, ctx, c.field.pos)))
        else:
            values.append(_scalar(ref, lit, c.field.pos))
    pred: Pred = InSet(ref, tuple(values), with_null)
    if ranges:
        pred = AnyOf((pred, *ranges))
    return Negate(pred) if c.negated else pred


def _like(c: n.Like, ctx: _Context) -> Pred:
    ref = resolve(c.field, ctx.root, ctx.catalog)
    if ref.kind is not Kind.TEXT:
        raise SoqlError(
            f"invalid operator on field '{ref.field.name}': LIKE applies to string fields only",
            code="INVALID_FIELD",
            pos=c.field.pos,
        )
    return Like(ref, like_pattern(c.pattern.raw, c.field.pos))


def _includes(c: n.Includes, ctx: _Context) -> Pred:
    ref = resolve(c.field, ctx.root, ctx.catalog)
    if ref.kind is not Kind.MULTI:
        raise SoqlError(
            f"INCLUDES/EXCLUDES operator only valid on multipicklist field: '{ref.field.name}'",
            code="INVALID_FIELD",
            pos=c.field.pos,
        )
    groups = []
    for text in c.values:
        items = tuple(dict.fromkeys(v.strip() for v in text.split(";") if v.strip()))
        if items:
            groups.append(items)
    pred = Includes(ref, tuple(groups))
    return Negate(pred) if c.excludes else pred


def _bind(cond: n.Condition, ctx: _Context) -> Pred:
    if isinstance(cond, n.Comparison):
        return _comparison(cond, ctx)
    if isinstance(cond, n.InList):
        return _in_list(cond, ctx)
    if isinstance(cond, n.Like):
        return _like(cond, ctx)
    if isinstance(cond, n.Includes):
        return _includes(cond, ctx)
    if isinstance(cond, n.And):
        return AllOf(tuple(_bind(c, ctx) for c in cond.items))
    if isinstance(cond, n.Or):
        return AnyOf(tuple(_bind(c, ctx) for c in cond.items))
    return Negate(_bind(cond.item, ctx))


def bind_condition(
    cond: n.Condition,
    root: ObjectDef,
    objects: Mapping[str, ObjectDef],
    *,
    now: dt.datetime,
    tz: str = "Asia/Tokyo",
) -> Pred:
    """Check ``cond`` against ``root`` (and its parents in ``objects``) and lower it to predicates."""
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    return _bind(cond, _Context(root, Catalog(objects), now, tz))


# --- whole queries -------------------------------------------------------------------------------

MAX_OFFSET = 2000


@dataclass(frozen=True, slots=True)
class Aggregate:
    """``COUNT(field)``: counts the rows where the field is not null, under ``alias``."""

    ref: FieldRef
    alias: str


@dataclass(frozen=True, slots=True)
class Order:
    ref: FieldRef
    descending: bool
    nulls_first: bool


@dataclass(frozen=True, slots=True)
class CheckedQuery:
    """A query whose names and literals are resolved: what the SQL compiler works from."""

    root: ObjectDef
    fields: tuple[FieldRef, ...]
    count_only: bool
    aggregates: tuple[Aggregate, ...]
    where: Pred | None
    order_by: tuple[Order, ...]
    limit: int | None
    offset: int | None


def check_query(
    query: n.Query, objects: Mapping[str, ObjectDef], *, now: dt.datetime, tz: str = "Asia/Tokyo"
) -> CheckedQuery:
    catalog = Catalog(objects)
    root = catalog.object(query.object_name, query.object_pos)
    fields: list[FieldRef] = []
    aggregates: list[Aggregate] = []
    count_only = False
    seen: set[tuple[str, ...]] = set()
    for item in query.select:
        if isinstance(item, n.CountAll):
            if len(query.select) > 1:
                raise SoqlError("COUNT() must be the only element in the SELECT list", pos=item.pos)
            count_only = True
        elif isinstance(item, n.Count):
            ref = resolve(item.field, root, catalog)
            alias = item.alias or f"expr{sum(1 for a in aggregates if a.alias.startswith('expr'))}"
            aggregates.append(Aggregate(ref, alias))
        else:
            ref = resolve(item, root, catalog)
            key = tuple(p.lower() for p in ref.path)
            if key in seen:
                raise SoqlError(f"duplicate field selected: {item.text}", pos=item.pos)
            seen.add(key)
            fields.append(ref)
    if aggregates and fields:
        first = next(i for i in query.select if isinstance(i, n.FieldPath))
        raise SoqlError(
            f"Field must be grouped or aggregated: {first.text}", code="MALFORMED_QUERY", pos=first.pos
        )
    if query.offset is not None and query.offset > MAX_OFFSET:
        raise SoqlError(f"Maximum SOQL offset allowed is {MAX_OFFSET}", code="NUMBER_OUTSIDE_VALID_RANGE")
    where = None
    if query.where is not None:
        where = _bind(query.where, _Context(root, catalog, now, tz))
    order = tuple(
        Order(
            resolve(o.field, root, catalog),
            o.descending,
            o.nulls_first if o.nulls_first is not None else not o.descending,
        )
        for o in query.order_by
    )
    return CheckedQuery(
        root, tuple(fields), count_only, tuple(aggregates), where, order, query.limit, query.offset
    )
