"""The SOQL syntax tree: immutable values produced by the parser, before any schema is consulted.

Positions (``Position``) say where a node starts in the query text; they are left out of equality
so that two parses of the same query with different spacing compare equal.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from dataclasses import field as _field


@dataclass(frozen=True, slots=True)
class Position:
    line: int
    column: int

    def __str__(self) -> str:
        return f"line {self.line}:{self.column}"


NOWHERE = Position(1, 1)


@dataclass(frozen=True, slots=True)
class FieldPath:
    """``Name`` or a parent relationship path such as ``Account.Owner.Name``, as written."""

    parts: tuple[str, ...]
    pos: Position = _field(default=NOWHERE, compare=False)

    @property
    def text(self) -> str:
        return ".".join(self.parts)


# --- literals ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StringLit:
    """A quoted string. ``value`` is unescaped; ``raw`` is the source text between the quotes
    (LIKE needs it: ``\\%`` there is a literal percent sign, not a wildcard)."""

    value: str
    raw: str = _field(default="", compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class NumberLit:
    value: int | float


@dataclass(frozen=True, slots=True)
class BoolLit:
    value: bool


@dataclass(frozen=True, slots=True)
class NullLit:
    pass


@dataclass(frozen=True, slots=True)
class DateLit:
    """``2024-05-01``: valid against date fields only."""

    value: dt.date


@dataclass(frozen=True, slots=True)
class DateTimeLit:
    """``2024-05-01T10:00:00Z`` / ``…+09:00``: valid against datetime fields only (kept in UTC)."""

    value: dt.datetime


@dataclass(frozen=True, slots=True)
class DateRangeLit:
    """A relative date literal (``TODAY``, ``LAST_N_DAYS:30`` …): a range of whole days."""

    name: str
    n: int | None = None


Literal = StringLit | NumberLit | BoolLit | NullLit | DateLit | DateTimeLit | DateRangeLit


# --- conditions ----------------------------------------------------------------------------------


class Op(enum.StrEnum):
    EQ = "="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="


@dataclass(frozen=True, slots=True)
class Comparison:
    field: FieldPath
    op: Op
    value: Literal
    pos: Position = _field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Like:
    field: FieldPath
    pattern: StringLit


@dataclass(frozen=True, slots=True)
class InList:
    field: FieldPath
    values: tuple[Literal, ...]
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Includes:
    """``INCLUDES('a;b','c')`` (or ``EXCLUDES`` when ``excludes``): ``;`` is AND, ``,`` is OR."""

    field: FieldPath
    values: tuple[str, ...]
    excludes: bool = False


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Condition


Condition = Comparison | Like | InList | Includes | And | Or | Not


# --- the query -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CountAll:
    """``COUNT()``: the answer is ``totalSize`` alone."""

    pos: Position = _field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Count:
    """``COUNT(field) [alias]``: one AggregateResult row."""

    field: FieldPath
    alias: str | None = None


SelectItem = FieldPath | CountAll | Count


@dataclass(frozen=True, slots=True)
class OrderItem:
    field: FieldPath
    descending: bool = False
    #: None: Salesforce's default (nulls first ascending, last descending).
    nulls_first: bool | None = None


@dataclass(frozen=True, slots=True)
class Query:
    select: tuple[SelectItem, ...]
    object_name: str
    where: Condition | None = None
    order_by: tuple[OrderItem, ...] = ()
    limit: int | None = None
    offset: int | None = None
    object_pos: Position = _field(default=NOWHERE, compare=False)
