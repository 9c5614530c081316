"""Scores over the store: the current scoring model, the score ledger, explain and rescore.

A score is derived from three sources (see ``renkei.core.scoring``): activities scored by the
model, page views (plus page actions), and ``score_adjustment`` rows. ``explain`` lists every
contribution; ``rescore_all`` rebuilds every stored score with one set-based statement per source
(the points are a SQL ``CASE`` compiled from the model), so a model change is retroactive at 1M
prospects without per-row Python.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from renkei.clock import Clock, SystemClock, ensure_utc
from renkei.core.activities import type_label
from renkei.core.grading import DEFAULT_CRITERIA, DEFAULT_PROFILE_NAME, Criterion, grade
from renkei.core.scoring import Contribution, ScoreModel
from renkei.errors import InputError, NotFoundError
from renkei.store import tables as t
from renkei.store import tables_activity as ta

_ASSET_COLUMNS = (
    "formId",
    "formHandlerId",
    "landingPageId",
    "fileId",
    "customRedirectId",
    "visitId",
    "emailId",
)


def current_model(conn: Connection) -> ScoreModel:
    row = conn.execute(
        sa.select(ta.score_model.c.config).where(ta.score_model.c.isCurrent.is_(True)).limit(1)
    ).scalar_one_or_none()
    return ScoreModel() if row is None else ScoreModel.from_dict(row)


# ---------------------------------------------------------------------------------------------
# The model compiled to SQL


def _decayed(
    points: sa.ColumnElement[Any], created: sa.ColumnElement[Any], model: ScoreModel, now: dt.datetime
) -> sa.ColumnElement[Any]:
    if not model.decay:
        return points
    whens = []
    # Oldest step first: a contribution older than several steps takes the oldest one's percent.
    for step in sorted(model.decay, key=lambda s: -s.after_days):
        cutoff = now - dt.timedelta(days=step.after_days)
        # Integer division on both backends truncates toward zero, like Python's int(x / 100).
        whens.append((created < cutoff, (points * step.percent).op("/")(100)))
    return sa.case(*whens, else_=points)


def activity_points_sql(model: ScoreModel, va: sa.Table | Any, now: dt.datetime) -> sa.ColumnElement[Any]:
    whens: list[tuple[sa.ColumnElement[bool], int]] = []
    for rule in model.asset_rules:
        whens.append((sa.and_(va.c.type == rule.type, va.c[rule.column] == rule.asset_id), rule.points))
    for key, points in model.activity_points.items():
        if "/" in key:
            code, _, name = key.partition("/")
            whens.append((sa.and_(va.c.type == int(code), va.c.typeName == name), points))
    for key, points in model.activity_points.items():
        if "/" not in key:
            whens.append((va.c.type == int(key), points))
    expr: sa.ColumnElement[Any] = sa.case(*whens, else_=0) if whens else sa.literal(0)
    return _decayed(expr, va.c.createdAt, model, now)


def page_view_points_sql(model: ScoreModel, pv: sa.Table | Any, now: dt.datetime) -> sa.ColumnElement[Any]:
    expr: sa.ColumnElement[Any] = sa.literal(model.page_view_points, sa.Integer)
    for action in model.page_actions:
        cond = (
            pv.c.url == action.url
            if action.match.value == "exact"
            else pv.c.url.startswith(action.url, autoescape=True)
        )
        expr = expr + sa.case((cond, action.points), else_=0)
    return _decayed(expr, pv.c.createdAt, model, now)


def _sources(model: ScoreModel, now: dt.datetime) -> list[sa.Select[Any]]:
    """One ``(pid, pts)`` select per source of points: activities, page views, the ledger."""
    va, pv, adj = t.visitor_activity, t.visitor_page_view, ta.score_adjustment
    return [
        sa.select(va.c.prospectId.label("pid"), activity_points_sql(model, va, now).label("pts")).where(
            va.c.prospectId.is_not(None)
        ),
        sa.select(pv.c.prospectId.label("pid"), page_view_points_sql(model, pv, now).label("pts")).where(
            pv.c.prospectId.is_not(None)
        ),
        sa.select(
            adj.c.prospectId.label("pid"), _decayed(adj.c.points, adj.c.createdAt, model, now).label("pts")
        ).where(sa.true()),
    ]


def _contributions(model: ScoreModel, now: dt.datetime) -> sa.Subquery:
    return sa.union_all(*_sources(model, now)).subquery("contribution")


def derived_score(conn: Connection, prospect_id: int, model: ScoreModel, now: dt.datetime) -> int:
    c = _contributions(model, now)
    total = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(c.c.pts), 0)).where(c.c.pid == prospect_id))
    return int(total.scalar_one())


def recompute(
    conn: Connection, prospect_ids: list[int], now: dt.datetime, model: ScoreModel | None = None
) -> None:
    """Set the stored score of these prospects to their derived score (after moving history)."""
    model = model or current_model(conn)
    p = t.prospect
    for pid in prospect_ids:
        score = derived_score(conn, pid, model, now)
        conn.execute(
            p.update()
            .where(p.c.id == pid, p.c.score.is_distinct_from(score))
            .values(score=score, updatedAt=now)
        )


def rescore_all(conn: Connection, model: ScoreModel, now: dt.datetime) -> int:
    """Every prospect's score rebuilt from its contributions; returns how many changed."""
    p = t.prospect
    md = sa.MetaData()
    tmp = sa.Table(
        "tmp_rescore",
        md,
        sa.Column("pid", sa.Integer(), primary_key=True),
        sa.Column("total", sa.BigInteger(), nullable=False),
        prefixes=["TEMPORARY"],
    )
    tmp.drop(conn, checkfirst=True)
    tmp.create(conn)
    # Each source summed on its own (smaller sorts than one GROUP BY over their union), the
    # later ones added into the earlier sums.
    insert = sqlite_insert if conn.dialect.name == "sqlite" else postgresql_insert
    for source in _sources(model, now):
        sub = source.subquery()
        sums = sa.select(sub.c.pid, sa.func.sum(sub.c.pts)).where(sa.true()).group_by(sub.c.pid)
        upsert = insert(tmp).from_select(["pid", "total"], sums)
        conn.execute(
            upsert.on_conflict_do_update(
                index_elements=[tmp.c.pid], set_={"total": tmp.c.total + upsert.excluded.total}
            )
        )
    # Prospects with no contribution at all go back to 0.
    cleared = conn.execute(
        p.update()
        .where(p.c.score != 0, ~sa.exists().where(tmp.c.pid == p.c.id))
        .values(score=0, updatedAt=now)
    ).rowcount
    changed = conn.execute(
        p.update()
        .where(tmp.c.pid == p.c.id, p.c.score.is_distinct_from(tmp.c.total))
        .values(score=tmp.c.total, updatedAt=now)
    ).rowcount
    tmp.drop(conn)
    return int(cleared) + int(changed)


# ---------------------------------------------------------------------------------------------
# The service


class ScoringService:
    def __init__(self, engine: Engine, *, clock: Clock | None = None, actor: str | None = None) -> None:
        self.engine = engine
        self.clock = clock or SystemClock()
        self.actor = actor

    def model(self) -> ScoreModel:
        with self.engine.connect() as conn:
            return current_model(conn)

    def set_model(self, model: ScoreModel, *, rescore: bool = True) -> dict[str, Any]:
        """Make ``model`` current (earlier versions are kept) and rescore everyone (AE's
        baseline edits are retroactive)."""
        now = self.clock.now()
        with self.engine.begin() as conn:
            conn.execute(ta.score_model.update().values(isCurrent=False))
            version = conn.execute(
                ta.score_model.insert().values(
                    config=model.to_dict(), isCurrent=True, createdAt=now, createdBy=self.actor
                )
            ).inserted_primary_key
            changed = rescore_all(conn, model, now) if rescore else 0
        assert version is not None
        return {"version": int(version[0]), "rescored": changed}

    def rescore_all(self) -> int:
        with self.engine.begin() as conn:
            return rescore_all(conn, current_model(conn), self.clock.now())

    def adjust(
        self,
        prospect_id: int,
        points: int,
        *,
        reason: str,
        source: str = "manual",
        source_id: int | None = None,
    ) -> int:
        with self.engine.begin() as conn:
            return adjust_score(
                conn,
                prospect_id,
                points,
                reason=reason,
                source=source,
                source_id=source_id,
                now=self.clock.now(),
            )

    def explain(self, prospect_id: int) -> dict[str, Any]:
        """Every contribution to the prospect's score; they sum to ``score``. A stored score
        that differs (written around the ledger) shows as one ``unexplained`` line."""
        now = self.clock.now()
        with self.engine.connect() as conn:
            stored = conn.execute(sa.select(t.prospect.c.score).where(t.prospect.c.id == prospect_id)).first()
            if stored is None:
                raise NotFoundError(f"prospect {prospect_id} not found")
            model = current_model(conn)
            lines = _explain_lines(conn, prospect_id, model, now)
        total = sum(line.points for line in lines)
        score = int(stored[0] or 0)
        if score != total:
            lines.append(
                Contribution("unexplained", None, None, "score written outside the ledger", score - total)
            )
        return {
            "prospectId": prospect_id,
            "score": score,
            "contributions": [line.to_dict() for line in lines],
        }


def adjust_score(
    conn: Connection,
    prospect_id: int,
    points: int,
    *,
    reason: str,
    source: str,
    source_id: int | None,
    now: dt.datetime,
) -> int:
    """A ledger entry and the stored score moved by ``points``; returns the new score."""
    p = t.prospect
    found = conn.execute(sa.select(p.c.score).where(p.c.id == prospect_id)).first()
    if found is None:
        raise NotFoundError(f"prospect {prospect_id} not found")
    if not reason.strip():
        raise InputError("a score adjustment needs a reason", code="REQUIRED_FIELD_MISSING")
    conn.execute(
        ta.score_adjustment.insert().values(
            prospectId=prospect_id,
            points=points,
            source=source,
            sourceId=source_id,
            reason=reason[:255],
            createdAt=now,
        )
    )
    new = int(found[0] or 0) + points
    conn.execute(p.update().where(p.c.id == prospect_id).values(score=new, updatedAt=now))
    return new


def _explain_lines(conn: Connection, pid: int, model: ScoreModel, now: dt.datetime) -> list[Contribution]:
    va, pv, adj = t.visitor_activity, t.visitor_page_view, ta.score_adjustment
    lines: list[Contribution] = []
    rows = conn.execute(
        sa.select(va).where(va.c.prospectId == pid).order_by(va.c.createdAt, va.c.id)
    ).mappings()
    for r in rows:
        assets = {col: r[col] for col in _ASSET_COLUMNS}
        when = ensure_utc(r["createdAt"])
        points = model.decayed(model.activity_points_for(r["type"], r["typeName"], assets), when, now)
        if points:
            label = f"{type_label(r['type'])} ({r['typeName']})" if r["typeName"] else type_label(r["type"])
            detail = f": {r['details']}" if r["details"] else ""
            lines.append(Contribution("activity", r["id"], when, label + detail, points))
    for r in conn.execute(
        sa.select(pv).where(pv.c.prospectId == pid).order_by(pv.c.createdAt, pv.c.id)
    ).mappings():
        when = ensure_utc(r["createdAt"])
        points = model.decayed(model.page_view_points_for(r["url"]), when, now)
        if points:
            lines.append(Contribution("page_view", r["id"], when, f"Page view: {r['url']}", points))
    for r in conn.execute(
        sa.select(adj).where(adj.c.prospectId == pid).order_by(adj.c.createdAt, adj.c.id)
    ).mappings():
        when = ensure_utc(r["createdAt"])
        points = model.decayed(r["points"], when, now)
        lines.append(Contribution("adjustment", r["id"], when, f"{r['source']}: {r['reason']}", points))
    lines.sort(key=lambda line: (line.when or now, line.kind, line.ref or 0))
    return lines


# ---------------------------------------------------------------------------------------------
# Grading


def _profile_criteria(data: Any) -> tuple[Criterion, ...]:
    return tuple(Criterion.from_dict(c) for c in data or ())


def default_profile(conn: Connection, now: dt.datetime) -> dict[str, Any]:
    """The undeletable default profile, created with AE's default criteria on first use."""
    gp = ta.grading_profile
    row = conn.execute(sa.select(gp).where(gp.c.isDefault.is_(True))).mappings().first()
    if row is None:
        conn.execute(
            gp.insert().values(
                name=DEFAULT_PROFILE_NAME,
                isDefault=True,
                criteria=[c.to_dict() for c in DEFAULT_CRITERIA],
                createdAt=now,
                updatedAt=now,
            )
        )
        row = conn.execute(sa.select(gp).where(gp.c.isDefault.is_(True))).mappings().one()
    return dict(row)


def profile_for(conn: Connection, profile_id: int | None, now: dt.datetime) -> dict[str, Any]:
    if profile_id is not None:
        gp = ta.grading_profile
        row = conn.execute(sa.select(gp).where(gp.c.id == profile_id)).mappings().first()
        if row is not None:
            return dict(row)
    return default_profile(conn, now)


def regrade(conn: Connection, prospect_ids: Sequence[int], now: dt.datetime) -> None:
    """Recompute and store the grade of these prospects from their profiles."""
    p = t.prospect
    profiles: dict[int | None, tuple[Criterion, ...]] = {}
    rows = conn.execute(sa.select(p).where(p.c.id.in_(list(prospect_ids)))).mappings().all()
    for row in rows:
        key = row["profileId"]
        if key not in profiles:
            profiles[key] = _profile_criteria(profile_for(conn, key, now)["criteria"])
        result = grade(profiles[key], dict(row))
        if result.grade != row["grade"]:
            conn.execute(p.update().where(p.c.id == row["id"]).values(grade=result.grade, updatedAt=now))


class GradingService:
    def __init__(self, engine: Engine, *, clock: Clock | None = None) -> None:
        self.engine = engine
        self.clock = clock or SystemClock()

    def profiles(self) -> list[dict[str, Any]]:
        gp = ta.grading_profile
        with self.engine.begin() as conn:
            default_profile(conn, self.clock.now())
            return [dict(r) for r in conn.execute(sa.select(gp).order_by(gp.c.id)).mappings()]

    def save_profile(self, name: str, criteria: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Create or replace a profile's criteria (validated) and regrade its prospects."""
        parsed = _profile_criteria(criteria)
        gp = ta.grading_profile
        now = self.clock.now()
        with self.engine.begin() as conn:
            default_profile(conn, now)
            values = {"criteria": [c.to_dict() for c in parsed], "updatedAt": now}
            existing = conn.execute(sa.select(gp.c.id, gp.c.isDefault).where(gp.c.name == name)).first()
            if existing is None:
                conn.execute(gp.insert().values(name=name, isDefault=False, createdAt=now, **values))
            else:
                conn.execute(gp.update().where(gp.c.id == existing.id).values(values))
            row = conn.execute(sa.select(gp).where(gp.c.name == name)).mappings().one()
            p = t.prospect
            who = p.c.profileId == row["id"]
            if row["isDefault"]:
                who = sa.or_(who, p.c.profileId.is_(None))
            ids = list(conn.execute(sa.select(p.c.id).where(who, p.c.isDeleted.is_(False))).scalars())
            for start in range(0, len(ids), 500):
                regrade(conn, ids[start : start + 500], now)
            return dict(row)

    def regrade_all(self) -> int:
        """Regrade every live prospect (a profile edit does it for its own prospects; this pass
        catches field edits made elsewhere). Returns how many grades changed."""
        p = t.prospect
        now = self.clock.now()
        with self.engine.connect() as conn:
            before = {
                r.id: r.grade
                for r in conn.execute(sa.select(p.c.id, p.c.grade).where(p.c.isDeleted.is_(False)))
            }
        ids = sorted(before)
        for start in range(0, len(ids), 500):
            with self.engine.begin() as conn:
                regrade(conn, ids[start : start + 500], now)
        with self.engine.connect() as conn:
            after = {
                r.id: r.grade
                for r in conn.execute(sa.select(p.c.id, p.c.grade).where(p.c.isDeleted.is_(False)))
            }
        return sum(1 for pid in ids if before[pid] != after.get(pid))

    def regrade(self, prospect_id: int) -> str | None:
        with self.engine.begin() as conn:
            regrade(conn, [prospect_id], self.clock.now())
            return conn.execute(
                sa.select(t.prospect.c.grade).where(t.prospect.c.id == prospect_id)
            ).scalar_one_or_none()

    def explain(self, prospect_id: int) -> dict[str, Any]:
        """The prospect's profile, each criterion's state and thirds, and the resulting grade."""
        p = t.prospect
        now = self.clock.now()
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(p).where(p.c.id == prospect_id)).mappings().first()
            if row is None:
                raise NotFoundError(f"prospect {prospect_id} not found")
            profile = profile_for(conn, row["profileId"], now)
        result = grade(_profile_criteria(profile["criteria"]), dict(row))
        return {
            "prospectId": prospect_id,
            "profile": {"id": profile["id"], "name": profile["name"]},
            "storedGrade": row["grade"],
            **result.to_dict(),
        }
