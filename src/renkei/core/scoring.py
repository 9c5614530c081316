"""The scoring model (pure): how many points each activity, page view and visit is worth.

A prospect's score is *derived*: the sum of its activities' points under the current model, plus
its page views' and visits' points, plus the ledger of explicit adjustments (automation, completion
actions, manual). The stored ``prospect.score`` is that sum kept up to date incrementally, and
rebuilt for everyone by a set-based rescore when the model changes (AE's retroactive baseline).

Rules, most specific first: a per-asset rule (asset kind + id + type), then ``type/typeName``,
then ``type``. Page actions add points to page views whose URL matches. Decay (off by default)
scales contributions older than N days to a percentage of their points.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from renkei.core.activities import ASSET_COLUMN, ActivityType, AssetKind
from renkei.errors import ConfigError

T = ActivityType

#: AE's baseline (Settings › Automation › Scoring), keyed "type" or "type/typeName".
DEFAULT_ACTIVITY_POINTS: dict[str, int] = {
    f"{T.CLICK.value}": 3,
    f"{T.VIEW.value}/{AssetKind.FILE.value}": 3,
    f"{T.ERROR.value}": -5,
    f"{T.SUCCESS.value}": 50,
    f"{T.SESSION.value}": 3,
    f"{T.SEARCH.value}": 3,
    f"{T.NEW_OPPORTUNITY.value}": 50,
    f"{T.OPPORTUNITY_LOST.value}": -100,
    f"{T.CLICK_THIRD_PARTY.value}": 3,
    f"{T.VISIT.value}": 3,
    f"{T.CUSTOM_URL_CLICK.value}": 3,
    f"{T.OLARK_CHAT.value}": 10,
    f"{T.VIDEO_CONVERSION.value}": 50,
    f"{T.VIDEO_WATCHED.value}": 25,
}
DEFAULT_PAGE_VIEW_POINTS = 1


class UrlMatch(str, Enum):
    EXACT = "exact"
    PREFIX = "prefix"


@dataclass(frozen=True, slots=True)
class AssetRule:
    kind: AssetKind
    asset_id: int
    type: int
    points: int

    @property
    def column(self) -> str:
        return ASSET_COLUMN[self.kind]


@dataclass(frozen=True, slots=True)
class PageAction:
    """Points (on top of the page view's) for viewing a tracked URL."""

    url: str
    points: int
    match: UrlMatch = UrlMatch.EXACT

    def matches(self, url: str) -> bool:
        return url == self.url if self.match is UrlMatch.EXACT else url.startswith(self.url)


@dataclass(frozen=True, slots=True)
class DecayStep:
    after_days: int
    percent: int


@dataclass(frozen=True, slots=True)
class ScoreModel:
    activity_points: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_ACTIVITY_POINTS))
    asset_rules: tuple[AssetRule, ...] = ()
    page_actions: tuple[PageAction, ...] = ()
    page_view_points: int = DEFAULT_PAGE_VIEW_POINTS
    decay: tuple[DecayStep, ...] = ()

    # -- the rules, applied to one contribution --------------------------------------------

    def activity_points_for(self, type_: int, type_name: str | None, assets: Mapping[str, int | None]) -> int:
        for rule in self.asset_rules:
            if rule.type == type_ and assets.get(rule.column) == rule.asset_id:
                return rule.points
        if type_name is not None and f"{type_}/{type_name}" in self.activity_points:
            return self.activity_points[f"{type_}/{type_name}"]
        return self.activity_points.get(str(type_), 0)

    def page_view_points_for(self, url: str) -> int:
        return self.page_view_points + sum(a.points for a in self.page_actions if a.matches(url))

    def decay_percent(self, when: dt.datetime, now: dt.datetime) -> int:
        """The percentage of its points a contribution made at ``when`` still counts for."""
        percent = 100
        for step in sorted(self.decay, key=lambda s: s.after_days):
            if when < now - dt.timedelta(days=step.after_days):
                percent = step.percent
        return percent

    def decayed(self, points: int, when: dt.datetime, now: dt.datetime) -> int:
        """Points after decay, truncated toward zero (the SQL rescore does the same)."""
        percent = self.decay_percent(when, now)
        return points if percent == 100 else int(points * percent / 100)

    # -- configuration as data ---------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "activities": dict(self.activity_points),
            "assets": [
                {"kind": r.kind.value, "id": r.asset_id, "type": r.type, "points": r.points}
                for r in self.asset_rules
            ],
            "page_actions": [
                {"url": a.url, "points": a.points, "match": a.match.value} for a in self.page_actions
            ],
            "page_view": self.page_view_points,
            "decay": [{"after_days": d.after_days, "percent": d.percent} for d in self.decay],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoreModel:
        """A model from its data form; unknown keys and bad values raise ``ConfigError``.
        ``activities`` entries are merged over AE's baseline (give 0 to switch one off)."""
        unknown = set(data) - {"activities", "assets", "page_actions", "page_view", "decay"}
        if unknown:
            raise ConfigError(f"unknown scoring keys: {', '.join(sorted(unknown))}")
        try:
            points = dict(DEFAULT_ACTIVITY_POINTS)
            for key, value in dict(data.get("activities") or {}).items():
                points[_activity_key(str(key))] = int(value)
            assets = tuple(
                AssetRule(AssetKind(r["kind"]), int(r["id"]), int(r["type"]), int(r["points"]))
                for r in data.get("assets") or ()
            )
            for rule in assets:
                if rule.kind not in ASSET_COLUMN:
                    raise ConfigError(f"no per-asset scoring for {rule.kind.value}")
            actions = tuple(
                PageAction(str(a["url"]), int(a["points"]), UrlMatch(a.get("match", "exact")))
                for a in data.get("page_actions") or ()
            )
            decay = tuple(
                DecayStep(int(d["after_days"]), int(d["percent"])) for d in _decay_steps(data.get("decay"))
            )
            page_view = int(data.get("page_view", DEFAULT_PAGE_VIEW_POINTS))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"invalid scoring model: {exc!r}") from None
        for step in decay:
            if step.after_days < 0 or not 0 <= step.percent <= 100:
                raise ConfigError("decay steps need after_days >= 0 and 0 <= percent <= 100")
        return cls(points, assets, actions, page_view, decay)


def _decay_steps(value: Any) -> Sequence[Mapping[str, Any]]:
    if value is None:
        return ()
    if isinstance(value, Mapping):
        return list(value.get("steps") or ())
    return list(value)


def _activity_key(key: str) -> str:
    code, _, type_name = key.partition("/")
    if not code.strip().isdigit():
        raise ValueError(f"activity key {key!r} must be 'type' or 'type/typeName'")
    return f"{int(code)}/{type_name}" if type_name else str(int(code))


@dataclass(frozen=True, slots=True)
class Contribution:
    """One line of ``explain-score``: where points came from."""

    kind: str  # activity | page_view | adjustment | unexplained
    ref: int | None
    when: dt.datetime | None
    description: str
    points: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "id": self.ref,
            "at": self.when,
            "description": self.description,
            "points": self.points,
        }
