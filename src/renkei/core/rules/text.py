"""The readable text form of rules: a lark grammar, a parser and a formatter that round-trip.

Example::

    all(
      score >= 50,
      grade >= "B",
      any(has tag "VIP", in list 3),
      has at least 3 activity(type in (VISIT, SUCCESS), within last 7 days),
      has no activity(type in (OPEN), not within last 90 days),
      account.industry = "Manufacturing",
      has opportunity(stageName = "Closed Lost", closeDate within last 12 months),
      has opportunity(Quote_Submitted_Date__c within last 30 days, Acceptance_Date__c is empty)
    )

``parse_rule(format_rule(r)) == r`` for every rule ``r`` (a hypothesis property in the tests).
"""

from __future__ import annotations

import json
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from renkei.core.activities import ActivityType
from renkei.core.rules.model import (
    ActivityPredicate,
    AssetKind,
    AssetRef,
    Condition,
    FieldPredicate,
    Group,
    ListPredicate,
    Match,
    Node,
    Op,
    OpportunityPredicate,
    Scalar,
    TagPredicate,
    Unit,
    Window,
)
from renkei.errors import QueryError

GRAMMAR = r"""
start: group
group: (ALL | ANY) "(" [item ("," item)* [","]] ")"
?item: group | field_pred | tag_pred | list_pred | act_pred | opp_pred

field_pred: FIELD cond_tail
condition: FIELD cond_tail
cond_tail: CMP value                      -> cmp
         | "contains" value               -> contains
         | "starts" "with" value          -> starts_with
         | "in" "(" value ("," value)* ")" -> in_
         | "is" "empty"                   -> empty
         | "is" "not" "empty"             -> not_empty
         | "within" window                -> within
         | "not" "within" window          -> not_within
window: "last" INT UNIT

tag_pred: "has" NO? "tag" STRING
list_pred: NOT? "in" "list" INT
act_pred: "has" NO? at_least? "activity" "(" [act_cond ("," act_cond)*] ")"
at_least: "at" "least" INT
act_cond: "type" "in" "(" act_type ("," act_type)* ")" -> act_types
        | "type" "=" act_type                          -> act_types
        | "asset" "=" FIELD INT                        -> act_asset
        | "campaign" "=" INT                           -> act_campaign
        | "within" window                              -> act_within
        | "not" "within" window                        -> act_not_within
act_type: INT | FIELD
opp_pred: "has" NO? "opportunity" "(" [condition ("," condition)*] ")"

value: STRING -> string
     | NUMBER -> number
     | TRUE   -> true
     | FALSE  -> false

ALL: "all"
ANY: "any"
NO: "no"
NOT: "not"
TRUE: "true"
FALSE: "false"
UNIT: "days" | "day" | "weeks" | "week" | "months" | "month"
CMP: "!=" | "<=" | ">=" | "=" | "<" | ">"
FIELD: /[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?/
INT: /[0-9]+/
NUMBER: /-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?/
STRING: /"(?:[^"\\\n\r]|\\.)*"/

%import common.WS
%ignore WS
"""

_UNITS = {"day": Unit.DAYS, "days": Unit.DAYS, "week": Unit.WEEKS, "weeks": Unit.WEEKS}
_UNITS.update({"month": Unit.MONTHS, "months": Unit.MONTHS})


class _Build(Transformer[Token, Node]):
    """Parse tree → rule model."""

    def start(self, items: list[Any]) -> Node:
        return items[0]  # type: ignore[no-any-return]

    def group(self, items: list[Any]) -> Group:
        match, *rest = items
        return Group(Match(str(match)), tuple(i for i in rest if i is not None))

    # values
    def string(self, items: list[Token]) -> str:
        return json.loads(str(items[0]))  # type: ignore[no-any-return]

    def number(self, items: list[Token]) -> int | float:
        text = str(items[0])
        return float(text) if any(c in text for c in ".eE") else int(text)

    def true(self, _: list[Token]) -> bool:
        return True

    def false(self, _: list[Token]) -> bool:
        return False

    def window(self, items: list[Token]) -> Window:
        amount = int(items[0])
        if amount < 1:
            raise QueryError("a window needs at least 1 day, week or month", code="INVALID_RULE")
        return Window(amount, _UNITS[str(items[1])])

    # conditions: cond_tail yields (op, value, window); FIELD is attached by the parent
    @v_args(inline=True)
    def cmp(self, op: Token, value: Scalar) -> tuple[Op, Any, None]:
        return Op(str(op)), value, None

    @v_args(inline=True)
    def contains(self, value: Scalar) -> tuple[Op, Any, None]:
        return Op.CONTAINS, value, None

    @v_args(inline=True)
    def starts_with(self, value: Scalar) -> tuple[Op, Any, None]:
        return Op.STARTS_WITH, value, None

    def in_(self, values: list[Scalar]) -> tuple[Op, Any, None]:
        return Op.IN, tuple(values), None

    def empty(self, _: list[Any]) -> tuple[Op, Any, None]:
        return Op.EMPTY, None, None

    def not_empty(self, _: list[Any]) -> tuple[Op, Any, None]:
        return Op.NOT_EMPTY, None, None

    @v_args(inline=True)
    def within(self, window: Window) -> tuple[Op, Any, Window]:
        return Op.WITHIN, None, window

    @v_args(inline=True)
    def not_within(self, window: Window) -> tuple[Op, Any, Window]:
        return Op.NOT_WITHIN, None, window

    @v_args(inline=True)
    def condition(self, name: Token, tail: tuple[Op, Any, Window | None]) -> Condition:
        op, value, window = tail
        return Condition(str(name), op, value, window)

    def field_pred(self, items: list[Any]) -> FieldPredicate:
        return FieldPredicate(self.condition(*items))

    def tag_pred(self, items: list[Any]) -> TagPredicate:
        return TagPredicate(json.loads(str(items[-1])), has=len(items) == 1)

    def list_pred(self, items: list[Any]) -> ListPredicate:
        list_id = int(items[-1])
        if list_id < 1:
            raise QueryError("list ids start at 1", code="INVALID_RULE")
        return ListPredicate(list_id, member=len(items) == 1)

    # activities
    def act_type(self, items: list[Token]) -> int:
        token = str(items[0])
        if token.isdigit():
            code = int(token)
            if code not in ActivityType._value2member_map_:
                raise QueryError(f"unknown activity type {code}", code="INVALID_RULE")
            return code
        try:
            return int(ActivityType[token.upper()])
        except KeyError:
            raise QueryError(f"unknown activity type '{token}'", code="INVALID_RULE") from None

    def act_types(self, items: list[int]) -> tuple[str, Any]:
        return "types", tuple(items)

    @v_args(inline=True)
    def act_asset(self, kind: Token, asset_id: Token) -> tuple[str, Any]:
        try:
            return "asset", AssetRef(AssetKind(str(kind)), int(asset_id))
        except ValueError:
            names = ", ".join(k.value for k in AssetKind)
            raise QueryError(f"unknown asset kind '{kind}' ({names})", code="INVALID_RULE") from None

    @v_args(inline=True)
    def act_campaign(self, campaign_id: Token) -> tuple[str, Any]:
        return "campaign_id", int(campaign_id)

    @v_args(inline=True)
    def act_within(self, window: Window) -> tuple[str, Any]:
        return "window", (window, False)

    @v_args(inline=True)
    def act_not_within(self, window: Window) -> tuple[str, Any]:
        return "window", (window, True)

    @v_args(inline=True)
    def at_least(self, count: Token) -> tuple[str, int]:
        return "at_least", int(count)

    def act_pred(self, items: list[Any]) -> ActivityPredicate:
        has = True
        parts: dict[str, Any] = {}
        for item in items:
            if item is None:
                continue
            if isinstance(item, Token) and item.type == "NO":
                has = False
                continue
            key, value = item
            if key in parts:
                raise QueryError(f"activity condition '{key}' given twice", code="INVALID_RULE")
            parts[key] = value
        window, outside = parts.pop("window", (None, False))
        at_least = parts.pop("at_least", 1)
        if not has and at_least != 1:
            raise QueryError("'has no … activity' takes no 'at least'", code="INVALID_RULE")
        if at_least < 1:
            raise QueryError("'at least' needs 1 or more", code="INVALID_RULE")
        return ActivityPredicate(has=has, window=window, outside_window=outside, at_least=at_least, **parts)

    def opp_pred(self, items: list[Any]) -> OpportunityPredicate:
        has = not (items and isinstance(items[0], Token) and items[0].type == "NO")
        conds = tuple(i for i in items if isinstance(i, Condition))
        return OpportunityPredicate(has, conds)


_PARSER = Lark(GRAMMAR, parser="lalr", maybe_placeholders=True)


def parse_rule(text: str) -> Node:
    """Parse the text form; raises ``QueryError`` with the line and column of the bad part."""
    try:
        tree = _PARSER.parse(text)
        return _Build().transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, QueryError):
            raise exc.orig_exc from None
        raise
    except UnexpectedInput as exc:
        raise QueryError(_describe(exc, text), code="INVALID_RULE") from None


def _describe(exc: UnexpectedInput, text: str) -> str:
    where = f"line {exc.line}, column {exc.column}"
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        return f"rule text ends too early at {where}"
    if isinstance(exc, UnexpectedToken):
        expected = ", ".join(sorted(_pretty(e) for e in exc.expected))
        return f"unexpected {str(exc.token)!r} at {where}; expected one of: {expected}"
    if isinstance(exc, UnexpectedCharacters):
        return f"unexpected character {text[exc.pos_in_stream or 0]!r} at {where}"
    return f"cannot parse rule at {where}"


_TERMINAL_NAMES = {"LPAR": "'('", "RPAR": "')'", "COMMA": "','", "EQUAL": "'='"}


def _pretty(terminal: str) -> str:
    return _TERMINAL_NAMES.get(terminal, terminal.lower())


# ---------------------------------------------------------------------------------------------
# model → text


def _value(v: Scalar) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    return repr(v)


def _window(w: Window) -> str:
    return f"last {w.amount} {w.unit.value}"


def format_condition(c: Condition) -> str:
    if c.window is not None:
        return f"{c.field} {c.op.value} {_window(c.window)}"
    if c.op in (Op.EMPTY, Op.NOT_EMPTY):
        return f"{c.field} {c.op.value}"
    if c.op is Op.IN:
        values = c.value if isinstance(c.value, tuple) else (c.value,)
        return f"{c.field} in ({', '.join(_value(v) for v in values if v is not None)})"
    assert c.value is not None and not isinstance(c.value, tuple)
    return f"{c.field} {c.op.value} {_value(c.value)}"


def format_predicate(node: Node) -> str:
    """One predicate (or a whole group) on one line."""
    if isinstance(node, Group):
        return f"{node.match.value}({', '.join(format_predicate(i) for i in node.items)})"
    if isinstance(node, FieldPredicate):
        return format_condition(node.condition)
    if isinstance(node, TagPredicate):
        return f"has {'' if node.has else 'no '}tag {_value(node.tag)}"
    if isinstance(node, ListPredicate):
        return f"{'' if node.member else 'not '}in list {node.list_id}"
    if isinstance(node, ActivityPredicate):
        parts = []
        if node.types:
            parts.append(f"type in ({', '.join(_type_name(t) for t in node.types)})")
        if node.asset is not None:
            parts.append(f"asset = {node.asset.kind.value} {node.asset.id}")
        if node.campaign_id is not None:
            parts.append(f"campaign = {node.campaign_id}")
        if node.window is not None:
            parts.append(f"{'not within' if node.outside_window else 'within'} {_window(node.window)}")
        head = (
            "has "
            + ("no " if not node.has else "")
            + (f"at least {node.at_least} " if node.at_least != 1 else "")
        )
        return f"{head}activity({', '.join(parts)})"
    conds = ", ".join(format_condition(c) for c in node.conditions)
    return f"has {'' if node.has else 'no '}opportunity({conds})"


def _type_name(code: int) -> str:
    return ActivityType(code).name


def format_rule(node: Node, indent: int = 2, _depth: int = 0) -> str:
    """The canonical text form: groups over several lines, one predicate per line."""
    if not isinstance(node, Group):
        return format_predicate(node)
    if not node.items:
        return f"{node.match.value}()"
    pad = " " * (indent * (_depth + 1))
    inner = ",\n".join(pad + format_rule(i, indent, _depth + 1) for i in node.items)
    return f"{node.match.value}(\n{inner}\n{' ' * (indent * _depth)})"
