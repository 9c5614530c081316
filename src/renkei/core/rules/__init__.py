"""The rule language: one model for dynamic lists, automation criteria and report filters.

``model`` holds the immutable rule tree and its JSON form, ``text`` the readable text form,
``evaluate`` the plain-Python evaluation used by ``explain`` and as the SQL compiler's oracle.
"""

from __future__ import annotations

from renkei.core.rules.model import (
    ActivityPredicate,
    AssetKind,
    AssetRef,
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
    Unit,
    Window,
    build_catalog,
    rule_from_json,
    validate,
)
from renkei.core.rules.text import format_predicate, format_rule, parse_rule

__all__ = [
    "ActivityPredicate",
    "AssetKind",
    "AssetRef",
    "Catalog",
    "Condition",
    "FieldPredicate",
    "Group",
    "Kind",
    "ListPredicate",
    "Match",
    "Node",
    "Op",
    "OpportunityPredicate",
    "TagPredicate",
    "Unit",
    "Window",
    "build_catalog",
    "format_predicate",
    "format_rule",
    "parse_rule",
    "rule_from_json",
    "validate",
]
