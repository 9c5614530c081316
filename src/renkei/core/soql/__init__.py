"""The SOQL subset: parse (lark), check against the CRM's metadata, evaluate in memory.

``parse_query`` / ``parse_where`` give the syntax tree (``nodes``); ``check_query`` /
``bind_condition`` resolve it against object definitions; ``evaluate`` answers a condition for one
record. Compilation to SQL lives at the edge, in ``renkei.crm.soql_sql``; this package is pure.
"""

from __future__ import annotations

from renkei.core.soql.bind import CheckedQuery, FieldRef, Kind, Pred, bind_condition, check_query
from renkei.core.soql.dates import day_range, instant_range
from renkei.core.soql.evaluate import evaluate, fold, holds
from renkei.core.soql.parser import SoqlError, parse_query, parse_where

__all__ = [
    "CheckedQuery",
    "FieldRef",
    "Kind",
    "Pred",
    "SoqlError",
    "bind_condition",
    "check_query",
    "day_range",
    "evaluate",
    "fold",
    "holds",
    "instant_range",
    "parse_query",
    "parse_where",
]
