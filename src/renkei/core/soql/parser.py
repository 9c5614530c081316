"""The SOQL subset's grammar (lark, LALR) and the transformer from lark's tree to ``nodes``.

Keywords are case-insensitive. As in Salesforce, AND and OR cannot be mixed without parentheses
(``a AND b OR c`` is rejected). Syntax errors become ``SoqlError`` (code MALFORMED_QUERY) with
the line and column of the offending token.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from renkei.core.soql import nodes as n
from renkei.core.soql.dates import FIXED, WITH_N
from renkei.errors import QueryError

MAX_QUERY_LENGTH = 100_000


class SoqlError(QueryError):
    """A query Salesforce would reject; ``pos`` says where (when known)."""

    def __init__(self, message: str, *, code: str = "MALFORMED_QUERY", pos: n.Position | None = None):
        text = f"{pos}: {message}" if pos is not None else message
        super().__init__(text, code=code)
        self.pos = pos
        self.detail = message


def _alternation(names: list[str]) -> str:
    return "|".join(sorted(names, key=len, reverse=True))


GRAMMAR = rf"""
query: select_clause "FROM"i NAME where_clause? order_clause? limit_clause? offset_clause?

select_clause: "SELECT"i select_item ("," select_item)*
?select_item: field_path
            | COUNT "(" ")"                        -> count_all
            | COUNT "(" field_path ")" NAME?       -> count_field

where_clause: "WHERE"i condition

?condition: unary
          | unary (_AND unary)+                    -> and_cond
          | unary (_OR unary)+                     -> or_cond
?unary: _NOT unary                                 -> not_cond
      | "(" condition ")"
      | predicate
?predicate: field_path COMP_OP value               -> comparison
          | field_path "LIKE"i STRING              -> like
          | field_path "IN"i "(" value_list ")"         -> in_list
          | field_path _NOT "IN"i "(" value_list ")"    -> not_in_list
          | field_path INCLUDES "(" string_list ")"     -> includes
value_list: value ("," value)*
string_list: STRING ("," STRING)*

?value: STRING                                     -> string
      | NUMBER                                     -> number
      | DATETIME                                   -> datetime
      | DATE                                       -> date
      | DATE_LITERAL                               -> date_literal
      | DATE_N_LITERAL                             -> date_n_literal
      | TRUE                                       -> true
      | FALSE                                      -> false
      | NULL                                       -> null

order_clause: "ORDER"i "BY"i order_item ("," order_item)*
order_item: field_path DIRECTION? nulls?
nulls: "NULLS"i NULLS_WHERE

limit_clause: "LIMIT"i INT
offset_clause: "OFFSET"i INT

field_path: NAME ("." NAME)*

COUNT: "COUNT"i
INCLUDES: "INCLUDES"i | "EXCLUDES"i
DIRECTION: "ASC"i | "DESC"i
NULLS_WHERE: "FIRST"i | "LAST"i
TRUE: "TRUE"i
FALSE: "FALSE"i
NULL: "NULL"i
_AND: "AND"i
_OR: "OR"i
_NOT: "NOT"i
COMP_OP: "=" | "!=" | "<>" | "<=" | ">=" | "<" | ">"
NAME: /[a-z_][a-z0-9_]*/i
STRING: /'(?:[^'\\]|\\.)*'/s
DATETIME.4: /\d{{4}}-\d{{2}}-\d{{2}}T\d{{2}}:\d{{2}}:\d{{2}}(\.\d+)?(Z|[+-]\d{{2}}:?\d{{2}})/i
DATE.3: /\d{{4}}-\d{{2}}-\d{{2}}/
NUMBER.2: /[+-]?(\d+(\.\d*)?|\.\d+)/
INT: /\d+/
DATE_N_LITERAL.5: /({_alternation(list(WITH_N))}):\d+/i
DATE_LITERAL.5: /({_alternation(list(FIXED))})(?![a-z0-9_])/i

%import common.WS
%ignore WS
"""

_PARSER = Lark(
    GRAMMAR,
    start=["query", "condition"],
    parser="lalr",
    lexer="contextual",
    propagate_positions=True,
    maybe_placeholders=False,
)

_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}


def _pos(token: Token) -> n.Position:
    return n.Position(token.line or 1, token.column or 1)


def decode_string(token: Token) -> str:
    """The value of a quoted literal with SOQL's escapes (``\\'`` ``\\\\`` ``\\n`` ``\\uXXXX`` …)."""
    return _decode(str(token)[1:-1], _pos(token), like=False)


def like_pattern(raw: str, pos: n.Position = n.NOWHERE) -> str:
    """The SQL LIKE pattern (escape character ``\\``) of a LIKE literal's source text."""
    return _decode(raw, pos, like=True)


def _decode(raw: str, pos: n.Position, *, like: bool) -> str:
    out: list[str] = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = raw[i + 1] if i + 1 < len(raw) else ""
        if nxt in ("%", "_"):
            out.append("\\" + nxt if like else nxt)
            i += 2
            continue
        if nxt == "u" and len(raw) >= i + 6:
            try:
                decoded = chr(int(raw[i + 2 : i + 6], 16))
            except ValueError:
                raise SoqlError(
                    f"Invalid string literal '{raw}'. Illegal character sequence '\\u'", pos=pos
                ) from None
            i += 6
        elif nxt in _ESCAPES:
            decoded = _ESCAPES[nxt]
            i += 2
        else:
            raise SoqlError(f"Invalid string literal '{raw}'. Illegal character sequence '\\{nxt}'", pos=pos)
        out.append("\\" + decoded if like and decoded in "%_\\" else decoded)
    return "".join(out)


def _datetime(token: Token) -> dt.datetime:
    text = str(token).upper()
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise SoqlError(f"invalid datetime: {token}", pos=_pos(token)) from None
    return value.astimezone(dt.UTC)


def _date(token: Token) -> dt.date:
    try:
        return dt.date.fromisoformat(str(token))
    except ValueError:
        raise SoqlError(f"invalid date: {token}", pos=_pos(token)) from None


def _field_pos(item: Any) -> n.Position:
    return item.pos if isinstance(item, n.FieldPath) else n.NOWHERE


@v_args(inline=True)
class _ToNodes(Transformer[Token, Any]):
    def field_path(self, *names: Token) -> n.FieldPath:
        return n.FieldPath(tuple(str(t) for t in names), _pos(names[0]))

    def string(self, token: Token) -> n.StringLit:
        return n.StringLit(decode_string(token), str(token)[1:-1])

    def number(self, token: Token) -> n.NumberLit:
        text = str(token)
        if "." in text:
            return n.NumberLit(float(text))
        return n.NumberLit(int(text))

    def datetime(self, token: Token) -> n.DateTimeLit:
        return n.DateTimeLit(_datetime(token))

    def date(self, token: Token) -> n.DateLit:
        return n.DateLit(_date(token))

    def date_literal(self, token: Token) -> n.DateRangeLit:
        return n.DateRangeLit(str(token).upper())

    def date_n_literal(self, token: Token) -> n.DateRangeLit:
        name, number = str(token).split(":")
        return n.DateRangeLit(name.upper(), int(number))

    def true(self, _t: Token) -> n.BoolLit:
        return n.BoolLit(True)

    def false(self, _t: Token) -> n.BoolLit:
        return n.BoolLit(False)

    def null(self, _t: Token) -> n.NullLit:
        return n.NullLit()

    def value_list(self, *values: n.Literal) -> tuple[n.Literal, ...]:
        return values

    def string_list(self, *tokens: Token) -> tuple[str, ...]:
        return tuple(decode_string(t) for t in tokens)

    def comparison(self, path: n.FieldPath, op: Token, value: n.Literal) -> n.Comparison:
        text = "!=" if str(op) == "<>" else str(op)
        return n.Comparison(path, n.Op(text), value, _pos(op))

    def like(self, path: n.FieldPath, token: Token) -> n.Like:
        return n.Like(path, n.StringLit(decode_string(token), str(token)[1:-1]))

    def in_list(self, path: n.FieldPath, values: tuple[n.Literal, ...]) -> n.InList:
        return n.InList(path, values)

    def not_in_list(self, path: n.FieldPath, values: tuple[n.Literal, ...]) -> n.InList:
        return n.InList(path, values, negated=True)

    def includes(self, path: n.FieldPath, keyword: Token, values: tuple[str, ...]) -> n.Includes:
        return n.Includes(path, values, excludes=str(keyword).upper() == "EXCLUDES")

    def and_cond(self, *items: n.Condition) -> n.And:
        return n.And(items)

    def or_cond(self, *items: n.Condition) -> n.Or:
        return n.Or(items)

    def not_cond(self, item: n.Condition) -> n.Not:
        return n.Not(item)

    def where_clause(self, cond: n.Condition) -> n.Condition:
        return cond

    def count_all(self, token: Token) -> n.CountAll:
        return n.CountAll(_pos(token))

    def count_field(self, _token: Token, path: n.FieldPath, alias: Token | None = None) -> n.Count:
        return n.Count(path, str(alias) if alias is not None else None)

    def select_clause(self, *items: n.SelectItem) -> tuple[n.SelectItem, ...]:
        return items

    def nulls(self, token: Token) -> bool:
        return str(token).upper() == "FIRST"

    def order_item(self, path: n.FieldPath, *rest: Token | bool) -> n.OrderItem:
        descending = False
        nulls_first: bool | None = None
        for item in rest:
            if isinstance(item, bool):
                nulls_first = item
            else:
                descending = str(item).upper() == "DESC"
        return n.OrderItem(path, descending, nulls_first)

    def order_clause(self, *items: n.OrderItem) -> tuple[n.OrderItem, ...]:
        return items

    def limit_clause(self, token: Token) -> tuple[str, int]:
        return ("limit", int(token))

    def offset_clause(self, token: Token) -> tuple[str, int]:
        return ("offset", int(token))

    def query(self, select: tuple[n.SelectItem, ...], obj: Token, *clauses: Any) -> n.Query:
        where: n.Condition | None = None
        order: tuple[n.OrderItem, ...] = ()
        limit: int | None = None
        offset: int | None = None
        for clause in clauses:
            if isinstance(clause, tuple) and clause and isinstance(clause[0], n.OrderItem):
                order = clause
            elif isinstance(clause, tuple) and clause and clause[0] == "limit":
                limit = clause[1]
            elif isinstance(clause, tuple) and clause and clause[0] == "offset":
                offset = clause[1]
            else:
                where = clause
        return n.Query(select, str(obj), where, order, limit, offset, _pos(obj))


_TO_NODES = _ToNodes()


def _syntax_error(exc: UnexpectedInput, text: str) -> SoqlError:
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        lines = text.splitlines() or [""]
        return SoqlError("unexpected end of query", pos=n.Position(len(lines), len(lines[-1]) + 1))
    pos = n.Position(exc.line, exc.column)
    if isinstance(exc, UnexpectedToken):
        return SoqlError(f"unexpected token: '{exc.token}'", pos=pos)
    if isinstance(exc, UnexpectedCharacters):
        return SoqlError(f"unexpected character: '{exc.char}'", pos=pos)
    return SoqlError(str(exc).splitlines()[0], pos=pos)


def _parse(text: str, start: str) -> Any:
    if len(text) > MAX_QUERY_LENGTH:
        raise SoqlError(f"query is longer than {MAX_QUERY_LENGTH} characters")
    try:
        tree = _PARSER.parse(text, start=start)
        return _TO_NODES.transform(tree)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text) from None
    except VisitError as exc:
        if isinstance(exc.orig_exc, SoqlError):
            raise exc.orig_exc from None
        raise


def parse_query(text: str) -> n.Query:
    """Parse a whole SOQL statement (syntax only; ``check`` resolves the names)."""
    result = _parse(text, "query")
    assert isinstance(result, n.Query)
    return result


def parse_where(text: str) -> n.Condition:
    """Parse a WHERE clause's condition alone (``Status = 'Open' AND …``, without ``WHERE``)."""
    return _parse(text, "condition")  # type: ignore[no-any-return]
