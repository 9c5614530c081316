"""The rule model shared by dynamic lists, automation criteria and report filters (pure).

A rule is a tree: a ``Group`` (match all / any) of predicates and nested groups. Predicates:

- ``FieldPredicate``      a prospect field (standard or custom, incl. score and grade) or a
                          prospect-account field (``account.industry``) compared with a value or
                          a relative window (``lastActivityAt within last 7 days``)
- ``TagPredicate``        has / has no tag (by name)
- ``ListPredicate``       in / not in a list (by id)
- ``ActivityPredicate``   has [at least N] / has no activity filtered by type, asset, campaign and
                          a relative window on its creation time
- ``OpportunityPredicate`` has / has no opportunity (via ``opportunity_prospect``) whose fields
                          all meet the given conditions (``stageName``, ``isWon``, custom dates …)

Semantics that make SQL and Python agree exactly: a comparison with an empty value is false
(also ``!=``); text comparisons fold ASCII case only; ``within last N unit`` means
``now - N unit <= value <= now`` (dates: in the account time zone, whole days);
``not within`` means the value is present and outside that window.

The JSON form (``to_json``/``rule_from_json``) is what the store keeps; the text form lives in
``renkei.core.rules.text``.
"""

from __future__ import annotations

import calendar
import datetime as dt
import enum
import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from renkei.core.activities import ActivityType
from renkei.crm.schema import FieldDef, FieldType
from renkei.errors import QueryError
from renkei.marketing.schema import GRADES

Scalar = str | int | float | bool


class Match(enum.StrEnum):
    ALL = "all"
    ANY = "any"


class Op(enum.StrEnum):
    EQ = "="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    CONTAINS = "contains"
    STARTS_WITH = "starts with"
    IN = "in"
    EMPTY = "is empty"
    NOT_EMPTY = "is not empty"
    WITHIN = "within"
    NOT_WITHIN = "not within"


#: The comparison operators as functions (work on Python values and on SQL expressions alike).
COMPARATORS: dict[Op, Any] = {
    Op.EQ: operator.eq,
    Op.NE: operator.ne,
    Op.LT: operator.lt,
    Op.LE: operator.le,
    Op.GT: operator.gt,
    Op.GE: operator.ge,
}
ORDER_OPS = frozenset({Op.LT, Op.LE, Op.GT, Op.GE})
WINDOW_OPS = frozenset({Op.WITHIN, Op.NOT_WITHIN})
NO_VALUE_OPS = frozenset({Op.EMPTY, Op.NOT_EMPTY}) | WINDOW_OPS


class Unit(enum.StrEnum):
    DAYS = "days"
    WEEKS = "weeks"
    MONTHS = "months"


class AssetKind(enum.StrEnum):
    """Assets an activity can point at, with the ``visitor_activity`` column holding the id."""

    FORM = "form"
    FORM_HANDLER = "form_handler"
    LANDING_PAGE = "landing_page"
    FILE = "file"
    CUSTOM_REDIRECT = "custom_redirect"
    EMAIL = "email"
    LIST_EMAIL = "list_email"
    EMAIL_TEMPLATE = "email_template"

    @property
    def column(self) -> str:
        return _ASSET_COLUMNS[self]


_ASSET_COLUMNS = {
    AssetKind.FORM: "formId",
    AssetKind.FORM_HANDLER: "formHandlerId",
    AssetKind.LANDING_PAGE: "landingPageId",
    AssetKind.FILE: "fileId",
    AssetKind.CUSTOM_REDIRECT: "customRedirectId",
    AssetKind.EMAIL: "emailId",
    AssetKind.LIST_EMAIL: "listEmailId",
    AssetKind.EMAIL_TEMPLATE: "emailTemplateId",
}


def _minus_months(day: dt.date, months: int) -> dt.date:
    y, m = divmod(day.year * 12 + day.month - 1 - months, 12)
    return day.replace(year=y, month=m + 1, day=min(day.day, calendar.monthrange(y, m + 1)[1]))


@dataclass(frozen=True, slots=True)
class Window:
    """A relative window "last N days / weeks / months" ending now."""

    amount: int
    unit: Unit

    def start_date(self, today: dt.date) -> dt.date:
        if self.unit is Unit.MONTHS:
            return _minus_months(today, self.amount)
        days = self.amount * (7 if self.unit is Unit.WEEKS else 1)
        return today - dt.timedelta(days=days)

    def start(self, now: dt.datetime) -> dt.datetime:
        """Start instant for datetimes: calendar arithmetic on the UTC wall clock."""
        if self.unit is Unit.MONTHS:
            day = _minus_months(now.date(), self.amount)
            return now.replace(year=day.year, month=day.month, day=day.day)
        return now - dt.timedelta(days=self.amount * (7 if self.unit is Unit.WEEKS else 1))

    def to_json(self) -> dict[str, Any]:
        return {"amount": self.amount, "unit": self.unit.value}


@dataclass(frozen=True, slots=True)
class Condition:
    """``field op value`` (or a window) — on a prospect, a prospect account or an opportunity."""

    field: str
    op: Op
    value: Scalar | tuple[Scalar, ...] | None = None
    window: Window | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"field": self.field, "op": self.op.value}
        if self.window is not None:
            out["window"] = self.window.to_json()
        elif self.op not in NO_VALUE_OPS:
            out["value"] = list(self.value) if isinstance(self.value, tuple) else self.value
        return out


@dataclass(frozen=True, slots=True)
class FieldPredicate:
    """A prospect field, or a prospect-account field when ``field`` starts with ``account.``."""

    condition: Condition

    @property
    def on_account(self) -> bool:
        return self.condition.field.startswith("account.")

    def to_json(self) -> dict[str, Any]:
        return self.condition.to_json()


@dataclass(frozen=True, slots=True)
class TagPredicate:
    tag: str
    has: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"tag": self.tag, "has": self.has}


@dataclass(frozen=True, slots=True)
class ListPredicate:
    list_id: int
    member: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"list": self.list_id, "member": self.member}


@dataclass(frozen=True, slots=True)
class AssetRef:
    kind: AssetKind
    id: int


@dataclass(frozen=True, slots=True)
class ActivityPredicate:
    """``has [at least N] activity(…)`` or ``has no activity(…)`` ("has never")."""

    has: bool = True
    types: tuple[int, ...] = ()
    asset: AssetRef | None = None
    campaign_id: int | None = None
    window: Window | None = None
    #: True: the activity happened before the window ("not within last N days").
    outside_window: bool = False
    at_least: int = 1

    def to_json(self) -> dict[str, Any]:
        act: dict[str, Any] = {}
        if self.types:
            act["types"] = list(self.types)
        if self.asset is not None:
            act["asset"] = {"kind": self.asset.kind.value, "id": self.asset.id}
        if self.campaign_id is not None:
            act["campaign"] = self.campaign_id
        if self.window is not None:
            act["notWithin" if self.outside_window else "within"] = self.window.to_json()
        if self.at_least != 1:
            act["atLeast"] = self.at_least
        return {"activity": act, "has": self.has}


@dataclass(frozen=True, slots=True)
class OpportunityPredicate:
    """``has opportunity(c1, c2 …)``: one linked opportunity meets every condition."""

    has: bool = True
    conditions: tuple[Condition, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"opportunity": [c.to_json() for c in self.conditions], "has": self.has}


Predicate = FieldPredicate | TagPredicate | ListPredicate | ActivityPredicate | OpportunityPredicate


@dataclass(frozen=True, slots=True)
class Group:
    match: Match
    items: tuple[Node, ...]

    def to_json(self) -> dict[str, Any]:
        return {"match": self.match.value, "rules": [i.to_json() for i in self.items]}


Node = Group | Predicate


def walk(node: Node) -> list[Node]:
    """Every node of a rule, depth first (the group itself first)."""
    out: list[Node] = [node]
    if isinstance(node, Group):
        for item in node.items:
            out += walk(item)
    return out


def referenced_lists(node: Node) -> set[int]:
    return {n.list_id for n in walk(node) if isinstance(n, ListPredicate)}


# ---------------------------------------------------------------------------------------------
# JSON → model (shape checks; field names and types are checked by ``validate``)


def _bad(path: str, message: str) -> QueryError:
    return QueryError(f"invalid rule at {path}: {message}", code="INVALID_RULE")


def _int(value: Any, path: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _bad(path, f"expected an integer >= {minimum}, got {value!r}")
    return value


def _scalar(value: Any, path: str) -> Scalar:
    if isinstance(value, float) and not math.isfinite(value):
        raise _bad(path, f"numbers must be finite, got {value!r}")
    if isinstance(value, (str, int, float, bool)):
        return value
    raise _bad(path, f"expected a string, number or boolean, got {value!r}")


def _window(data: Any, path: str) -> Window:
    if not isinstance(data, Mapping) or set(data) != {"amount", "unit"}:
        raise _bad(path, 'a window is {"amount": N, "unit": "days"|"weeks"|"months"}')
    try:
        unit = Unit(data["unit"])
    except ValueError:
        raise _bad(f"{path}.unit", f"unknown unit {data['unit']!r} (days, weeks, months)") from None
    return Window(_int(data["amount"], f"{path}.amount", minimum=1), unit)


def _condition(data: Any, path: str) -> Condition:
    if not isinstance(data, Mapping) or "field" not in data or "op" not in data:
        raise _bad(path, 'a condition is {"field": …, "op": …, "value": …}')
    unknown = set(data) - {"field", "op", "value", "window"}
    if unknown:
        raise _bad(path, f"unknown keys {sorted(unknown)}")
    name = data["field"]
    if not isinstance(name, str) or not name:
        raise _bad(f"{path}.field", "expected a field name")
    try:
        op = Op(data["op"])
    except ValueError:
        raise _bad(f"{path}.op", f"unknown operator {data['op']!r}") from None
    if op in WINDOW_OPS:
        if "window" not in data or "value" in data:
            raise _bad(path, f"'{op.value}' takes a window, not a value")
        return Condition(name, op, window=_window(data["window"], f"{path}.window"))
    if "window" in data:
        raise _bad(path, f"'{op.value}' takes no window")
    if op in NO_VALUE_OPS:
        if "value" in data:
            raise _bad(path, f"'{op.value}' takes no value")
        return Condition(name, op)
    if "value" not in data:
        raise _bad(path, f"'{op.value}' needs a value")
    raw = data["value"]
    if op is Op.IN:
        if not isinstance(raw, list) or not raw:
            raise _bad(f"{path}.value", "'in' needs a non-empty list")
        return Condition(name, op, tuple(_scalar(v, f"{path}.value[{i}]") for i, v in enumerate(raw)))
    return Condition(name, op, _scalar(raw, f"{path}.value"))


def _bool(data: Mapping[str, Any], key: str, path: str) -> bool:
    value = data.get(key, True)
    if not isinstance(value, bool):
        raise _bad(f"{path}.{key}", f"expected true or false, got {value!r}")
    return value


def _activity(data: Mapping[str, Any], path: str) -> ActivityPredicate:
    act = data["activity"]
    if not isinstance(act, Mapping):
        raise _bad(f"{path}.activity", "expected an object")
    unknown = set(act) - {"types", "asset", "campaign", "within", "notWithin", "atLeast"}
    if unknown:
        raise _bad(f"{path}.activity", f"unknown keys {sorted(unknown)}")
    types: list[int] = []
    for i, code in enumerate(act.get("types", [])):
        code = _int(code, f"{path}.activity.types[{i}]", minimum=1)
        if code not in ActivityType._value2member_map_:
            raise _bad(f"{path}.activity.types[{i}]", f"unknown activity type {code}")
        types.append(code)
    asset = None
    if "asset" in act:
        raw = act["asset"]
        if not isinstance(raw, Mapping) or set(raw) != {"kind", "id"}:
            raise _bad(f"{path}.activity.asset", 'an asset is {"kind": "form", "id": 12}')
        try:
            kind = AssetKind(raw["kind"])
        except ValueError:
            names = ", ".join(k.value for k in AssetKind)
            raise _bad(
                f"{path}.activity.asset.kind", f"unknown asset kind {raw['kind']!r} ({names})"
            ) from None
        asset = AssetRef(kind, _int(raw["id"], f"{path}.activity.asset.id", minimum=1))
    if "within" in act and "notWithin" in act:
        raise _bad(f"{path}.activity", "give either within or notWithin")
    window_key = "notWithin" if "notWithin" in act else "within"
    window = _window(act[window_key], f"{path}.activity.{window_key}") if window_key in act else None
    campaign = act.get("campaign")
    has = _bool(data, "has", path)
    at_least = _int(act.get("atLeast", 1), f"{path}.activity.atLeast", minimum=1)
    if not has and at_least != 1:
        raise _bad(path, "'has no activity' takes no atLeast")
    return ActivityPredicate(
        has=has,
        types=tuple(types),
        asset=asset,
        campaign_id=None if campaign is None else _int(campaign, f"{path}.activity.campaign", minimum=1),
        window=window,
        outside_window=window_key == "notWithin" and window is not None,
        at_least=at_least,
    )


def rule_from_json(data: Any, path: str = "rule") -> Node:
    """Parse the stored JSON form; raises ``QueryError`` naming the bad part."""
    if not isinstance(data, Mapping):
        raise _bad(path, f"expected an object, got {type(data).__name__}")
    keys = set(data)
    if "match" in keys:
        if keys != {"match", "rules"}:
            raise _bad(path, 'a group is {"match": "all"|"any", "rules": [...]}')
        try:
            match = Match(data["match"])
        except ValueError:
            raise _bad(f"{path}.match", f"expected 'all' or 'any', got {data['match']!r}") from None
        rules = data["rules"]
        if not isinstance(rules, list):
            raise _bad(f"{path}.rules", "expected a list")
        return Group(match, tuple(rule_from_json(r, f"{path}.rules[{i}]") for i, r in enumerate(rules)))
    if "tag" in keys:
        if keys - {"tag", "has"} or not isinstance(data["tag"], str) or not data["tag"]:
            raise _bad(path, 'a tag predicate is {"tag": "name", "has": true}')
        return TagPredicate(data["tag"], _bool(data, "has", path))
    if "list" in keys:
        if keys - {"list", "member"}:
            raise _bad(path, 'a list predicate is {"list": 3, "member": true}')
        return ListPredicate(_int(data["list"], f"{path}.list", minimum=1), _bool(data, "member", path))
    if "activity" in keys:
        if keys - {"activity", "has"}:
            raise _bad(path, 'an activity predicate is {"activity": {...}, "has": true}')
        return _activity(data, path)
    if "opportunity" in keys:
        if keys - {"opportunity", "has"} or not isinstance(data["opportunity"], list):
            raise _bad(path, 'an opportunity predicate is {"opportunity": [conditions], "has": true}')
        conds = tuple(_condition(c, f"{path}.opportunity[{i}]") for i, c in enumerate(data["opportunity"]))
        return OpportunityPredicate(_bool(data, "has", path), conds)
    if "field" in keys:
        return FieldPredicate(_condition(data, path))
    raise _bad(path, f"not a group or predicate: keys {sorted(keys)}")


# ---------------------------------------------------------------------------------------------
# Field catalog and validation


class Kind(enum.StrEnum):
    """How a field compares: the rule language's own small type system."""

    TEXT = "text"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATE = "date"
    DATETIME = "datetime"
    GRADE = "grade"


@dataclass(frozen=True, slots=True)
class Catalog:
    """The fields a rule may name, with their kinds (built from the live schemas).

    ``account_json`` / ``opportunity_json``: unknown ``__c`` names are looked up in the row's
    ``customFields`` JSON, as text (or as a date under a window operator) unless listed here.
    """

    prospect: Mapping[str, Kind]
    account: Mapping[str, Kind]
    opportunity: Mapping[str, Kind]
    opportunity_json: Mapping[str, Kind]

    def prospect_kind(self, name: str) -> Kind | None:
        return self.prospect.get(name)


#: Prospect-account columns (``prospect_account``) a rule may name.
ACCOUNT_FIELDS: dict[str, Kind] = {
    **{
        n: Kind.TEXT
        for n in (
            "name", "salesforceId", "billingCity", "billingState", "billingZip", "billingCountry",
            "shippingCity", "shippingState", "shippingZip", "shippingCountry", "phone", "website",
            "industry", "type", "rating", "sic",
        )
    },
    "annualRevenue": Kind.NUMBER,
    "employees": Kind.NUMBER,
    "createdAt": Kind.DATETIME,
    "updatedAt": Kind.DATETIME,
}  # fmt: skip

#: Opportunity columns (``opportunity``) a rule may name.
OPPORTUNITY_FIELDS: dict[str, Kind] = {
    "name": Kind.TEXT,
    "salesforceId": Kind.TEXT,
    "stageName": Kind.TEXT,
    "type": Kind.TEXT,
    "leadSource": Kind.TEXT,
    "isWon": Kind.BOOLEAN,
    "isClosed": Kind.BOOLEAN,
    "amount": Kind.NUMBER,
    "probability": Kind.NUMBER,
    "closeDate": Kind.DATE,
    "createdAt": Kind.DATETIME,
    "updatedAt": Kind.DATETIME,
}


def kind_of(f: FieldDef) -> Kind:
    if f.name == "grade":
        return Kind.GRADE
    if f.type in (FieldType.INT, FieldType.DOUBLE, FieldType.CURRENCY, FieldType.PERCENT):
        return Kind.NUMBER
    if f.type is FieldType.BOOLEAN:
        return Kind.BOOLEAN
    if f.type is FieldType.DATE:
        return Kind.DATE
    if f.type is FieldType.DATETIME:
        return Kind.DATETIME
    return Kind.TEXT


def build_catalog(
    prospect_fields: Mapping[str, FieldDef], opportunity_custom: Sequence[FieldDef] = ()
) -> Catalog:
    """The catalog for the live prospect schema and the CRM's opportunity custom fields."""
    return Catalog(
        prospect={name: kind_of(f) for name, f in prospect_fields.items()},
        account=ACCOUNT_FIELDS,
        opportunity=OPPORTUNITY_FIELDS,
        opportunity_json={f.name: kind_of(f) for f in opportunity_custom},
    )


def json_field_kind(cond: Condition, known: Mapping[str, Kind]) -> Kind:
    """Kind of a custom field read from a ``customFields`` JSON document."""
    kind = known.get(cond.field)
    if kind is not None:
        return Kind.DATE if kind is Kind.DATETIME else kind
    if cond.op in WINDOW_OPS or cond.field.endswith("Date__c"):
        return Kind.DATE
    return Kind.TEXT


def _check_condition(cond: Condition, kind: Kind, path: str) -> None:
    where = f"{path} ({cond.field})"
    if cond.op in ORDER_OPS and kind in (Kind.TEXT, Kind.BOOLEAN):
        raise _bad(where, f"'{cond.op.value}' does not apply to a {kind.value} field")
    if cond.op in (Op.CONTAINS, Op.STARTS_WITH) and kind is not Kind.TEXT:
        raise _bad(where, f"'{cond.op.value}' applies to text fields only, not {kind.value}")
    if cond.op in WINDOW_OPS and kind not in (Kind.DATE, Kind.DATETIME):
        raise _bad(where, f"'{cond.op.value}' applies to date and datetime fields only, not {kind.value}")
    if cond.op in (Op.EMPTY, Op.NOT_EMPTY) and kind is Kind.BOOLEAN:
        raise _bad(where, "a boolean field is never empty; compare it with true or false")
    if cond.op is Op.IN and kind is Kind.BOOLEAN:
        raise _bad(where, "'in' does not apply to a boolean field")
    values = cond.value if isinstance(cond.value, tuple) else (cond.value,)
    if cond.op in NO_VALUE_OPS:
        return
    for v in values:
        coerce(kind, v, where)


def coerce(kind: Kind, value: Any, where: str = "value") -> Any:
    """A rule value as the Python value it compares as (text folded, dates parsed …)."""
    if kind is Kind.TEXT:
        if not isinstance(value, str):
            raise _bad(where, f"expected a text value (in quotes), got {value!r}")
        return fold(value)
    if kind is Kind.NUMBER:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _bad(where, f"expected a number, got {value!r}")
        return value
    if kind is Kind.BOOLEAN:
        if not isinstance(value, bool):
            raise _bad(where, f"expected true or false, got {value!r}")
        return value
    if kind is Kind.GRADE:
        if value not in GRADE_INDEX:
            raise _bad(where, f"expected a grade ({', '.join(GRADE_ORDER)}), got {value!r}")
        return GRADE_INDEX[value]
    if not isinstance(value, str):
        raise _bad(where, f"expected an ISO {kind.value} in quotes, got {value!r}")
    try:
        if kind is Kind.DATE:
            return dt.date.fromisoformat(value)
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _bad(where, f"expected an ISO {kind.value}, got {value!r}") from None
    return parsed.astimezone(dt.UTC) if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


#: Grades from lowest to highest.
GRADE_ORDER: tuple[str, ...] = GRADES
GRADE_INDEX = {g: i for i, g in enumerate(GRADE_ORDER)}

_ASCII_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fold(text: str) -> str:
    """ASCII-only case folding, the one both databases and Python do identically."""
    return text.translate(_ASCII_FOLD)


def validate(node: Node, catalog: Catalog, path: str = "rule") -> None:
    """Check field names, operators and values against the catalog; raise ``QueryError``."""
    if isinstance(node, Group):
        if not node.items:
            raise _bad(path, f"an empty '{node.match.value}' group matches nothing useful; add a rule")
        for i, item in enumerate(node.items):
            validate(item, catalog, f"{path}.rules[{i}]")
    elif isinstance(node, FieldPredicate):
        cond = node.condition
        if node.on_account:
            name = cond.field.removeprefix("account.")
            if name in catalog.account:
                kind = catalog.account[name]
            elif name.endswith("__c"):
                kind = json_field_kind(Condition(name, cond.op), {})
            else:
                raise _bad(path, f"unknown account field '{name}'")
        else:
            found = catalog.prospect_kind(cond.field)
            if found is None:
                raise _bad(path, f"unknown prospect field '{cond.field}'")
            kind = found
        _check_condition(cond, kind, path)
    elif isinstance(node, OpportunityPredicate):
        for i, cond in enumerate(node.conditions):
            where = f"{path}.opportunity[{i}]"
            if cond.field in catalog.opportunity:
                kind = catalog.opportunity[cond.field]
            elif cond.field.endswith("__c"):
                kind = json_field_kind(cond, catalog.opportunity_json)
            else:
                raise _bad(where, f"unknown opportunity field '{cond.field}'")
            _check_condition(cond, kind, where)


def parse_json_rule(data: Any, catalog: Catalog | None = None) -> Node:
    node = rule_from_json(data)
    if catalog is not None:
        validate(node, catalog)
    return node


def conditions_of(node: Node) -> Sequence[Condition]:
    if isinstance(node, FieldPredicate):
        return (node.condition,)
    if isinstance(node, OpportunityPredicate):
        return node.conditions
    return ()
