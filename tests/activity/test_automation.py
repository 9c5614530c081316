"""Automation rules: criteria (all/any), actions, once per prospect unless repeat; preview of a
paused rule; completion actions; round-robin assignment; notifications."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from renkei.core.activities import ActivityType, AssetKind
from renkei.core.automation import RuleDefinition
from renkei.errors import ConfigError
from renkei.marketing.activity_service import ActivityService, NewActivity
from renkei.marketing.automation_service import AutomationService
from renkei.marketing.scoring_service import ScoringService
from renkei.marketing.service import ListService, TagService, UserService

from .helpers import T0, clock, get, prospect

MQL = {
    "match": "all",
    "criteria": [
        {"kind": "score", "operator": "gte", "value": 50},
        {"kind": "activity", "type": 4, "within_days": 30},
    ],
    "actions": [
        {"type": "adjust_score", "points": 10},
        {"type": "add_tag", "tag": "MQL"},
        {"type": "assign_round_robin", "user_ids": []},  # filled in by the test
        {"type": "notify_user", "message": "MQLになりました"},
    ],
}


def test_rule_fires_once_then_repeats_when_set(engine: Engine) -> None:
    clk = clock()
    users = [UserService(engine, clock=clk).create({"email": f"sales{i}@example.jp"})["id"] for i in range(2)]
    rule = {
        **MQL,
        "actions": [
            *MQL["actions"][:2],
            {"type": "assign_round_robin", "user_ids": users},
            MQL["actions"][3],
        ],
    }
    a, b, c = (prospect(engine, clk, f"{n}@example.jp") for n in "abc")
    acts = ActivityService(engine, clock=clk)
    for pid in (a, b):
        acts.record(NewActivity(ActivityType.SUCCESS, AssetKind.FORM, prospect_id=pid, refs={"formId": 1}))
    ScoringService(engine, clock=clk).adjust(
        c, 60, reason="展示会", source="manual"
    )  # score but no form success
    automation = AutomationService(engine, clock=clk)
    saved = automation.save_rule("MQL判定", rule)
    assert saved["isPaused"] is True
    assert automation.preview(saved["id"]) == [a, b]  # a paused rule can be previewed
    assert automation.run_all() == []  # … but does not run
    automation.set_paused(saved["id"], False)
    clk.advance(hours=1)
    ran = automation.run_all()
    assert [(r["prospectId"], r["run"], r["actions"]) for r in ran] == [
        (a, 1, ["score +10", "tagged MQL", f"assigned to user {users[0]}", f"notified user {users[0]} (email 1 queued)"]),
        (b, 1, ["score +10", "tagged MQL", f"assigned to user {users[1]}", f"notified user {users[1]} (email 2 queued)"]),
    ]  # fmt: skip
    assert [get(engine, p)["score"] for p in (a, b, c)] == [60, 60, 60]
    assert get(engine, a)["lastActivityAt"] == T0  # actions are not activities
    assert automation.run_all() == []  # once per prospect
    assert [n["message"] for n in automation.notifications(users[0])] == ["MQLになりました"]
    assert TagService(engine).tags_of("prospect", a) == ["MQL"]

    automation.save_rule("MQL判定", {**rule, "repeat": True, "repeat_after_days": 1, "max_runs": 2})
    assert automation.run_all() == []  # not yet a day later
    clk.advance(days=1)
    assert [(r["prospectId"], r["run"]) for r in automation.run_all()] == [(a, 2), (b, 2)]
    clk.advance(days=1)
    assert automation.run_all() == []  # max_runs reached
    # Owned prospects are never reassigned.
    assert (get(engine, a)["assignedToId"], get(engine, b)["assignedToId"]) == (users[0], users[1])


def test_match_any_with_list_tag_field_and_grade(engine: Engine) -> None:
    clk = clock()
    lst = ListService(engine, clock=clk).create({"name": "セミナー参加者"})
    target = ListService(engine, clock=clk).create({"name": "ナーチャリング"})
    a = prospect(engine, clk, "a@example.jp", industry="製造")
    b = prospect(engine, clk, "b@example.jp")
    c = prospect(engine, clk, "c@example.jp", grade="B")
    d = prospect(engine, clk, "d@example.jp")
    ListService(engine, clock=clk).add_prospects(lst["id"], [b])
    TagService(engine, clock=clk).add("VIP", "prospect", d)
    automation = AutomationService(engine, clock=clk)
    rule = automation.save_rule("振り分け", {
        "match": "any",
        "criteria": [
            {"kind": "field", "field": "industry", "operator": "equals", "value": "製造"},
            {"kind": "list", "list_id": lst["id"]},
            {"kind": "grade", "operator": "gte", "value": "B-"},
            {"kind": "tag", "tag": "VIP"},
        ],
        "actions": [{"type": "add_to_list", "list_id": target["id"]}, {"type": "change_field", "field": "territory", "value": "西日本"}],
    }, paused=False)  # fmt: skip
    assert [r["prospectId"] for r in automation.run_for([a, b, c, d])] == [a, b, c, d]
    assert [m["prospectId"] for m in ListService(engine).members(target["id"])] == [a, b, c, d]
    assert get(engine, a)["territory"] == "西日本"
    assert automation.preview(rule["id"]) == []


def test_rule_in_the_shared_rule_language(engine: Engine) -> None:
    clk = clock()
    a = prospect(engine, clk, "a@example.jp", company="株式会社A")
    b = prospect(engine, clk, "b@example.jp")
    ActivityService(engine, clock=clk).record(
        NewActivity(ActivityType.SUCCESS, AssetKind.FORM, prospect_id=a, refs={"formId": 1})
    )
    automation = AutomationService(engine, clock=clk)
    text = "all(score >= 50, has activity(type in (SUCCESS), within last 7 days), company is not empty)"
    saved = automation.save_rule(
        "フォーム送信者", {"rule": text, "actions": [{"type": "add_tag", "tag": "hot"}]}
    )
    assert automation.preview(saved["id"]) == [a]
    automation.set_paused(saved["id"], False)
    assert [(r["prospectId"], r["actions"]) for r in automation.run_for([a, b])] == [(a, ["tagged hot"])]
    assert automation.run_for([a, b]) == []
    with pytest.raises(ConfigError, match="rule:"):
        RuleDefinition.from_dict({"rule": "all(score >=", "actions": [{"type": "add_tag", "tag": "x"}]})


def test_invalid_rules_are_rejected() -> None:
    for bad in (
        {"criteria": [], "actions": [{"type": "add_tag", "tag": "x"}]},
        {"criteria": [{"kind": "score", "operator": "gte", "value": 1}], "actions": [{"type": "explode"}]},
        {
            "criteria": [{"kind": "grade", "operator": "gte", "value": "Z"}],
            "actions": [{"type": "add_tag", "tag": "x"}],
        },
        {
            "match": "some",
            "criteria": [{"kind": "tag", "tag": "x"}],
            "actions": [{"type": "add_tag", "tag": "x"}],
        },
        {"criteria": [{"kind": "tag", "tag": "x"}], "actions": [{"type": "assign_user"}]},
    ):
        with pytest.raises(ConfigError):
            RuleDefinition.from_dict(bad)
