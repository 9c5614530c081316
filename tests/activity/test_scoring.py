"""Scoring: configurable model, page actions, decay, ledger, explain-score and set-based rescore."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from renkei.cli import app
from renkei.core.activities import ActivityType, AssetKind
from renkei.core.scoring import ScoreModel
from renkei.errors import ConfigError
from renkei.marketing.activity_service import ActivityService, NewActivity
from renkei.marketing.scoring_service import ScoringService
from renkei.store import tables as t
from renkei.store.db import make_engine

from .helpers import T0, clock, get, prospect

T, K = ActivityType, AssetKind


def _page_view(engine: Engine, pid: int, url: str, when: dt.datetime) -> None:
    with engine.begin() as conn:
        vid = conn.execute(t.visitor.insert().values(prospectId=pid, pageViewCount=1, isIdentified=True,
                                                     doNotSell=False, createdAt=when, updatedAt=when)).inserted_primary_key[0]  # fmt: skip
        conn.execute(t.visitor_page_view.insert().values(visitorId=vid, prospectId=pid, url=url, durationInSeconds=0,
                                                         createdAt=when))  # fmt: skip


def test_model_change_is_retroactive_and_explained(engine: Engine) -> None:
    clk = clock()
    pid = prospect(engine, clk)
    acts = ActivityService(engine, clock=clk)
    scoring = ScoringService(engine, clock=clk)
    acts.record(NewActivity(T.SUCCESS, K.FORM, prospect_id=pid, details="資料請求", refs={"formId": 3}))
    acts.record(NewActivity(T.VIEW, K.FILE, prospect_id=pid, details="whitepaper.pdf", refs={"fileId": 1}))
    _page_view(engine, pid, "https://example.jp/pricing", T0)
    scoring.adjust(pid, -10, reason="competitor", source="manual")
    assert get(engine, pid)["score"] == 50 + 3 - 10  # the page view was inserted behind the service's back
    assert scoring.rescore_all() == 1
    assert get(engine, pid)["score"] == 50 + 3 + 1 - 10

    model = ScoreModel.from_dict({
        "activities": {"2/File": 5},
        "assets": [{"kind": "Form", "id": 3, "type": 4, "points": 80}],
        "page_actions": [{"url": "https://example.jp/pricing", "points": 20}],
    })  # fmt: skip
    assert scoring.set_model(model) == {"version": 1, "rescored": 1}
    explained = scoring.explain(pid)
    assert [(c["kind"], c["description"], c["points"]) for c in explained["contributions"]] == [
        ("activity", "Success (Form): 資料請求", 80),
        ("activity", "View (File): whitepaper.pdf", 5),
        ("adjustment", "manual: competitor", -10),
        ("page_view", "Page view: https://example.jp/pricing", 21),
    ]
    assert explained["score"] == 96 == get(engine, pid)["score"]


def test_decay_scales_old_contributions(engine: Engine) -> None:
    clk = clock()
    pid = prospect(engine, clk)
    ActivityService(engine, clock=clk).record(
        NewActivity(T.ERROR, K.FORM, prospect_id=pid, refs={"formId": 1}, at=T0 - dt.timedelta(days=100))
    )
    ActivityService(engine, clock=clk).record(NewActivity(T.SUCCESS, K.FORM, prospect_id=pid, refs={"formId": 1},
                                                          at=T0 - dt.timedelta(days=200)))  # fmt: skip
    scoring = ScoringService(engine, clock=clk)
    assert get(engine, pid)["score"] == 45  # decay off by default
    scoring.set_model(
        ScoreModel.from_dict(
            {"decay": [{"after_days": 90, "percent": 50}, {"after_days": 180, "percent": 10}]}
        )
    )
    # -5 at 50% truncates toward zero to -2; +50 at 10% is 5.
    assert get(engine, pid)["score"] == 3
    assert [c["points"] for c in scoring.explain(pid)["contributions"]] == [5, -2]


def test_unexplained_score_shows_in_explain(engine: Engine) -> None:
    clk = clock()
    pid = prospect(engine, clk, score="12")
    assert ScoringService(engine, clock=clk).explain(pid) == {
        "prospectId": pid,
        "score": 12,
        "contributions": [{"kind": "unexplained", "id": None, "at": None,
                           "description": "score written outside the ledger", "points": 12}],
    }  # fmt: skip


def test_bad_models_are_rejected() -> None:
    for bad in ({"nope": 1}, {"activities": {"x": 1}}, {"decay": [{"after_days": 1, "percent": 150}]},
                {"assets": [{"kind": "Visitor", "id": 1, "type": 4, "points": 1}]}):  # fmt: skip
        with pytest.raises(ConfigError):
            ScoreModel.from_dict(bad)
    assert ScoreModel.from_dict(ScoreModel().to_dict()) == ScoreModel()


def test_explain_and_adjust_cli(cli_env: str) -> None:
    runner = CliRunner()
    engine = make_engine(cli_env)
    pid = prospect(engine, clock())
    engine.dispose()
    result = runner.invoke(
        app, ["prospect", "adjust-score", str(pid), "15", "--reason", "展示会で名刺交換", "--json"]
    )
    assert json.loads(result.stdout) == {"prospectId": pid, "score": 15}
    result = runner.invoke(app, ["prospect", "explain-score", str(pid), "--json"])
    data = json.loads(result.stdout)
    assert [(c["kind"], c["description"], c["points"]) for c in data["contributions"]] == [
        ("adjustment", "manual: 展示会で名刺交換", 15)
    ]
    assert runner.invoke(app, ["activity", "rescore", "--json"]).stdout.strip() == '{\n  "rescored": 0\n}'
    assert runner.invoke(app, ["prospect", "explain-score", "999"]).exit_code == 1


_activity = st.tuples(
    st.sampled_from(
        [
            (T.SUCCESS, K.FORM),
            (T.ERROR, K.LANDING_PAGE),
            (T.VIEW, K.FILE),
            (T.SENT, K.EMAIL),
            (T.OPPORTUNITY_LOST, K.OPPORTUNITY),
            (T.VISIT, K.VISIT),
        ]
    ),  # fmt: skip
    st.integers(0, 2),  # prospect index
    st.integers(0, 400),  # age in days
    st.integers(1, 2),  # asset id
)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    activities=st.lists(_activity, max_size=12),
    form_points=st.integers(-20, 120),
    decay=st.lists(st.tuples(st.integers(0, 365), st.integers(0, 100)), max_size=2, unique_by=lambda d: d[0]),
)
def test_sql_rescore_equals_python_explain(
    sqlite_engine: Engine, activities: list, form_points: int, decay: list
) -> None:
    """Property: the set-based SQL rescore and the Python explain agree for any model and history."""
    clk = clock()
    with sqlite_engine.begin() as conn:
        conn.execute(t.visitor_activity.delete())
        conn.execute(t.prospect.delete())
    pids = [prospect(sqlite_engine, clk, f"h{i}@example.jp") for i in range(3)]
    acts = ActivityService(sqlite_engine, clock=clk)
    for (code, kind), who, age, asset in activities:
        column = {"Form": "formId", "Landing Page": "landingPageId", "File": "fileId"}.get(kind.value)
        refs = {column: asset} if column else {}
        acts.record(NewActivity(code, kind, prospect_id=pids[who], refs=refs, at=T0 - dt.timedelta(days=age)))
    model = ScoreModel.from_dict({
        "assets": [{"kind": "Form", "id": 1, "type": 4, "points": form_points}],
        "decay": [{"after_days": d, "percent": p} for d, p in decay],
    })  # fmt: skip
    scoring = ScoringService(sqlite_engine, clock=clk)
    scoring.set_model(model)
    for pid in pids:
        explained = scoring.explain(pid)
        assert [c["kind"] for c in explained["contributions"]].count("unexplained") == 0
        assert (
            explained["score"]
            == sum(c["points"] for c in explained["contributions"])
            == get(sqlite_engine, pid)["score"]
        )
