"""Random marketing worlds and random rules for the segmentation properties."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from hypothesis import strategies as st
from sqlalchemy.engine import Connection, Engine

from renkei.core.rules import (
    ActivityPredicate,
    AssetKind,
    AssetRef,
    Condition,
    FieldPredicate,
    Group,
    ListPredicate,
    Match,
    Node,
    Op,
    OpportunityPredicate,
    TagPredicate,
    Unit,
    Window,
)
from renkei.marketing.schema import GRADES
from renkei.marketing.service import ProspectService
from renkei.store import tables as t
from renkei.store.dynamic import load_prospect_schema
from renkei.store.tables_segments import segment_change

NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)
TEXTS = ["Acme", "ACME", "acme corp", "", "株式会社アクメ", "Émile", "émile"]
TAGS = ["VIP", "vip", "展示会"]
STAGES = ["Closed Lost", "closed lost", "Closed Won", "Proposal/Price Quote"]
ACTIVITY_TYPES = [1, 2, 4, 6, 11, 20]


def setup_schema(engine: Engine) -> list[int]:
    """Custom fields used by the random worlds, and two lists; returns the list ids."""
    service = ProspectService(engine)
    service.add_field("Renewal_Date", "date")
    service.add_field("Seats", "number", precision=18, scale=2)
    ids = []
    with engine.begin() as conn:
        for name in ("static one", "static two"):
            ids.append(
                conn.execute(
                    t.list_.insert()
                    .values(
                        name=name,
                        isPublic=False,
                        isDynamic=False,
                        isCrmVisible=False,
                        createdAt=NOW,
                        updatedAt=NOW,
                    )
                    .returning(t.list_.c.id)
                ).scalar_one()
            )
    return ids


def _day(rng: random.Random) -> dt.date:
    return (NOW + dt.timedelta(days=rng.randint(-400, 30))).date()


def _instant(rng: random.Random) -> dt.datetime:
    return NOW + dt.timedelta(days=rng.randint(-400, 30), seconds=rng.randint(-43200, 43200))


def _maybe(rng: random.Random, value: Any, p: float = 0.25) -> Any:
    return None if rng.random() < p else value


@dataclass
class World:
    prospects: list[dict[str, Any]] = field(default_factory=list)
    accounts: list[dict[str, Any]] = field(default_factory=list)
    tags: list[tuple[int, str]] = field(default_factory=list)
    memberships: list[tuple[int, int]] = field(default_factory=list)  # (list index, prospect)
    activities: list[dict[str, Any]] = field(default_factory=list)
    opportunities: list[dict[str, Any]] = field(default_factory=list)
    links: list[tuple[int, int]] = field(default_factory=list)  # (opportunity, prospect)


def prospect_values(rng: random.Random) -> dict[str, Any]:
    return {
        "score": _maybe(rng, rng.randint(-10, 120)),
        "grade": _maybe(rng, rng.choice([*GRADES, ""])),
        "company": _maybe(rng, rng.choice(TEXTS)),
        "country": _maybe(rng, rng.choice(["JP", "jp", "US"])),
        "optedOut": _maybe(rng, rng.random() < 0.5),
        "lastActivityAt": _maybe(rng, _instant(rng)),
        "Renewal_Date__c": _maybe(rng, _day(rng)),
        "Seats__c": _maybe(rng, rng.choice([0.0, 1.5, 10.0, -2.0])),
        "isDeleted": rng.random() < 0.2,
        "prospectAccountId": _maybe(rng, rng.randint(1, 3)),
    }


def _custom(rng: random.Random, choices: dict[str, Any]) -> dict[str, Any]:
    return {k: make() for k, make in choices.items() if rng.random() < 0.6}


def account_values(rng: random.Random) -> dict[str, Any]:
    return {
        "industry": _maybe(rng, rng.choice(["Manufacturing", "manufacturing", "Retail"])),
        "employees": _maybe(rng, rng.choice([10, 500, 5000])),
        "isDeleted": rng.random() < 0.2,
        "customFields": _custom(
            rng,
            {
                "Tier__c": lambda: rng.choice(["Gold", "gold", "Silver"]),
                "Contract_Date__c": lambda: _day(rng).isoformat(),
            },
        ),
    }


def activity_values(rng: random.Random, n_prospects: int) -> dict[str, Any]:
    return {
        "prospectId": rng.randint(1, n_prospects),
        "type": rng.choice(ACTIVITY_TYPES),
        "formId": _maybe(rng, rng.choice([1, 2]), 0.5),
        "campaignId": _maybe(rng, rng.choice([1, 2]), 0.5),
        "createdAt": _instant(rng),
    }


def opportunity_values(rng: random.Random) -> dict[str, Any]:
    return {
        "stageName": _maybe(rng, rng.choice(STAGES)),
        "isWon": rng.random() < 0.5,
        "isClosed": rng.random() < 0.5,
        "amount": _maybe(rng, rng.choice([0.0, 1000.0, 250000.0])),
        "closeDate": _maybe(rng, _day(rng)),
        "isDeleted": rng.random() < 0.2,
        "customFields": _custom(
            rng,
            {
                "Quote_Submitted_Date__c": lambda: _day(rng).isoformat(),
                "Acceptance_Date__c": lambda: _maybe(rng, _day(rng).isoformat()),
            },
        ),
    }


def make_world(seed: int, max_prospects: int = 6) -> World:
    """A small random world (seeded: hypothesis draws the seed, failures print it)."""
    rng = random.Random(seed)
    n = rng.randint(1, max_prospects)
    w = World()
    w.prospects = [prospect_values(rng) for _ in range(n)]
    w.accounts = [account_values(rng) for _ in range(3)]
    w.tags = sorted({(rng.randint(1, n), rng.choice(TAGS)) for _ in range(rng.randint(0, 6))})
    w.memberships = sorted({(rng.randint(0, 1), rng.randint(1, n)) for _ in range(rng.randint(0, 6))})
    w.activities = [activity_values(rng, n) for _ in range(rng.randint(0, 12))]
    w.opportunities = [opportunity_values(rng) for _ in range(rng.randint(0, 4))]
    if w.opportunities:
        k = len(w.opportunities)
        w.links = sorted({(rng.randint(1, k), rng.randint(1, n)) for _ in range(rng.randint(0, 6))})
    return w


worlds = st.integers(min_value=0, max_value=2**32).map(make_world)


def clear(conn: Connection) -> None:
    for table in (
        t.list_membership,
        t.tag_object,
        t.tag,
        t.opportunity_prospect,
        t.opportunity,
        t.visitor_activity,
        t.prospect,
        t.prospect_account,
        segment_change,
    ):
        conn.execute(table.delete())


def load(engine: Engine, world: World, list_ids: list[int]) -> None:
    with engine.begin() as conn:
        clear(conn)
        p = load_prospect_schema(conn).table
        conn.execute(
            t.prospect_account.insert(),
            [
                {"id": i, "name": f"a{i}", "createdAt": NOW, "updatedAt": NOW - dt.timedelta(days=i), **a}
                for i, a in enumerate(world.accounts, 1)
            ],
        )
        conn.execute(
            p.insert(),
            [
                {
                    "id": i,
                    "email": f"p{i}@example.com",
                    "createdAt": NOW,
                    "updatedAt": NOW - dt.timedelta(days=i),
                    **v,
                }
                for i, v in enumerate(world.prospects, 1)
            ],
        )
        names = sorted({name for _, name in world.tags})
        tag_ids = {}
        for i, name in enumerate(names, start=1):
            conn.execute(t.tag.insert().values(id=i, name=name, createdAt=NOW))
            tag_ids[name] = i
        for pid, name in world.tags:
            conn.execute(
                t.tag_object.insert().values(tagId=tag_ids[name], objectType="prospect", objectId=pid)
            )
        for idx, pid in world.memberships:
            conn.execute(
                t.list_membership.insert().values(
                    listId=list_ids[idx], prospectId=pid, optedOut=False, createdAt=NOW, updatedAt=NOW
                )
            )
        if world.activities:
            conn.execute(
                t.visitor_activity.insert(),
                [{"id": i, "updatedAt": a["createdAt"], **a} for i, a in enumerate(world.activities, 1)],
            )
        if world.opportunities:
            conn.execute(
                t.opportunity.insert(),
                [
                    {"id": i, "name": f"o{i}", "createdAt": NOW, "updatedAt": NOW - dt.timedelta(days=i), **o}
                    for i, o in enumerate(world.opportunities, 1)
                ],
            )
        for oid, pid in world.links:
            conn.execute(
                t.opportunity_prospect.insert().values(opportunityId=oid, prospectId=pid, isPrimary=False)
            )
        if conn.dialect.name == "postgresql":  # rows above carry explicit ids: move the sequences on
            for table in (t.prospect, t.prospect_account, t.tag, t.visitor_activity, t.opportunity):
                conn.execute(
                    sa.text(
                        f"SELECT setval(pg_get_serial_sequence('\"{table.name}\"', 'id'), "
                        f'(SELECT coalesce(max(id), 0) + 1 FROM "{table.name}"), false)'
                    )
                )


# ---------------------------------------------------------------------------------------------
# rules

_windows = st.builds(Window, st.integers(min_value=1, max_value=14), st.sampled_from(list(Unit)))
_text = st.sampled_from(TEXTS)
_numbers = st.sampled_from([-5, 0, 10, 50, 100, 1.5])


def _text_condition(name: str, values: st.SearchStrategy[str]) -> st.SearchStrategy[Condition]:
    return st.one_of(
        st.builds(
            Condition, st.just(name), st.sampled_from([Op.EQ, Op.NE, Op.CONTAINS, Op.STARTS_WITH]), values
        ),
        st.builds(
            Condition, st.just(name), st.just(Op.IN), st.lists(values, min_size=1, max_size=3).map(tuple)
        ),
        st.builds(Condition, st.just(name), st.sampled_from([Op.EMPTY, Op.NOT_EMPTY])),
    )


def _ordered(name: str, values: st.SearchStrategy[Any]) -> st.SearchStrategy[Condition]:
    ops = [Op.EQ, Op.NE, Op.LT, Op.LE, Op.GT, Op.GE]
    return st.one_of(
        st.builds(Condition, st.just(name), st.sampled_from(ops), values),
        st.builds(
            Condition, st.just(name), st.just(Op.IN), st.lists(values, min_size=1, max_size=3).map(tuple)
        ),
        st.builds(Condition, st.just(name), st.sampled_from([Op.EMPTY, Op.NOT_EMPTY])),
    )


def _dated(name: str, values: st.SearchStrategy[str]) -> st.SearchStrategy[Condition]:
    return st.one_of(
        st.builds(Condition, st.just(name), st.sampled_from([Op.WITHIN, Op.NOT_WITHIN]), st.none(), _windows),
        st.builds(Condition, st.just(name), st.sampled_from([Op.LT, Op.GE, Op.EQ]), values),
        st.builds(Condition, st.just(name), st.sampled_from([Op.EMPTY, Op.NOT_EMPTY])),
    )


def _bool(name: str) -> st.SearchStrategy[Condition]:
    return st.builds(Condition, st.just(name), st.sampled_from([Op.EQ, Op.NE]), st.booleans())


_date_text = st.integers(min_value=-400, max_value=30).map(
    lambda d: (NOW + dt.timedelta(days=d)).date().isoformat()
)
_datetime_text = st.integers(min_value=-400 * 24, max_value=30 * 24).map(
    lambda h: (NOW + dt.timedelta(hours=h)).isoformat()
)

prospect_conditions = st.one_of(
    _text_condition("company", _text),
    _text_condition("country", st.sampled_from(["JP", "jp", "US"])),
    _ordered("score", _numbers),
    _ordered("Seats__c", _numbers),
    _ordered("grade", st.sampled_from(GRADES)),
    _bool("optedOut"),
    _dated("lastActivityAt", _datetime_text),
    _dated("Renewal_Date__c", _date_text),
)

account_conditions = st.one_of(
    _text_condition("account.industry", st.sampled_from(["Manufacturing", "retail"])),
    _ordered("account.employees", st.sampled_from([10, 100, 5000])),
    _text_condition("account.Tier__c", st.sampled_from(["gold", "Silver"])),
    _dated("account.Contract_Date__c", _date_text),
)

opportunity_conditions = st.one_of(
    _text_condition("stageName", st.sampled_from(STAGES)),
    _bool("isWon"),
    _bool("isClosed"),
    _ordered("amount", st.sampled_from([0, 1000, 100000])),
    _dated("closeDate", _date_text),
    _dated("Quote_Submitted_Date__c", _date_text),
    _dated("Acceptance_Date__c", _date_text),
)


@st.composite
def activity_predicates(draw: st.DrawFn) -> ActivityPredicate:
    has = draw(st.booleans())
    window = draw(st.none() | _windows)
    return ActivityPredicate(
        has=has,
        types=tuple(draw(st.lists(st.sampled_from(ACTIVITY_TYPES), max_size=2, unique=True))),
        asset=draw(st.none() | st.builds(AssetRef, st.just(AssetKind.FORM), st.sampled_from([1, 2]))),
        campaign_id=draw(st.none() | st.sampled_from([1, 2])),
        window=window,
        outside_window=window is not None and draw(st.booleans()),
        at_least=draw(st.integers(min_value=1, max_value=3)) if has else 1,
    )


def predicates(list_ids: list[int]) -> st.SearchStrategy[Node]:
    return st.one_of(
        prospect_conditions.map(FieldPredicate),
        account_conditions.map(FieldPredicate),
        st.builds(TagPredicate, st.sampled_from(TAGS), st.booleans()),
        st.builds(ListPredicate, st.sampled_from(list_ids), st.booleans()),
        activity_predicates(),
        st.builds(
            OpportunityPredicate,
            st.booleans(),
            st.lists(opportunity_conditions, max_size=3).map(tuple),
        ),
    )


def rules(list_ids: list[int]) -> st.SearchStrategy[Node]:
    return st.recursive(
        predicates(list_ids),
        lambda children: st.builds(
            Group, st.sampled_from(list(Match)), st.lists(children, min_size=1, max_size=4).map(tuple)
        ),
        max_leaves=8,
    ).map(lambda node: node if isinstance(node, Group) else Group(Match.ALL, (node,)))


def random_change(engine: Engine, rng: random.Random, now: dt.datetime, list_ids: list[int]) -> str:
    """One random write, made the way the other features make it (timestamps bumped)."""
    with engine.begin() as conn:
        p = load_prospect_schema(conn).table
        pids = list(conn.execute(sa.select(p.c.id)).scalars())
        pid = rng.choice(pids)
        kind = rng.choice(["prospect", "activity", "tag", "list", "link", "opportunity", "account"])
        if kind == "prospect":
            values = prospect_values(rng)
            keep = rng.sample(sorted(values), k=rng.randint(1, 3))
            conn.execute(
                p.update().where(p.c.id == pid).values(updatedAt=now, **{k: values[k] for k in keep})
            )
        elif kind == "activity":
            row = activity_values(rng, 1)
            row.update(prospectId=pid, createdAt=now - dt.timedelta(days=rng.randint(0, 3)))
            conn.execute(t.visitor_activity.insert().values(updatedAt=now, **row))
        elif kind == "tag":
            name = rng.choice(TAGS)
            tag_id = conn.execute(sa.select(t.tag.c.id).where(t.tag.c.name == name)).scalar()
            if tag_id is None:
                tag_id = conn.execute(
                    t.tag.insert().values(name=name, createdAt=now).returning(t.tag.c.id)
                ).scalar_one()
            o = t.tag_object
            key = (o.c.tagId == tag_id, o.c.objectType == "prospect", o.c.objectId == pid)
            if conn.execute(sa.select(o.c.tagId).where(*key)).first():
                conn.execute(o.delete().where(*key))
            else:
                conn.execute(o.insert().values(tagId=tag_id, objectType="prospect", objectId=pid))
        elif kind == "list":
            m = t.list_membership
            key2 = (m.c.listId == rng.choice(list_ids), m.c.prospectId == pid)
            if conn.execute(sa.select(m.c.id).where(*key2)).first():
                conn.execute(m.delete().where(*key2))
            else:
                conn.execute(
                    m.insert().values(
                        listId=key2[0].right.value,
                        prospectId=pid,
                        optedOut=False,
                        createdAt=now,
                        updatedAt=now,
                    )
                )
        elif kind in ("link", "opportunity"):
            opp_ids = list(conn.execute(sa.select(t.opportunity.c.id)).scalars())
            if not opp_ids or rng.random() < 0.3:
                values = opportunity_values(rng)
                oid = conn.execute(
                    t.opportunity.insert()
                    .values(name="new", createdAt=now, updatedAt=now, **values)
                    .returning(t.opportunity.c.id)
                ).scalar_one()
            else:
                oid = rng.choice(opp_ids)
            if kind == "opportunity":
                values = opportunity_values(rng)
                keep = rng.sample(sorted(values), k=rng.randint(1, 3))
                conn.execute(
                    t.opportunity.update()
                    .where(t.opportunity.c.id == oid)
                    .values(updatedAt=now, **{k: values[k] for k in keep})
                )
            else:
                link = t.opportunity_prospect
                key3 = (link.c.opportunityId == oid, link.c.prospectId == pid)
                if conn.execute(sa.select(link.c.prospectId).where(*key3)).first():
                    conn.execute(link.delete().where(*key3))
                else:
                    conn.execute(link.insert().values(opportunityId=oid, prospectId=pid, isPrimary=False))
        else:
            values = account_values(rng)
            keep = rng.sample(sorted(values), k=rng.randint(1, 2))
            conn.execute(
                t.prospect_account.update()
                .where(t.prospect_account.c.id == rng.randint(1, 3))
                .values(updatedAt=now, **{k: values[k] for k in keep})
            )
        return kind
