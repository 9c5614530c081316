"""Load what a rule can see of some prospects, for ``explain`` and the plain-Python oracle."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from renkei.core.rules.evaluate import Facts
from renkei.store import tables as t
from renkei.store.dynamic import load_prospect_schema

_CHUNK = 500


def load_facts(conn: Connection, prospect_ids: Iterable[int]) -> dict[int, Facts]:
    """Facts per prospect id (ids that do not exist are left out)."""
    ids = sorted(set(prospect_ids))
    out: dict[int, Facts] = {}
    for i in range(0, len(ids), _CHUNK):
        out.update(_load_chunk(conn, ids[i : i + _CHUNK]))
    return out


def _load_chunk(conn: Connection, ids: list[int]) -> dict[int, Facts]:
    p = load_prospect_schema(conn).table
    prospects = {r["id"]: dict(r) for r in conn.execute(sa.select(p).where(p.c.id.in_(ids))).mappings()}
    account_ids = {r["prospectAccountId"] for r in prospects.values() if r.get("prospectAccountId")}
    a = t.prospect_account
    accounts = {
        r["id"]: dict(r) for r in conn.execute(sa.select(a).where(a.c.id.in_(account_ids))).mappings()
    }
    tags: dict[int, set[str]] = defaultdict(set)
    o, tag = t.tag_object, t.tag
    query = (
        sa.select(o.c.objectId, tag.c.name)
        .select_from(o.join(tag, tag.c.id == o.c.tagId))
        .where(o.c.objectType == "prospect", o.c.objectId.in_(ids))
    )
    for pid, name in conn.execute(query):
        tags[pid].add(name)
    lists: dict[int, set[int]] = defaultdict(set)
    m = t.list_membership
    for pid, list_id in conn.execute(sa.select(m.c.prospectId, m.c.listId).where(m.c.prospectId.in_(ids))):
        lists[pid].add(list_id)
    activities: dict[int, list[dict[str, Any]]] = defaultdict(list)
    va = t.visitor_activity
    for row in conn.execute(sa.select(va).where(va.c.prospectId.in_(ids)).order_by(va.c.id)).mappings():
        activities[row["prospectId"]].append(dict(row))
    opportunities: dict[int, list[dict[str, Any]]] = defaultdict(list)
    opp, link = t.opportunity, t.opportunity_prospect
    query2 = (
        sa.select(link.c.prospectId, opp)
        .select_from(link.join(opp, opp.c.id == link.c.opportunityId))
        .where(link.c.prospectId.in_(ids))
        .order_by(opp.c.id)
    )
    for row in conn.execute(query2).mappings():
        opportunities[row["prospectId"]].append(dict(row))
    return {
        pid: Facts(
            prospect=row,
            account=accounts.get(row.get("prospectAccountId") or 0),
            tags=frozenset(tags[pid]),
            lists=frozenset(lists[pid]),
            activities=tuple(activities[pid]),
            opportunities=tuple(opportunities[pid]),
        )
        for pid, row in prospects.items()
    }
