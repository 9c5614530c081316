"""Nurture programs (Account Engagement's Engagement Studio), pure.

A program is a graph of steps. Each prospect in a program has a position (the step it is at)
and, when it waits, the instant it may advance. ``advance`` moves one prospect as far as it can
at ``now`` and returns the new position plus the actions to perform — it performs nothing
itself, so the same function drives the scheduler, the simulator and the tests.

Step kinds:
- ``action``  — send email, add/remove list, adjust score, assign, change field, notify; then ``next``
- ``trigger`` — did the prospect open / click / submit a form / visit a page since it arrived at the
  step? waits up to ``within`` for it (advances on "yes" as soon as it happens), then ``yes``/``no``
- ``rule``    — field / score / grade / list / CRM data condition, evaluated now; ``yes``/``no``
- ``wait``    — a fixed pause, then ``next``
- ``end``

Program actions never move ``lastActivityAt`` (seed 004): the performer records them as such.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo


class StepKind(enum.StrEnum):
    ACTION = "action"
    TRIGGER = "trigger"
    RULE = "rule"
    WAIT = "wait"
    END = "end"


class ActionKind(enum.StrEnum):
    SEND_EMAIL = "send_email"
    ADD_TO_LIST = "add_to_list"
    REMOVE_FROM_LIST = "remove_from_list"
    ADJUST_SCORE = "adjust_score"
    ASSIGN = "assign"
    CHANGE_FIELD = "change_field"
    NOTIFY = "notify"


class TriggerKind(enum.StrEnum):
    OPENED_EMAIL = "opened_email"
    CLICKED_EMAIL = "clicked_email"
    SUBMITTED_FORM = "submitted_form"
    VISITED_PAGE = "visited_page"


class RuleKind(enum.StrEnum):
    FIELD = "field"
    SCORE = "score"
    GRADE = "grade"
    LIST = "list"
    CRM = "crm"


GRADES = ("F", "D-", "D", "D+", "C-", "C", "C+", "B-", "B", "B+", "A-", "A", "A+")


class ProgramError(ValueError):
    """A program definition that cannot run (names the bad step)."""


@dataclass(frozen=True, slots=True)
class Step:
    id: str
    kind: StepKind
    next: str | None = None
    yes: str | None = None
    no: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    #: Waits (``wait`` steps) and trigger windows, in seconds.
    seconds: int = 0


@dataclass(frozen=True, slots=True)
class Schedule:
    """When actions may run: business days/hours in a time zone (None = any time)."""

    timezone: str = "Asia/Tokyo"
    business_days: tuple[int, ...] | None = None  # 0 = Monday
    start_hour: int = 0
    end_hour: int = 24

    def next_open(self, when: dt.datetime) -> dt.datetime:
        """``when`` if actions may run then, else the next instant they may."""
        if self.business_days is None and self.start_hour == 0 and self.end_hour == 24:
            return when
        tz = ZoneInfo(self.timezone)
        local = when.astimezone(tz)
        for _ in range(0, 24 * 15):
            day_ok = self.business_days is None or local.weekday() in self.business_days
            if day_ok and self.start_hour <= local.hour < self.end_hour:
                return local.astimezone(dt.UTC)
            local = (local + dt.timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
        raise ProgramError("the schedule never opens")


@dataclass(frozen=True, slots=True)
class Program:
    id: int
    name: str
    start: str
    steps: Mapping[str, Step]
    schedule: Schedule = Schedule()

    @staticmethod
    def from_json(program_id: int, name: str, data: Mapping[str, Any]) -> Program:
        try:
            raw_steps = data["steps"]
            start = data["start"]
        except KeyError as exc:
            raise ProgramError(f"program definition needs {exc.args[0]!r}") from None
        steps: dict[str, Step] = {}
        for raw in raw_steps:
            sid = str(raw.get("id") or "")
            if not sid:
                raise ProgramError("every step needs an id")
            try:
                kind = StepKind(raw.get("type"))
            except ValueError:
                raise ProgramError(f"step {sid}: unknown type {raw.get('type')!r}") from None
            seconds = _duration(raw.get("wait") or raw.get("within") or {}, sid)
            params = {
                k: v for k, v in raw.items() if k not in ("id", "type", "next", "yes", "no", "wait", "within")
            }
            steps[sid] = Step(sid, kind, raw.get("next"), raw.get("yes"), raw.get("no"), params, seconds)
        sched = data.get("schedule") or {}
        schedule = Schedule(
            timezone=sched.get("timezone", "Asia/Tokyo"),
            business_days=tuple(sched["businessDays"]) if sched.get("businessDays") is not None else None,
            start_hour=int(sched.get("startHour", 0)),
            end_hour=int(sched.get("endHour", 24)),
        )
        program = Program(program_id, name, start, steps, schedule)
        program.validate()
        return program

    def validate(self) -> None:
        if self.start not in self.steps:
            raise ProgramError(f"start step {self.start!r} does not exist")
        for step in self.steps.values():
            targets = {StepKind.ACTION: ("next",), StepKind.WAIT: ("next",), StepKind.TRIGGER: ("yes", "no"),
                       StepKind.RULE: ("yes", "no"), StepKind.END: ()}[step.kind]  # fmt: skip
            for attr in targets:
                target = getattr(step, attr)
                if target is None or target not in self.steps:
                    raise ProgramError(f"step {step.id}: {attr} points to missing step {target!r}")
            if step.kind is StepKind.ACTION:
                try:
                    ActionKind(str(step.params.get("action")))
                except ValueError:
                    raise ProgramError(
                        f"step {step.id}: unknown action {step.params.get('action')!r}"
                    ) from None
            if step.kind is StepKind.TRIGGER:
                try:
                    TriggerKind(str(step.params.get("trigger")))
                except ValueError:
                    raise ProgramError(
                        f"step {step.id}: unknown trigger {step.params.get('trigger')!r}"
                    ) from None
                if step.seconds <= 0:
                    raise ProgramError(f"step {step.id}: a trigger needs a 'within' window")
            if step.kind is StepKind.RULE:
                try:
                    RuleKind(str(step.params.get("rule")))
                except ValueError:
                    raise ProgramError(f"step {step.id}: unknown rule {step.params.get('rule')!r}") from None
            if step.kind is StepKind.WAIT and step.seconds <= 0:
                raise ProgramError(f"step {step.id}: a wait needs a duration")


def _duration(d: Mapping[str, Any], sid: str) -> int:
    try:
        return int(dt.timedelta(**{k: float(v) for k, v in d.items()}).total_seconds())
    except (TypeError, ValueError):
        raise ProgramError(f"step {sid}: bad duration {dict(d)!r}") from None


@dataclass(frozen=True, slots=True)
class Position:
    """Where a prospect is in a program. ``since`` = arrival at the step; ``until`` = may advance at."""

    step: str | None
    since: dt.datetime
    until: dt.datetime | None = None
    finished: bool = False


@dataclass(frozen=True, slots=True)
class Engagement:
    """An engagement event the triggers look at."""

    kind: TriggerKind
    at: dt.datetime
    email_step: str | None = None  # which program email (step id) was opened/clicked
    asset_id: int | None = None  # form id
    url: str | None = None


@dataclass(frozen=True, slots=True)
class ProspectView:
    """What rules and triggers may look at."""

    fields: Mapping[str, Any]
    lists: frozenset[int] = frozenset()
    crm: Mapping[str, Any] = field(default_factory=dict)
    engagements: tuple[Engagement, ...] = ()


@dataclass(frozen=True, slots=True)
class Action:
    step: str
    kind: ActionKind
    params: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Visit:
    """One step the prospect went through, with the outcome (for history, counts and simulation)."""

    step: str
    at: dt.datetime
    outcome: str  # "done", "yes", "no", "waited", "end"


@dataclass(frozen=True, slots=True)
class Advance:
    position: Position
    actions: tuple[Action, ...]
    path: tuple[Visit, ...]


def _compare(left: Any, op: str, right: Any) -> bool:
    if op in ("is_blank", "is_not_blank"):
        blank = left is None or str(left).strip() == ""
        return blank if op == "is_blank" else not blank
    if left is None:
        return False
    if op == "contains":
        return str(right).casefold() in str(left).casefold()
    if isinstance(right, (int, float)) and not isinstance(left, (int, float)):
        try:
            left = float(left)
        except (TypeError, ValueError):
            return False
    if isinstance(left, str) and isinstance(right, str):
        left, right = left.casefold(), right.casefold()
    ops = {"=": left == right, "!=": left != right}
    if op in ops:
        return bool(ops[op])
    try:
        return bool({">": left > right, ">=": left >= right, "<": left < right, "<=": left <= right}[op])
    except KeyError:
        raise ProgramError(f"unknown operator {op!r}") from None
    except TypeError:
        return False


def evaluate_rule(step: Step, view: ProspectView) -> bool:
    p = step.params
    kind = RuleKind(p["rule"])
    if kind is RuleKind.SCORE:
        return _compare(view.fields.get("score") or 0, p.get("op", ">="), float(p["value"]))
    if kind is RuleKind.GRADE:
        grade = view.fields.get("grade")
        if grade not in GRADES:
            return False
        return _compare(GRADES.index(grade), p.get("op", ">="), GRADES.index(str(p["value"])))
    if kind is RuleKind.LIST:
        member = int(p["listId"]) in view.lists
        return member if p.get("op", "member") == "member" else not member
    source = view.crm if kind is RuleKind.CRM else view.fields
    return _compare(source.get(str(p["field"])), p.get("op", "="), p.get("value"))


def _triggered(step: Step, view: ProspectView, since: dt.datetime, until: dt.datetime) -> dt.datetime | None:
    """When the trigger's event first happened within the window, or None."""
    kind = TriggerKind(step.params["trigger"])
    hits = []
    for e in view.engagements:
        if e.kind is not kind or not (since <= e.at <= until):
            continue
        if kind in (TriggerKind.OPENED_EMAIL, TriggerKind.CLICKED_EMAIL):
            wanted = step.params.get("emailStep")
            if wanted and e.email_step != wanted:
                continue
        if kind is TriggerKind.SUBMITTED_FORM and step.params.get("formId") not in (None, e.asset_id):
            continue
        if kind is TriggerKind.VISITED_PAGE and step.params.get("url") and e.url != step.params.get("url"):
            continue
        hits.append(e.at)
    return min(hits) if hits else None


def start(program: Program, now: dt.datetime) -> Position:
    return Position(program.start, now)


def advance(
    program: Program, position: Position, view: ProspectView, now: dt.datetime, *, max_steps: int = 100
) -> Advance:
    """Move a prospect as far as it can go at ``now``."""
    actions: list[Action] = []
    path: list[Visit] = []
    pos = position
    for _ in range(max_steps):
        if pos.finished or pos.step is None:
            break
        step = program.steps[pos.step]
        if pos.until is not None and now < pos.until and step.kind is not StepKind.TRIGGER:
            break
        at = max(pos.since, pos.until or pos.since)
        if step.kind is StepKind.END:
            path.append(Visit(step.id, at, "end"))
            pos = Position(None, at, None, True)
            break
        if step.kind is StepKind.WAIT:
            if pos.until is None:
                pos = Position(step.id, pos.since, pos.since + dt.timedelta(seconds=step.seconds))
                continue
            path.append(Visit(step.id, pos.until, "waited"))
            pos = Position(step.next, pos.until)
            continue
        if step.kind is StepKind.ACTION:
            run_at = program.schedule.next_open(at)
            if run_at > now:
                pos = Position(step.id, pos.since, run_at)
                break
            actions.append(Action(step.id, ActionKind(step.params["action"]), step.params))
            path.append(Visit(step.id, run_at, "done"))
            pos = Position(step.next, run_at)
            continue
        if step.kind is StepKind.RULE:
            ok = evaluate_rule(step, view)
            path.append(Visit(step.id, at, "yes" if ok else "no"))
            pos = Position(step.yes if ok else step.no, at)
            continue
        # trigger: yes as soon as the event happens within the window; no when the window ends
        deadline = pos.since + dt.timedelta(seconds=step.seconds)
        hit = _triggered(step, view, pos.since, min(now, deadline))
        if hit is not None:
            path.append(Visit(step.id, hit, "yes"))
            pos = Position(step.yes, hit)
            continue
        if now >= deadline:
            path.append(Visit(step.id, deadline, "no"))
            pos = Position(step.no, deadline)
            continue
        pos = Position(step.id, pos.since, deadline)
        break
    return Advance(pos, tuple(actions), tuple(path))


def simulate(
    program: Program,
    view: ProspectView,
    start_at: dt.datetime,
    *,
    horizon: dt.timedelta = dt.timedelta(days=365),
    tick: dt.timedelta = dt.timedelta(hours=1),
) -> tuple[Visit, ...]:
    """The path a prospect would take, assuming its engagements are those in ``view``.

    Steps the clock through the program the way the scheduler would (every ``tick``)."""
    pos = start(program, start_at)
    path: list[Visit] = []
    now = start_at
    end = start_at + horizon
    while not pos.finished and now <= end:
        result = advance(program, pos, view, now)
        path.extend(result.path)
        pos = result.position
        if pos.finished:
            break
        nxt = pos.until if pos.until is not None and pos.until > now else now + tick
        now = max(now + dt.timedelta(seconds=1), min(nxt, now + tick) if pos.until is None else nxt)
    return tuple(path)


def step_counts(paths: Sequence[Sequence[Visit]]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for path in paths:
        for v in path:
            counts.setdefault(v.step, {}).setdefault(v.outcome, 0)
            counts[v.step][v.outcome] += 1
    return counts
