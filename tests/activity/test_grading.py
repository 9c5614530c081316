"""Grading arithmetic (pure) and profiles over the store, with explain-grade."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from renkei.cli import app
from renkei.core.grading import Criterion, CriterionState, Operator, grade
from renkei.errors import ConfigError
from renkei.marketing.schema import GRADES
from renkei.marketing.scoring_service import GradingService
from renkei.marketing.service import ProspectService
from renkei.store.db import make_engine

from .helpers import clock, get, prospect


def crit(field: str, value: object, weight: int, op: Operator = Operator.EQUALS) -> Criterion:
    return Criterion(field, op, value, weight)


CRITERIA = (
    crit("industry", "製造", 3),
    crit("employees", 300, 2, Operator.GREATER_OR_EQUAL),
    crit("jobTitle", "部長", 1, Operator.CONTAINS),
)


@pytest.mark.parametrize(
    ("prospect", "expected"),
    [
        ({}, None),  # hidden until a criterion is known
        ({"industry": "製造"}, "C"),  # D + 3/3
        ({"industry": "製造", "employees": "1,000", "jobTitle": "営業部長"}, "B"),  # D + 6/3
        ({"industry": "小売"}, "F"),  # D - 3/3, clamped at F
        ({"industry": "小売", "employees": "500", "jobTitle": "部長"}, "D"),  # -3 +2 +1
        ({"jobTitle": "課長"}, "D-"),
        ({"industry": "ｾｲｿﾞｳ"}, "F"),
    ],
)
def test_grade_arithmetic(prospect: dict, expected: str | None) -> None:
    assert grade(CRITERIA, prospect).grade == expected


def test_ten_thirds_reach_a_plus_and_no_further() -> None:
    many = tuple(crit(f"f{i}", "x", 3) for i in range(5))
    assert grade(many, {f"f{i}": "x" for i in range(5)}).grade == "A+"
    assert grade(many[:3], {f"f{i}": "x" for i in range(3)}).grade == "A"  # D + 9/3


@given(st.lists(st.tuples(st.integers(1, 3), st.sampled_from(list(CriterionState))), max_size=8))
def test_index_is_clamped_sum(states: list) -> None:
    criteria = tuple(crit(f"f{i}", "yes", w) for i, (w, _) in enumerate(states))
    values = {
        f"f{i}": {"match": "yes", "nomatch": "no", "unknown": None}[s.value]
        for i, (_, s) in enumerate(states)
    }
    result = grade(criteria, values)
    thirds = sum(
        w if s is CriterionState.MATCH else -w if s is CriterionState.NOMATCH else 0 for w, s in states
    )
    assert result.index == max(0, min(12, 2 + thirds))
    assert result.grade == (
        GRADES[result.index] if any(s is not CriterionState.UNKNOWN for _, s in states) else None
    )


def test_invalid_criteria() -> None:
    with pytest.raises(ConfigError):
        Criterion.from_dict({"field": "industry", "value": "x", "weight": 4})
    with pytest.raises(ConfigError):
        Criterion.from_dict({"field": "industry", "operator": "in", "value": "x"})


def test_profiles_regrade_and_explain(engine: Engine) -> None:
    clk = clock()
    grading = GradingService(engine, clock=clk)
    pid = prospect(engine, clk, industry="製造", jobTitle="営業部長")
    assert grading.regrade(pid) == "C+"  # default profile: industry 2/3 + job title 2/3 → D + 4/3
    profile = grading.save_profile("製造業", [{"field": "industry", "value": "製造", "weight": 3},
                                            {"field": "country", "value": "日本", "weight": 3}])  # fmt: skip
    ProspectService(engine, clock=clk).update(pid, {"profileId": profile["id"]})
    assert grading.regrade(pid) == "C"
    ProspectService(engine, clock=clk).update(pid, {"country": "日本"})
    assert grading.regrade(pid) == "B"
    explained = grading.explain(pid)
    assert (explained["profile"]["name"], explained["grade"], explained["storedGrade"]) == (
        "製造業",
        "B",
        "B",
    )
    assert [(c["field"], c["state"], c["thirds"]) for c in explained["criteria"]] == [
        ("industry", "match", 3),
        ("country", "match", 3),
    ]
    # Editing a profile regrades its prospects.
    grading.save_profile("製造業", [{"field": "industry", "value": "小売", "weight": 3}])
    assert get(engine, pid)["grade"] == "F"
    assert [p["name"] for p in grading.profiles()] == ["Default", "製造業"]


def test_explain_grade_cli(cli_env: str) -> None:
    engine = make_engine(cli_env)
    pid = prospect(engine, clock(), jobTitle="マーケティング部長", department="マーケティング部")
    engine.dispose()
    result = CliRunner().invoke(app, ["prospect", "explain-grade", str(pid), "--json"])
    data = json.loads(result.stdout)
    assert (data["profile"]["name"], data["grade"], data["start"], data["storedGrade"]) == (
        "Default",
        "C+",
        "D",
        None,
    )
    assert [c["state"] for c in data["criteria"]] == ["unknown", "unknown", "unknown", "match", "match"]
