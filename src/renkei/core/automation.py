"""Automation rules and completion actions (pure): criteria, actions, and when a rule may run.

Criteria are evaluated against ``ProspectFacts`` (the prospect's fields, lists, tags and recent
activities) that the service loads; *match all* needs every criterion, *match any* one. A rule
runs its actions once per prospect unless it repeats — then again after ``repeat_after_days``
and at most ``max_runs`` times. Completion actions use the same ``Action`` model.

Criteria come in two forms. ``rule`` is a condition in the shared rule language of
segmentation (``renkei.core.rules``, see docs/rules.md) — the preferred form, evaluated by the
service with that language's own evaluator. ``criteria`` is a small list model written before
the rule language landed (field conditions, score, grade, activity in a time window, list
membership, tags) and kept for existing rules; when both are given both must match.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from renkei.core.grading import Criterion as FieldCondition
from renkei.core.grading import CriterionState, Operator
from renkei.core.rules.model import Node
from renkei.core.rules.text import parse_rule
from renkei.errors import ConfigError, QueryError
from renkei.marketing.schema import GRADES


class ActionKind(str, Enum):
    ASSIGN_USER = "assign_user"
    ASSIGN_ROUND_ROBIN = "assign_round_robin"
    ADD_TO_LIST = "add_to_list"
    REMOVE_FROM_LIST = "remove_from_list"
    ADD_TAG = "add_tag"
    REMOVE_TAG = "remove_tag"
    ADJUST_SCORE = "adjust_score"
    CHANGE_FIELD = "change_field"
    NOTIFY_USER = "notify_user"
    CHANGE_PROFILE = "change_profile"


#: The option each action kind needs, and its type.
_ACTION_OPTIONS: dict[ActionKind, tuple[str, type]] = {
    ActionKind.ASSIGN_USER: ("user_id", int),
    ActionKind.ASSIGN_ROUND_ROBIN: ("user_ids", list),
    ActionKind.ADD_TO_LIST: ("list_id", int),
    ActionKind.REMOVE_FROM_LIST: ("list_id", int),
    ActionKind.ADD_TAG: ("tag", str),
    ActionKind.REMOVE_TAG: ("tag", str),
    ActionKind.ADJUST_SCORE: ("points", int),
    ActionKind.CHANGE_FIELD: ("field", str),
    ActionKind.NOTIFY_USER: ("message", str),
    ActionKind.CHANGE_PROFILE: ("profile_id", int),
}


@dataclass(frozen=True, slots=True)
class Action:
    kind: ActionKind
    options: Mapping[str, Any] = field(default_factory=dict)

    def option(self, name: str) -> Any:
        return self.options.get(name)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind.value, **self.options}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Action:
        try:
            kind = ActionKind(data["type"])
        except (KeyError, ValueError):
            raise ConfigError(
                f"unknown action {dict(data)!r} (types: {', '.join(k.value for k in ActionKind)})"
            ) from None
        options = {k: v for k, v in data.items() if k != "type"}
        name, type_ = _ACTION_OPTIONS[kind]
        value = options.get(name)
        if (
            value is None
            or (type_ is int and not _is_int(value))
            or (type_ is not int and not isinstance(value, type_))
        ):
            raise ConfigError(f"action {kind.value} needs {name} ({type_.__name__})")
        if kind is ActionKind.ASSIGN_ROUND_ROBIN and not (value and all(_is_int(u) for u in value)):
            raise ConfigError("assign_round_robin needs a non-empty list of user ids")
        if kind is ActionKind.CHANGE_FIELD and "value" not in options:
            raise ConfigError("change_field needs a value")
        return cls(kind, options)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_actions(data: Sequence[Mapping[str, Any]] | None) -> tuple[Action, ...]:
    return tuple(Action.from_dict(a) for a in data or ())


# ---------------------------------------------------------------------------------------------
# Criteria


@dataclass(frozen=True, slots=True)
class ActivityFact:
    type: int
    type_name: str | None
    refs: Mapping[str, Any]
    at: dt.datetime


@dataclass(frozen=True, slots=True)
class ProspectFacts:
    prospect: Mapping[str, Any]
    lists: frozenset[int] = frozenset()
    tags: frozenset[str] = frozenset()
    activities: tuple[ActivityFact, ...] = ()


class CriterionKind(str, Enum):
    FIELD = "field"
    SCORE = "score"
    GRADE = "grade"
    ACTIVITY = "activity"
    LIST = "list"
    TAG = "tag"


_COMPARE = {"gte", "lte", "gt", "lt", "eq"}


def _compare(actual: float, op: str, expected: float) -> bool:
    return {
        "gte": actual >= expected,
        "lte": actual <= expected,
        "gt": actual > expected,
        "lt": actual < expected,
        "eq": actual == expected,
    }[op]


@dataclass(frozen=True, slots=True)
class RuleCriterion:
    kind: CriterionKind
    spec: Mapping[str, Any]

    def holds(self, facts: ProspectFacts, now: dt.datetime) -> bool:
        s = self.spec
        p = facts.prospect
        if self.kind is CriterionKind.FIELD:
            op = s.get("operator", "equals")
            value = p.get(s["field"])
            if op == "is_empty":
                return value is None or (isinstance(value, str) and not value.strip())
            if op == "not_empty":
                return not (value is None or (isinstance(value, str) and not value.strip()))
            cond = FieldCondition(s["field"], Operator(op), s.get("value"), 1)
            return cond.state(p) is CriterionState.MATCH
        if self.kind is CriterionKind.SCORE:
            return _compare(int(p.get("score") or 0), s["operator"], int(s["value"]))
        if self.kind is CriterionKind.GRADE:
            grade = p.get("grade")
            if grade not in GRADES:
                return False
            return _compare(GRADES.index(grade), s["operator"], GRADES.index(s["value"]))
        if self.kind is CriterionKind.LIST:
            return (int(s["list_id"]) in facts.lists) is bool(s.get("member", True))
        if self.kind is CriterionKind.TAG:
            return (s["tag"] in facts.tags) is bool(s.get("has", True))
        since = now - dt.timedelta(days=int(s.get("within_days", 36500)))
        count = sum(1 for a in facts.activities if a.at >= since and self._activity_matches(a))
        return _compare(count, s.get("operator", "gte"), int(s.get("count", 1)))

    def _activity_matches(self, a: ActivityFact) -> bool:
        s = self.spec
        if "type" in s and a.type != int(s["type"]):
            return False
        if "type_name" in s and a.type_name != s["type_name"]:
            return False
        return all(a.refs.get(col) == value for col, value in (s.get("refs") or {}).items())

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, **self.spec}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuleCriterion:
        try:
            kind = CriterionKind(data["kind"])
        except (KeyError, ValueError):
            raise ConfigError(
                f"unknown criterion {dict(data)!r} (kinds: {', '.join(k.value for k in CriterionKind)})"
            ) from None
        spec = {k: v for k, v in data.items() if k != "kind"}
        needs = {
            CriterionKind.FIELD: ("field",),
            CriterionKind.SCORE: ("operator", "value"),
            CriterionKind.GRADE: ("operator", "value"),
            CriterionKind.LIST: ("list_id",),
            CriterionKind.TAG: ("tag",),
            CriterionKind.ACTIVITY: (),
        }[kind]
        missing = [n for n in needs if n not in spec]
        if missing:
            raise ConfigError(f"{kind.value} criterion needs {', '.join(missing)}")
        if kind in (CriterionKind.SCORE, CriterionKind.GRADE) and spec["operator"] not in _COMPARE:
            raise ConfigError(f"operator must be one of {', '.join(sorted(_COMPARE))}")
        if kind is CriterionKind.GRADE and spec["value"] not in GRADES:
            raise ConfigError(f"not a grade: {spec['value']!r}")
        if kind is CriterionKind.FIELD and spec.get("operator", "equals") not in {
            o.value for o in Operator
        } | {"is_empty", "not_empty"}:
            raise ConfigError(f"unknown field operator {spec.get('operator')!r}")
        return cls(kind, spec)


# ---------------------------------------------------------------------------------------------
# Rules


@dataclass(frozen=True, slots=True)
class RuleDefinition:
    criteria: tuple[RuleCriterion, ...]
    actions: tuple[Action, ...]
    match_all: bool = True
    repeat: bool = False
    repeat_after_days: int = 0
    max_runs: int | None = None
    rule: str | None = None  # text of the shared rule language

    @property
    def node(self) -> Node | None:
        return None if self.rule is None else parse_rule(self.rule)

    def matches(self, facts: ProspectFacts, now: dt.datetime, *, rule_matched: bool | None = None) -> bool:
        """Whether the criteria hold; ``rule_matched`` is the shared-language rule's verdict
        (required when the definition has a ``rule``)."""
        if self.rule is not None:
            if rule_matched is None:
                raise ValueError("a rule in the shared language needs its verdict")
            if not rule_matched:
                return False
        if not self.criteria:
            return self.rule is not None
        results = (c.holds(facts, now) for c in self.criteria)
        return all(results) if self.match_all else any(results)

    def eligible(self, runs: int, last_run_at: dt.datetime | None, now: dt.datetime) -> bool:
        """May the rule's actions run (again) for a prospect it has run for ``runs`` times?"""
        if runs == 0:
            return True
        if not self.repeat:
            return False
        if self.max_runs is not None and runs >= self.max_runs:
            return False
        return last_run_at is None or now - last_run_at >= dt.timedelta(days=self.repeat_after_days)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "match": "all" if self.match_all else "any",
            "criteria": [c.to_dict() for c in self.criteria],
            "actions": [a.to_dict() for a in self.actions],
            "repeat": self.repeat,
            "repeat_after_days": self.repeat_after_days,
            "max_runs": self.max_runs,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuleDefinition:
        match = data.get("match", "all")
        if match not in ("all", "any"):
            raise ConfigError("match must be 'all' or 'any'")
        text = data.get("rule")
        if text is not None:
            try:
                parse_rule(str(text))
            except QueryError as exc:
                raise ConfigError(f"rule: {exc.message}") from None
        rule = cls(
            tuple(RuleCriterion.from_dict(c) for c in data.get("criteria") or ()),
            parse_actions(data.get("actions")),
            match == "all",
            bool(data.get("repeat", False)),
            int(data.get("repeat_after_days", 0)),
            None if data.get("max_runs") is None else int(data["max_runs"]),
            None if text is None else str(text),
        )
        if not (rule.criteria or rule.rule) or not rule.actions:
            raise ConfigError("a rule needs a rule (or criteria) and at least one action")
        return rule
