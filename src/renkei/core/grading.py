"""Grading (pure): a profile's criteria move a prospect's grade by thirds of a letter.

AE's scale has 13 steps, F … A+; a new prospect starts at D (index 2) and its grade stays hidden
until one criterion is matched or not matched. Each criterion weighs 1, 2 or 3 thirds: a match
raises, a no-match lowers, an unknown (the field is empty) leaves the grade alone.
``index = clamp(2 + Σ match − Σ nomatch, 0, 12)``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from renkei.errors import ConfigError
from renkei.marketing.schema import GRADES

START_INDEX = GRADES.index("D")


class Operator(str, Enum):
    EQUALS = "equals"
    NOT_EQUALS = "not_equals"
    CONTAINS = "contains"
    IN = "in"
    GREATER_OR_EQUAL = "gte"
    LESS_OR_EQUAL = "lte"


class CriterionState(str, Enum):
    MATCH = "match"
    NOMATCH = "nomatch"
    UNKNOWN = "unknown"


def _fold(value: Any) -> str:
    return unicodedata.normalize("NFKC", str(value)).strip().casefold()


def _number(value: Any) -> float | None:
    try:
        return float(_fold(value).replace(",", ""))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Criterion:
    """A field condition with its weight in thirds of a letter (1, 2 or 3)."""

    field: str
    operator: Operator
    value: Any
    weight: int
    label: str = ""

    def state(self, prospect: Mapping[str, Any]) -> CriterionState:
        actual = prospect.get(self.field)
        if actual is None or (isinstance(actual, str) and not actual.strip()):
            return CriterionState.UNKNOWN
        return CriterionState.MATCH if self._holds(actual) else CriterionState.NOMATCH

    def _holds(self, actual: Any) -> bool:
        op = self.operator
        if op is Operator.EQUALS:
            return _fold(actual) == _fold(self.value)
        if op is Operator.NOT_EQUALS:
            return _fold(actual) != _fold(self.value)
        if op is Operator.CONTAINS:
            return _fold(self.value) in _fold(actual)
        if op is Operator.IN:
            return _fold(actual) in {_fold(v) for v in self.value}
        left, right = _number(actual), _number(self.value)
        if left is None or right is None:
            return False
        return left >= right if op is Operator.GREATER_OR_EQUAL else left <= right

    def to_dict(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "operator": self.operator.value,
            "value": self.value,
            "weight": self.weight,
            "label": self.label,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Criterion:
        try:
            crit = cls(
                str(data["field"]),
                Operator(data.get("operator", "equals")),
                data["value"],
                int(data.get("weight", 2)),
                str(data.get("label", "")),
            )
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"invalid grading criterion {dict(data)!r}: {exc}") from None
        if crit.weight not in (1, 2, 3):
            raise ConfigError(f"criterion weight must be 1, 2 or 3 thirds, not {crit.weight}")
        if crit.operator is Operator.IN and not isinstance(crit.value, (list, tuple)):
            raise ConfigError("an 'in' criterion needs a list of values")
        return crit


@dataclass(frozen=True, slots=True)
class CriterionOutcome:
    criterion: Criterion
    state: CriterionState
    thirds: int  # +weight, -weight or 0

    def to_dict(self) -> dict[str, Any]:
        return {**self.criterion.to_dict(), "state": self.state.value, "thirds": self.thirds}


@dataclass(frozen=True, slots=True)
class GradeResult:
    grade: str | None  # None while hidden (no criterion matched or unmatched)
    index: int
    outcomes: tuple[CriterionOutcome, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "grade": self.grade,
            "start": GRADES[START_INDEX],
            "index": self.index,
            "criteria": [o.to_dict() for o in self.outcomes],
        }


def grade(criteria: Sequence[Criterion], prospect: Mapping[str, Any]) -> GradeResult:
    outcomes = []
    for crit in criteria:
        state = crit.state(prospect)
        thirds = {CriterionState.MATCH: crit.weight, CriterionState.NOMATCH: -crit.weight}.get(state, 0)
        outcomes.append(CriterionOutcome(crit, state, thirds))
    index = max(0, min(len(GRADES) - 1, START_INDEX + sum(o.thirds for o in outcomes)))
    known = any(o.state is not CriterionState.UNKNOWN for o in outcomes)
    return GradeResult(GRADES[index] if known else None, index, tuple(outcomes))


#: AE's default profile: company size, industry, location, job title, department, 2/3 each.
#: The values describe a Japanese mid-size B2B buyer; an account edits them to fit its market.
DEFAULT_PROFILE_NAME = "Default"
DEFAULT_CRITERIA: tuple[Criterion, ...] = (
    Criterion("employees", Operator.GREATER_OR_EQUAL, 100, 2, "Company size ≥ 100"),
    Criterion(
        "industry", Operator.IN, ["Software", "Manufacturing", "IT", "製造", "情報通信"], 2, "Industry"
    ),
    Criterion("country", Operator.IN, ["Japan", "JP", "日本"], 2, "Location"),
    Criterion("jobTitle", Operator.CONTAINS, "部長", 2, "Job title"),
    Criterion("department", Operator.CONTAINS, "マーケティング", 2, "Department"),
)
