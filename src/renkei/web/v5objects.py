"""Account Engagement API v5 objects over the store: the read side of ``/api/v5/objects/…``.

One query path serves every object: ``fields`` (required) picks the columns, ``limit`` (≤ 1000,
default 200) the page size, ``orderBy`` the order (``"createdAt DESC, id"``), ``deleted``
(``false``/``true``/``all``) the recycle bin, and ``<field><Operator>`` parameters filter
(``idGreaterThan``, ``updatedAtAfterOrEqualTo`` …, at most three fields, as in AE). Pages are
chained with an opaque ``nextPageToken`` (signed, valid four hours) that carries the query.
Writes go through the marketing services (``renkei.marketing.service``).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy.engine import Connection, Engine

from renkei.errors import InputError
from renkei.marketing.service import to_json
from renkei.store import dynamic
from renkei.store import tables as t

MAX_LIMIT = 1000
DEFAULT_LIMIT = 200
TOKEN_MAX_AGE = 4 * 3600
MAX_FILTERED_FIELDS = 3


class V5Error(InputError):
    """An error in AE v5's shape: ``{"code": <int>, "message"}`` with a coarse HTTP status."""

    def __init__(self, v5_code: int, message: str, *, http_status: int = 400) -> None:
        super().__init__(message, code=str(v5_code))
        self.v5_code = v5_code
        self.http_status = http_status


# Codes: AE's where AE documents one, renkei's own (10000+) otherwise — see docs/web.md.
INVALID_TOKEN_AUTH = 184
NOT_WRITABLE = 180
NO_SUCH_RECORD = 192
TOO_MANY_FILTERS = 209
PAGE_TOKEN_EXPIRED = 210
PAGE_TOKEN_INVALID = 211
RECYCLED = 219
REQUIRED_PARAMETER = 10001
INVALID_PARAMETER = 10002
INSUFFICIENT_SCOPE = 10003
INVALID_VALUE = 10004
CONFLICT = 10005


class ObjectName(enum.StrEnum):
    PROSPECTS = "prospects"
    VISITOR_ACTIVITIES = "visitor-activities"
    LISTS = "lists"
    LIST_MEMBERSHIPS = "list-memberships"
    CAMPAIGNS = "campaigns"
    USERS = "users"


@dataclass(frozen=True, slots=True)
class V5Object:
    name: ObjectName
    table: Callable[[Connection], sa.Table]
    hidden: frozenset[str] = frozenset()

    def columns(self, conn: Connection) -> dict[str, sa.ColumnElement[Any]]:
        table = self.table(conn)
        return {c.name: c for c in table.columns if c.name not in self.hidden}


def _static(table: sa.Table) -> Callable[[Connection], sa.Table]:
    return lambda _conn: table


OBJECTS: dict[ObjectName, V5Object] = {
    ObjectName.PROSPECTS: V5Object(
        ObjectName.PROSPECTS, lambda conn: dynamic.load_prospect_schema(conn).table, frozenset({"emailKey"})
    ),
    ObjectName.VISITOR_ACTIVITIES: V5Object(ObjectName.VISITOR_ACTIVITIES, _static(t.visitor_activity)),
    ObjectName.LISTS: V5Object(ObjectName.LISTS, _static(t.list_)),
    ObjectName.LIST_MEMBERSHIPS: V5Object(ObjectName.LIST_MEMBERSHIPS, _static(t.list_membership)),
    ObjectName.CAMPAIGNS: V5Object(ObjectName.CAMPAIGNS, _static(t.campaign)),
    ObjectName.USERS: V5Object(ObjectName.USERS, _static(t.ma_user)),
}

_OPERATORS: dict[str, Callable[[sa.ColumnElement[Any], Any], sa.ColumnElement[bool]]] = {
    "GreaterThanOrEqualTo": lambda c, v: c >= v,
    "LessThanOrEqualTo": lambda c, v: c <= v,
    "AfterOrEqualTo": lambda c, v: c >= v,
    "BeforeOrEqualTo": lambda c, v: c <= v,
    "GreaterThan": lambda c, v: c > v,
    "LessThan": lambda c, v: c < v,
    "After": lambda c, v: c > v,
    "Before": lambda c, v: c < v,
}


@dataclass(frozen=True, slots=True)
class Query:
    object: ObjectName
    fields: tuple[str, ...]
    limit: int = DEFAULT_LIMIT
    order_by: str = ""
    deleted: str = "false"
    filters: tuple[tuple[str, str], ...] = ()
    offset: int = 0

    def to_token(self) -> dict[str, Any]:
        return {
            "o": self.object.value,
            "f": list(self.fields),
            "l": self.limit,
            "ob": self.order_by,
            "d": self.deleted,
            "flt": [list(p) for p in self.filters],
            "off": self.offset,
        }

    @classmethod
    def from_token(cls, data: Mapping[str, Any]) -> Query:
        return cls(
            ObjectName(data["o"]),
            tuple(data["f"]),
            int(data["l"]),
            str(data["ob"]),
            str(data["d"]),
            tuple((str(a), str(b)) for a, b in data["flt"]),
            int(data["off"]),
        )


def parse_fields(text: str | None) -> tuple[str, ...]:
    if text is None or not text.strip():
        raise V5Error(
            REQUIRED_PARAMETER, "The fields parameter is required (a comma-separated list of field names)."
        )
    return tuple(dict.fromkeys(f.strip() for f in text.split(",") if f.strip()))


def split_filters(params: Mapping[str, str], reserved: Sequence[str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in params.items() if k not in reserved))


def _coerce(column: sa.ColumnElement[Any], raw: str, param: str) -> Any:
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        python_type = str
    try:
        if python_type is bool:
            if raw.lower() not in ("true", "false"):
                raise ValueError(raw)
            return raw.lower() == "true"
        if python_type is int:
            value = int(raw)
            if abs(value) > 2**62:
                raise ValueError(raw)
            return value
        if python_type is float:
            return float(raw)
        if python_type is dt.datetime:
            when = dt.datetime.fromisoformat(raw)
            return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
        if python_type is dt.date:
            return dt.date.fromisoformat(raw)
    except ValueError:
        raise V5Error(INVALID_PARAMETER, f"Invalid value for {param}: {raw!r}") from None
    return raw


class V5Reader:
    def __init__(self, engine: Engine, secret: str) -> None:
        self.engine = engine
        self.tokens = URLSafeTimedSerializer(secret, salt="renkei-v5-page")

    def decode(self, token: str) -> Query:
        try:
            data = self.tokens.loads(token, max_age=TOKEN_MAX_AGE)
            return Query.from_token(data)
        except SignatureExpired:
            raise V5Error(
                PAGE_TOKEN_EXPIRED, "The nextPageToken has expired; start the query again."
            ) from None
        except (BadSignature, KeyError, TypeError, ValueError):
            raise V5Error(PAGE_TOKEN_INVALID, "The nextPageToken is invalid.") from None

    def page(self, query: Query) -> tuple[list[dict[str, Any]], str | None]:
        """One page of records (only the asked fields) and the token of the next page, if any."""
        if not 1 <= query.limit <= MAX_LIMIT:
            raise V5Error(INVALID_PARAMETER, f"limit must be between 1 and {MAX_LIMIT}")
        if query.deleted not in ("true", "false", "all"):
            raise V5Error(INVALID_PARAMETER, "deleted must be true, false or all")
        spec = OBJECTS[query.object]
        with self.engine.connect() as conn:
            columns = spec.columns(conn)
            unknown = [f for f in query.fields if f not in columns]
            if unknown:
                raise V5Error(
                    INVALID_PARAMETER, f"Unknown fields for {query.object.value}: {', '.join(unknown)}"
                )
            where = list(self._where(columns, query))
            order = self._order(columns, query.order_by)
            stmt = (
                sa.select(*(columns[f] for f in query.fields))
                .where(*where)
                .order_by(*order)
                .limit(query.limit + 1)
                .offset(query.offset)
            )
            rows = [to_json(dict(r)) for r in conn.execute(stmt).mappings()]
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        next_token = None
        if more:
            nxt = Query(
                query.object,
                query.fields,
                query.limit,
                query.order_by,
                query.deleted,
                query.filters,
                query.offset + query.limit,
            )
            next_token = self.tokens.dumps(nxt.to_token())
        return rows, next_token

    def read(self, name: ObjectName, record_id: int, fields: Sequence[str]) -> dict[str, Any]:
        spec = OBJECTS[name]
        with self.engine.connect() as conn:
            columns = spec.columns(conn)
            unknown = [f for f in fields if f not in columns]
            if unknown:
                raise V5Error(INVALID_PARAMETER, f"Unknown fields for {name.value}: {', '.join(unknown)}")
            if abs(record_id) > 2**62:
                raise V5Error(NO_SUCH_RECORD, f"No {name.value} record with id {record_id}", http_status=404)
            row = (
                conn.execute(sa.select(*(columns[f] for f in fields)).where(columns["id"] == record_id))
                .mappings()
                .first()
            )
        if row is None:
            raise V5Error(NO_SUCH_RECORD, f"No {name.value} record with id {record_id}", http_status=404)
        return to_json(dict(row))

    def _where(
        self, columns: Mapping[str, sa.ColumnElement[Any]], query: Query
    ) -> list[sa.ColumnElement[bool]]:
        out: list[sa.ColumnElement[bool]] = []
        if "isDeleted" in columns and query.deleted != "all":
            out.append(columns["isDeleted"].is_(query.deleted == "true"))
        filtered: set[str] = set()
        for param, raw in query.filters:
            for suffix, op in _OPERATORS.items():
                field = param.removesuffix(suffix)
                if param.endswith(suffix) and field in columns:
                    out.append(op(columns[field], _coerce(columns[field], raw, param)))
                    filtered.add(field)
                    break
            else:
                raise V5Error(INVALID_PARAMETER, f"Unknown parameter {param!r}")
        if len(filtered) > MAX_FILTERED_FIELDS:
            raise V5Error(TOO_MANY_FILTERS, f"At most {MAX_FILTERED_FIELDS} fields may be filtered on")
        return out

    @staticmethod
    def _order(columns: Mapping[str, sa.ColumnElement[Any]], text: str) -> list[sa.ColumnElement[Any]]:
        order: list[sa.ColumnElement[Any]] = []
        for part in (p.strip() for p in text.split(",") if p.strip()):
            name, _, direction = part.partition(" ")
            direction = direction.strip().upper() or "ASC"
            if name not in columns or direction not in ("ASC", "DESC"):
                raise V5Error(INVALID_PARAMETER, f"Invalid orderBy {part!r}")
            order.append(columns[name].desc() if direction == "DESC" else columns[name].asc())
        order.append(columns["id"].asc())  # a total order, so pages never overlap
        return order


def checked_values(table: sa.Table, values: Mapping[str, Any], writable: Sequence[str]) -> dict[str, Any]:
    """JSON values for a marketing table, each checked against its column's type (v5 errors)."""
    bad = sorted(k for k in values if k not in writable)
    if bad:
        raise V5Error(NOT_WRITABLE, f"Fields are not writable: {', '.join(bad)}")
    out: dict[str, Any] = {}
    for name, value in values.items():
        column = table.c[name]
        if value is None:
            out[name] = None
            continue
        python_type = column.type.python_type
        if (
            python_type is bool
            and isinstance(value, bool)
            or python_type is int
            and isinstance(value, int)
            and not isinstance(value, bool)
            and abs(value) <= 2**62
        ):
            out[name] = value
        elif python_type is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)
        elif python_type is str and isinstance(value, str):
            length = getattr(column.type, "length", None)
            if length is not None and len(value) > length:
                raise V5Error(INVALID_VALUE, f"{name}: at most {length} characters")
            out[name] = value
        elif python_type is dt.date and isinstance(value, str):
            out[name] = _coerce(column, value, name)
        else:
            raise V5Error(INVALID_VALUE, f"{name}: expected a {python_type.__name__}, got {value!r}")
    return out


def membership_id(engine: Engine, list_id: int, prospect_id: int) -> int:
    m = t.list_membership.c
    with engine.connect() as conn:
        found = conn.execute(sa.select(m.id).where(m.listId == list_id, m.prospectId == prospect_id)).scalar()
    if found is None:
        raise V5Error(NO_SUCH_RECORD, f"prospect {prospect_id} is not on list {list_id}", http_status=404)
    return int(found)
