"""Evaluating a SOQL condition against one record in memory (the reference the SQL must match).

Text compares case-insensitively by folding ASCII letters only — what SQLite's ``lower()`` does —
so that SQLite, PostgreSQL and this evaluator agree; other scripts compare exactly.
"""

from __future__ import annotations

import datetime as dt
import operator
import re
import string
from collections.abc import Callable, Mapping
from typing import Any

from renkei.core.soql import nodes as n
from renkei.core.soql.bind import (
    AllOf,
    AnyOf,
    CmpOp,
    Compare,
    FieldRef,
    Includes,
    InSet,
    IsNull,
    Kind,
    Like,
    Negate,
    Pred,
    Value,
    bind_condition,
)
from renkei.crm.schema import STANDARD_OBJECTS, ObjectDef

_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)

_OPS: dict[CmpOp, Callable[[Any, Any], bool]] = {
    CmpOp.EQ: operator.eq,
    CmpOp.LT: operator.lt,
    CmpOp.LE: operator.le,
    CmpOp.GT: operator.gt,
    CmpOp.GE: operator.ge,
}


def fold(text: str) -> str:
    """Case folding for comparisons: ASCII letters to lower case."""
    return text.translate(_LOWER)


def like_regex(pattern: str) -> re.Pattern[str]:
    """A SQL LIKE pattern (escape ``\\``) as a regular expression matching the whole text."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _lookup(record: Mapping[str, Any], ref: FieldRef) -> Any:
    """The field's value; parent fields come from nested mappings under the relationship name."""
    current: Any = record
    for name in ref.path:
        if current is None:
            return None
        current = _get(current, name)
    return current


def _get(mapping: Mapping[str, Any], name: str) -> Any:
    if name in mapping:
        return mapping[name]
    low = name.lower()
    return next((v for k, v in mapping.items() if k.lower() == low), None)


def _normalise(kind: Kind, value: Any) -> Any:
    """A record value in the form comparisons need (tolerates ISO strings for dates)."""
    if kind is Kind.TEXT or kind is Kind.MULTI:
        return fold(str(value))
    if kind is Kind.DATETIME:
        v = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
        return v.replace(tzinfo=dt.UTC) if v.tzinfo is None else v.astimezone(dt.UTC)
    if kind is Kind.DATE:
        if isinstance(value, dt.datetime):
            return value.date()
        return dt.date.fromisoformat(value) if isinstance(value, str) else value
    if kind is Kind.BOOLEAN:
        return bool(value)
    return value


def _literal(kind: Kind, value: Value) -> Any:
    return fold(value) if kind in (Kind.TEXT, Kind.MULTI) and isinstance(value, str) else value


def holds(pred: Pred, record: Mapping[str, Any]) -> bool:
    """Whether a bound predicate holds for a record (API names → Python values)."""
    if isinstance(pred, AllOf):
        return all(holds(p, record) for p in pred.items)
    if isinstance(pred, AnyOf):
        return any(holds(p, record) for p in pred.items)
    if isinstance(pred, Negate):
        return not holds(pred.item, record)
    raw = _lookup(record, pred.ref)
    if isinstance(pred, IsNull):
        return raw is None
    if raw is None:
        return isinstance(pred, InSet) and pred.with_null
    kind = pred.ref.kind
    value = _normalise(kind, raw)
    if isinstance(pred, Compare):
        return _OPS[pred.op](value, _literal(kind, pred.value))
    if isinstance(pred, InSet):
        return any(value == _literal(kind, v) for v in pred.values)
    if isinstance(pred, Like):
        return like_regex(fold(pred.pattern)).fullmatch(value) is not None
    assert isinstance(pred, Includes)
    selected = frozenset(fold(str(raw)).split(";"))
    return any(all(fold(v) in selected for v in group) for group in pred.groups)


def evaluate(
    cond: n.Condition,
    record: Mapping[str, Any],
    obj: ObjectDef,
    *,
    now: dt.datetime,
    tz: str = "Asia/Tokyo",
    objects: Mapping[str, ObjectDef] | None = None,
) -> bool:
    """Whether ``record`` (of object ``obj``) satisfies the SOQL condition ``cond``.

    Parent fields (``Account.Name``) are read from nested mappings (``record["Account"]["Name"]``);
    ``objects`` gives the parents' definitions (default: the standard objects).
    """
    catalog = dict(objects) if objects is not None else dict(STANDARD_OBJECTS)
    catalog[obj.name] = obj
    return holds(bind_condition(cond, obj, catalog, now=now, tz=tz), record)
