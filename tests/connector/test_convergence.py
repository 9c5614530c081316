"""Convergence: random interleavings of edits on both sides, deletes, merges, conversions, crashes
(an exception injected at any step of a cycle) and sync cycles settle — no duplicate prospect, every
CRM person accounted for, no lost one-sided edit — and a further cycle writes nothing."""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from renkei.clock import FixedClock
from renkei.connector import config as c
from renkei.connector.adapters.builtin import BuiltinCrmAdapter
from renkei.connector.service import SyncService
from renkei.core.identity import email_key
from renkei.core.sync.judge import Rule, jsonable, same
from renkei.crm.service import CrmService
from renkei.errors import RenkeiError
from renkei.marketing.service import ProspectService
from renkei.store import tables as t
from renkei.store.db import make_engine
from renkei.store.tables_sync import sync_audit, sync_error, sync_link

PEOPLE = 3
#: the date-time custom field edited besides the title (``Title`` ↔ ``jobTitle``), and its value on
#: every new CRM record
MEETING = "Meeting__c"
FIRST_MEETING = dt.datetime(2026, 4, 20, 10, tzinfo=dt.UTC)
# the CRM spells the same address in other ways (case, full width): identity must not care
SPELLINGS = ("p{i}@example.jp", "P{i}@Example.JP", "Ｐ{i}@example.jp")


class Crash(Exception):
    """The injected failure (a process dying at that step)."""


@dataclass
class Bomb:
    left: int | None = None

    def tick(self) -> None:
        if self.left is None:
            return
        self.left -= 1
        if self.left == 0:
            self.left = None
            raise Crash


class CrashingAdapter:
    """The built-in adapter with a bomb in every call (reads and batch writes)."""

    def __init__(self, inner: BuiltinCrmAdapter, bomb: Bomb) -> None:
        self.inner, self.bomb = inner, bomb
        self.calls = inner.calls

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        def call(*args: Any, **kw: Any) -> Any:
            self.bomb.tick()
            return method(*args, **kw)

        return call


#: Steps inside a cycle where the process may die (besides every adapter call).
SERVICE_STEPS = ("_create_prospects", "_write_prospect", "_link", "_move_link", "_merge_prospects",
                 "_recycle_or_unlink", "_save_mark", "_audit", "_agree")  # fmt: skip


@dataclass
class World:
    engine: Engine
    clock: FixedClock
    crm: CrmService
    ma: ProspectService
    crm_ids: list[tuple[str, str]] = field(default_factory=list)  # (object, id) created by the test

    def tick(self) -> None:
        self.clock.advance(seconds=1)

    def cycle(self, crash_at: int | None) -> None:
        bomb = Bomb(crash_at)
        svc = SyncService(self.engine, CONFIG, clock=self.clock,
                          adapter=CrashingAdapter(BuiltinCrmAdapter(self.crm), bomb))  # fmt: skip
        for name in SERVICE_STEPS:
            _arm(svc, name, bomb)
        with contextlib.suppress(Crash):
            svc.run()
        self.tick()

    def linked_pair(self, person: int) -> tuple[int, str, str] | None:
        """(prospect id, object, CRM id) of the person's live, linked prospect and live CRM record."""
        for p in self.ma.find_by_email(key(person)):
            with self.engine.connect() as conn:
                link = conn.execute(sa.select(sync_link).where(sync_link.c.prospect_id == p["id"])).first()
            if link is None:
                continue
            rec = self.crm.get(link.crm_object, link.crm_id, include_deleted=True)
            if not rec["IsDeleted"] and not rec.get("IsConverted"):
                return int(p["id"]), link.crm_object, link.crm_id
        return None

    def live_crm(self, person: int, obj: str | None = None) -> list[tuple[str, str]]:
        out = []
        for o, rid in self.crm_ids:
            if obj is not None and o != obj:
                continue
            rec = self.crm.get(o, rid, include_deleted=True)
            if rec["IsDeleted"] or rec.get("IsConverted") or email_key(rec.get("Email")) != key(person):
                continue
            out.append((o, rid))
        return out


def _arm(svc: SyncService, name: str, bomb: Bomb) -> None:
    original: Callable[..., Any] = getattr(svc, name)

    def armed(*args: Any, **kw: Any) -> Any:
        bomb.tick()
        return original(*args, **kw)

    setattr(svc, name, armed)


def key(person: int) -> str:
    return f"p{person}@example.jp"


def _config() -> c.ConnectorConfig:
    # a date-time custom field on both sides (the template has them), judged by most recent
    cfg = c.parse(c.DEFAULT_YAML + f"  - {{ma: {MEETING}, crm: {MEETING}, rule: most_recent}}\n")
    fields = [
        m.model_copy(update={"rule": Rule.MOST_RECENT}) if m.ma == "jobTitle" else m for m in cfg.fields
    ]
    return cfg.model_copy(update={"fields": fields})


CONFIG = _config()

# -- the operations -------------------------------------------------------------------------

people = st.integers(0, PEOPLE - 1)
titles = st.sampled_from(["課長", "部長", "主任", "社長"])
#: an edit of the meeting date-time instead of the title
meetings = st.sampled_from([dt.datetime(2026, 5, d, 10, tzinfo=dt.UTC) for d in (1, 2, 3)])
values = titles | meetings


def field_of(value: Any) -> tuple[str, str]:
    """(CRM field, prospect field) an edit to ``value`` changes."""
    return (MEETING, MEETING) if isinstance(value, dt.datetime) else ("Title", "jobTitle")


def spelled(value: Any) -> Any:
    """A side's value as compared here: a date-time (as either side holds it) as its UTC text."""
    if isinstance(value, str) and value[:4].isdigit() and "T" in value:
        value = dt.datetime.fromisoformat(value)
    return jsonable(value)


creates = st.one_of(
    st.tuples(
        st.just("crm_create"),
        people,
        st.sampled_from(["Lead", "Contact"]),
        st.integers(0, len(SPELLINGS) - 1),
    ),
    st.tuples(st.just("ma_create"), people),
)
ops = st.one_of(
    creates,
    creates,
    st.tuples(st.just("crm_edit"), people, values),
    st.tuples(st.just("ma_edit"), people, values),
    st.tuples(st.just("crm_delete"), people),
    st.tuples(st.just("ma_delete"), people),
    st.tuples(st.just("convert"), people),
    st.tuples(st.just("merge"), people, people),
    st.tuples(st.just("cycle"), st.none() | st.integers(1, 40)),
)


def apply(w: World, op: tuple[Any, ...]) -> None:
    kind, *args = op
    if kind == "cycle":
        w.cycle(args[0])
        return
    person = args[0]
    try:
        if kind == "crm_create":
            obj, spelling = args[1], SPELLINGS[args[2]].format(i=person)
            if w.live_crm(person, obj):
                return  # one live lead and one live contact per person at most (else: a reported collision)
            values = {"LastName": f"人{person}", "Email": spelling, MEETING: FIRST_MEETING}
            if obj == "Lead":
                values["Company"] = f"会社{person}"
            w.crm_ids.append((obj, w.crm.create(obj, values)))
        elif kind == "ma_create":
            w.ma.create({"email": key(person), "lastName": f"人{person}"})
        elif kind == "crm_edit":
            for obj, rid in w.live_crm(person)[:1]:
                w.crm.update(obj, rid, {field_of(args[1])[0]: args[1]})
        elif kind == "ma_edit":
            for p in w.ma.find_by_email(key(person))[:1]:
                w.ma.update(p["id"], {field_of(args[1])[1]: args[1]})
        elif kind == "crm_delete":
            for obj, rid in w.live_crm(person)[:1]:
                w.crm.delete(obj, rid)
        elif kind == "ma_delete":
            for p in w.ma.find_by_email(key(person))[:1]:
                w.ma.delete(p["id"])
        elif kind == "convert":
            for _, rid in w.live_crm(person, "Lead")[:1]:
                result = w.crm.convert_lead(rid)
                w.crm_ids.append(("Contact", result.contact_id))
        elif kind == "merge":
            a, b = w.live_crm(person, "Contact"), w.live_crm(args[1], "Contact")
            if a and b and a[0] != b[0]:
                w.crm.merge("Contact", a[0][1], [b[0][1]])
    except RenkeiError:
        pass  # a refused user action (duplicate email, …) changes nothing
    w.tick()


# -- the checks -----------------------------------------------------------------------------


def writes(engine: Engine, since_run: int) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(sync_audit).where(sync_audit.c.run_id > since_run)).mappings().all()
    return [dict(r) for r in rows]


def check_settled(w: World) -> None:
    p = t.prospect
    with w.engine.connect() as conn:
        prospects = [dict(r) for r in conn.execute(sa.select(p)).mappings()]
        links = {r.crm_id: int(r.prospect_id) for r in conn.execute(sa.select(sync_link))}
        open_errors = {
            r.record_id for r in conn.execute(sa.select(sync_error).where(sync_error.c.resolved_at.is_(None)))
        }
    live = [r for r in prospects if not r["isDeleted"]]
    keys = [email_key(r["email"]) for r in live]
    assert len(keys) == len(set(keys)), f"duplicate live prospects: {keys}"
    assert len(set(links.values())) == len(links), "a prospect linked twice"
    by_id = {r["id"]: r for r in prospects}
    for person in range(PEOPLE):
        records = w.live_crm(person)
        contacts = [rid for o, rid in records if o == "Contact"]
        for obj, rid in records:
            if rid in open_errors:
                continue  # reported (collision, …), never guessed
            if obj == "Lead" and any(cid in links for cid in contacts):
                continue  # prefer contact: the lead's person is the contact's prospect
            assert rid in links, f"{obj} {rid} of person {person} is not linked"
            prospect = by_id[links[rid]]
            if prospect["isDeleted"]:
                continue  # deleted in marketing stays deleted until the CRM record changes
            rec = w.crm.get(obj, rid)
            for crm_field, ma_field in (("Title", "jobTitle"), (MEETING, MEETING)):
                assert (
                    same(spelled(rec.get(crm_field)), spelled(prospect.get(ma_field)))
                    or rec.get(crm_field) is None
                    or not prospect.get(ma_field)
                ), (crm_field, rec.get(crm_field), prospect.get(ma_field))


@pytest.fixture(scope="module", autouse=True)
def _commit_every_update() -> Iterator[None]:
    """A busy cycle commits its prospect writes in parts (``service._COMMIT_EVERY`` pair updates
    each, whole pairs); here every pair update is a part of its own, so the crashes land between
    committed parts too."""
    from renkei.connector import service

    saved, service._COMMIT_EVERY = service._COMMIT_EVERY, 1
    yield
    service._COMMIT_EVERY = saved


@pytest.fixture(scope="module")
def template(_templates: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("convergence-template") / "template.db"
    shutil.copyfile(Path(_templates.sqlite()), path)
    engine = make_engine(f"sqlite:///{path}")
    crm = CrmService(engine)
    for obj in ("Lead", "Contact"):
        crm.add_field(obj, MEETING, "datetime")
    ProspectService(engine).add_field(MEETING, "datetime")
    engine.dispose()
    return path


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("convergence")


@pytest.fixture(scope="module")
def fresh(template: Path, scratch: Path) -> Iterator[Callable[[], World]]:
    engines: list[Engine] = []

    def make() -> World:
        path = scratch / f"{uuid.uuid4().hex[:8]}.db"
        shutil.copyfile(template, path)
        engine = make_engine(f"sqlite:///{path}")
        engines.append(engine)
        clock = FixedClock(dt.datetime(2026, 4, 1, 9, tzinfo=dt.UTC))
        return World(engine, clock, CrmService(engine, clock=clock), ProspectService(engine, clock=clock))

    yield make
    for e in engines:
        e.dispose()


# shrinking a failure re-runs whole sync histories: report the example as found instead
@example(  # found by this property: a lead's prospect moved to a new same-email contact kept the lead's agreed
    # values, so a marketing edit back to the agreed value never reached the contact
    steps=[("cycle", None), ("ma_delete", 2), ("crm_create", 0, "Lead", 1), ("crm_delete", 2), ("crm_create", 2, "Lead", 0),
           ("merge", 1, 1), ("crm_edit", 0, "社長"), ("convert", 1), ("cycle", None), ("convert", 2),
           ("crm_create", 0, "Contact", 0)],
    final_edits=[(0, False, "課長"), (0, False, "社長"), (1, True, "課長")],
    crash_at=None,
)  # fmt: skip
@example(  # a marketing edit of a date-time field, then a CRM edit of another field of the record: the
    # agreed date (JSON text) never matched the CRM's date-time, so the CRM side counted as changed too
    # and, its record being newer, reverted the marketing edit
    steps=[("crm_create", 0, "Lead", 0), ("cycle", None)],
    final_edits=[(0, False, dt.datetime(2026, 5, 2, 10, tzinfo=dt.UTC)), (0, True, "部長")],
    crash_at=None,
)
@example(  # found by this property: a lead arriving for a prospect whose contact was deleted stayed unlinked
    steps=[("crm_create", 0, "Contact", 0), ("cycle", None), ("crm_delete", 0), ("cycle", None),
           ("crm_create", 0, "Lead", 0)],
    final_edits=[(0, True, "部長")],
    crash_at=None,
)  # fmt: skip
@example(  # found by this property: a second contact with a converted lead's email stayed unlinked, unreported
    steps=[("crm_create", 1, "Lead", 0), ("cycle", 9), ("crm_create", 2, "Lead", 0), ("ma_create", 1),
           ("crm_create", 0, "Lead", 0), ("cycle", 39), ("crm_create", 1, "Contact", 1), ("convert", 1)],
    final_edits=[],
    crash_at=None,
)  # fmt: skip
@example(  # found by this property: a lead left unlinked for its contact stayed unlinked once the contact was deleted
    steps=[("crm_create", 0, "Contact", 1), ("cycle", None), ("crm_create", 0, "Lead", 0), ("cycle", None),
           ("crm_delete", 0)],
    final_edits=[],
    crash_at=None,
)  # fmt: skip
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
@given(st.lists(ops, min_size=4, max_size=16), st.lists(st.tuples(people, st.booleans(), values), max_size=3),
       st.none() | st.integers(1, 30))  # fmt: skip
def test_random_interleavings_converge(fresh: Callable[[], World], steps: list[tuple[Any, ...]],
                                       final_edits: list[tuple[int, bool, Any]], crash_at: int | None) -> None:  # fmt: skip
    w = fresh()
    for op in steps:
        apply(w, op)
    # the connector recovers from whatever state the crashes left
    for _ in range(3):
        w.cycle(None)
    check_settled(w)
    # one-sided edits made now survive a crashed cycle and its recovery (no lost edits): a title or
    # a meeting date-time, each edit on one side, later ones on either side of other fields
    expected: dict[tuple[int, str], Any] = {}
    for person, on_crm, value in final_edits:
        pair = w.linked_pair(person)
        if pair is None:
            continue
        pid, obj, rid = pair
        crm_field, ma_field = field_of(value)
        held = w.crm.get(obj, rid)[crm_field] if on_crm else w.ma.get(pid)[ma_field]
        if spelled(held) == spelled(value):
            continue  # the side holds it already: no edit (the field did not change on that side)
        if on_crm:
            w.crm.update(obj, rid, {crm_field: value})
        else:
            w.ma.update(pid, {ma_field: value})
        w.tick()
        expected[(person, crm_field)] = value
    w.cycle(crash_at)
    for _ in range(2):
        w.cycle(None)
    check_settled(w)
    for (person, crm_field), value in expected.items():
        pair = w.linked_pair(person)
        assert pair is not None, f"person {person} lost its link"
        pid, obj, rid = pair
        ma_field = field_of(value)[1]
        got = (spelled(w.ma.get(pid)[ma_field]), spelled(w.crm.get(obj, rid)[crm_field]))
        assert got == (spelled(value), spelled(value)), (crm_field, got, value)
    # a further cycle writes nothing
    with w.engine.connect() as conn:
        last = int(conn.execute(sa.select(sa.func.max(sync_audit.c.run_id))).scalar() or 0)
        last_run = int(conn.execute(sa.text("SELECT max(id) FROM sync_run")).scalar() or 0)
    adapter = BuiltinCrmAdapter(w.crm)
    out = SyncService(w.engine, CONFIG, clock=w.clock, adapter=adapter).run()
    assert writes(w.engine, max(last, last_run)) == []
    assert (adapter.calls["write"], out["errors"]) == (0, [])
