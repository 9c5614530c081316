from __future__ import annotations

import datetime as dt
import re

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from renkei.clock import FixedClock
from renkei.core import nurture as n
from renkei.email.programs import ProgramService
from renkei.email.service import EmailService
from renkei.email.smtp import SmtpSettings
from renkei.errors import InputError
from renkei.store import tables as t

from .conftest import T0, Sink, add_list, add_prospect

DEFINITION = {
    "start": "welcome",
    "schedule": {"timezone": "Asia/Tokyo", "businessDays": [0, 1, 2, 3, 4], "startHour": 9, "endHour": 18},
    "steps": [
        {"id": "welcome", "type": "action", "action": "send_email", "templateId": 1, "next": "opened"},
        {"id": "opened", "type": "trigger", "trigger": "opened_email", "emailStep": "welcome",
         "within": {"days": 3}, "yes": "hot", "no": "pause"},
        {"id": "hot", "type": "rule", "rule": "score", "op": ">=", "value": 50, "yes": "sales", "no": "nurture"},
        {"id": "sales", "type": "action", "action": "add_to_list", "listId": 99, "next": "end"},
        {"id": "nurture", "type": "action", "action": "adjust_score", "points": 10, "next": "end"},
        {"id": "pause", "type": "wait", "wait": {"days": 2}, "next": "end"},
        {"id": "end", "type": "end"},
    ],
}  # fmt: skip


def _program(definition: dict[str, object] = DEFINITION) -> n.Program:
    return n.Program.from_json(1, "welcome series", definition)


def test_definition_errors_name_the_step() -> None:
    bad = {**DEFINITION, "steps": [*DEFINITION["steps"][:-1], {"id": "end", "type": "teleport"}]}  # type: ignore[misc]
    with pytest.raises(n.ProgramError, match="step end: unknown type 'teleport'"):
        _program(bad)
    dangling = {"start": "a", "steps": [{"id": "a", "type": "wait", "wait": {"days": 1}, "next": "zz"}]}
    with pytest.raises(n.ProgramError, match="step a: next points to missing step 'zz'"):
        _program(dangling)


def test_pure_paths_yes_and_no() -> None:
    program = _program()
    view_hot = n.ProspectView({"score": 60}, engagements=(
        n.Engagement(n.TriggerKind.OPENED_EMAIL, T0 + dt.timedelta(hours=5), "welcome"),))  # fmt: skip
    path = n.simulate(program, view_hot, T0)
    assert [(v.step, v.outcome) for v in path] == [("welcome", "done"), ("opened", "yes"), ("hot", "yes"),
                                                   ("sales", "done"), ("end", "end")]  # fmt: skip
    path = n.simulate(program, n.ProspectView({"score": 0}), T0)
    assert [(v.step, v.outcome, v.at) for v in path] == [
        ("welcome", "done", T0),
        ("opened", "no", T0 + dt.timedelta(days=3)),
        ("pause", "waited", T0 + dt.timedelta(days=5)),
        ("end", "end", T0 + dt.timedelta(days=5)),
    ]


def test_schedule_holds_actions_until_business_hours() -> None:
    saturday_noon_jst = dt.datetime(2026, 11, 28, 3, 0, tzinfo=dt.UTC)
    path = n.simulate(_program(), n.ProspectView({"score": 0}), saturday_noon_jst)
    monday_9_jst = dt.datetime(2026, 11, 30, 0, 0, tzinfo=dt.UTC)
    assert path[0] == n.Visit("welcome", monday_9_jst, "done")


def test_program_advanced_by_test_clock_matches_simulation(
    engine: Engine, clock: FixedClock, smtp_sink: tuple[Sink, int], web: str
) -> None:
    sink, port = smtp_sink
    email = EmailService(engine, clock=clock, smtp=SmtpSettings.from_url(f"smtp://127.0.0.1:{port}"))
    programs = ProgramService(engine, clock=clock, email=email)
    tpl = email.create_template(
        "welcome", "ようこそ {{ prospect.lastName }} 様", "<p>ようこそ</p>", "ようこそ"
    )
    hot = add_prospect(engine, "hot@example.jp", lastName="高橋", score=70)
    cold = add_prospect(engine, "cold@example.jp", lastName="小林", score=5)
    recipients = add_list(engine, "webinar attendees", [hot, cold])
    sales = add_list(engine, "sales ready", [])
    definition = {
        **DEFINITION,
        "steps": [
            {**s, "templateId": tpl["id"]}
            if s["id"] == "welcome"
            else {**s, "listId": sales}
            if s["id"] == "sales"
            else s
            for s in DEFINITION["steps"]
        ],
    }  # type: ignore[attr-defined]
    program = programs.create("welcome series", definition, [recipients])
    with pytest.raises(InputError, match="INVALID_PROGRAM|unknown action"):
        programs.create(
            "broken", {"start": "a", "steps": [{"id": "a", "type": "action", "action": "fly"}]}, [recipients]
        )

    # what we expect: the hot prospect opens the welcome email 5 hours in
    predicted = programs.simulate(program["id"], hot, assume=[("opened_email", "welcome", 5)])
    predicted_cold = programs.simulate(program["id"], cold)

    programs.run_once()
    email.work()
    assert sorted(m["To"] for m in sink.messages) == ["cold@example.jp", "hot@example.jp"]
    msg = next(m for m in sink.messages if m["To"] == "hot@example.jp")
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    pixel = re.search(r'<img src="([^"]+\.gif)"', html)
    assert pixel is not None
    clock.advance(hours=5)
    assert httpx.get(pixel.group(1)).status_code == 200
    for _ in range(6 * 24):  # the scheduler ticks hourly for six days
        clock.advance(hours=1)
        programs.run_once()

    real = programs.history(program["id"], hot)
    assert real == predicted["path"]
    assert programs.history(program["id"], cold) == predicted_cold["path"]
    with engine.connect() as conn:
        members = conn.execute(
            sa.select(t.list_membership.c.prospectId).where(t.list_membership.c.listId == sales)
        ).all()
        scores = dict(conn.execute(sa.select(t.prospect.c.id, t.prospect.c.score)).all())
        last_activity = conn.execute(
            sa.select(t.prospect.c.lastActivityAt).where(t.prospect.c.id == cold)
        ).scalar_one()
    assert [r.prospectId for r in members] == [hot]
    assert scores == {hot: 70, cold: 5}  # the cold one took the "no" branch: no score change
    assert last_activity is None  # program actions never move lastActivityAt
    counts = programs.get(program["id"])["stepCounts"]
    assert counts["welcome"] == {"done": 2} and counts["opened"] == {"yes": 1, "no": 1}
    assert counts["end"] == {"end": 2}
