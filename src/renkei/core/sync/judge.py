"""The conflict judge: small pure functions deciding, field by field, which side's value wins.

Inputs are what each side holds now and what each side held after the last sync (``last_crm``,
``last_ma``). From those the judge knows *which side changed the field* since the last sync — a
field-level fact — and falls back to record-level change times only when both sides changed it
(or when there was no earlier sync). Every decision names its rule and its evidence.

Blank handling (AE's default; ``sync_blanks`` turns it off per field):

| winning value | losing value | sync_blanks off          | sync_blanks on          |
|---------------|--------------|--------------------------|-------------------------|
| non-blank     | anything     | written                  | written                 |
| blank         | non-blank    | not written (kept)       | written (cleared)       |
| blank         | blank        | nothing to do            | nothing to do           |
"""

from __future__ import annotations

import datetime as dt
import enum
import unicodedata
from dataclasses import dataclass
from typing import Any


class Side(enum.StrEnum):
    CRM = "crm"
    MA = "ma"

    @property
    def other(self) -> Side:
        return Side.MA if self is Side.CRM else Side.CRM


class Rule(enum.StrEnum):
    CRM_WINS = "crm_wins"
    MA_WINS = "ma_wins"
    MOST_RECENT = "most_recent"
    CRM_WINS_UNLESS_BLANK = "crm_wins_unless_blank"
    MA_WINS_UNLESS_BLANK = "ma_wins_unless_blank"
    CRM_TO_MA = "crm_to_ma"
    MA_TO_CRM = "ma_to_crm"
    NONE = "none"


class Evidence(enum.StrEnum):
    RULE = "rule"  # the rule names the winner whatever changed
    ONLY_ONE_SIDE_CHANGED = "only_one_side_changed"  # field-level: compared with the last agreed value
    RECORD_TIME = "record_time"  # both changed (or never synced): the record that changed last wins
    BLANK_FALLBACK = "blank_fallback"  # *_unless_blank: the winner was blank, the other side's value is used


@dataclass(frozen=True, slots=True)
class Observed:
    """One side's value of a field and when its record last changed (None: no change that counts as
    evidence — the planner passes None for a side not edited since the last sync, so the connector's
    own write echoing back never makes its side the newer one)."""

    value: Any
    record_changed_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """Write ``value`` to side ``to`` (the other side won)."""

    to: Side
    value: Any
    rule: Rule
    evidence: Evidence
    reason: str


def is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def normalized(value: Any) -> Any:
    """Values as compared across the sides: NFKC strings trimmed, blanks as None, numbers as float."""
    if is_blank(value):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        return unicodedata.normalize("NFKC", value).strip()
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).replace(microsecond=0)
    return value


def same(a: Any, b: Any) -> bool:
    return bool(normalized(a) == normalized(b))


def jsonable(value: Any) -> Any:
    """A value as agreed values and the audit keep it (JSON): a date-time as its UTC ISO text, a date as
    its ISO text, anything else as it is."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def same_value(value: Any, agreed: Any) -> bool:
    """Whether two values are the same however each is spelled: a side's value as the side holds it
    and a value agreed at the last sync (agreed values are JSON: a date-time is its ISO text) or the
    other side's. Compared only as they are, a date-time the CRM returns never matched its agreed text,
    so a date field always counted as changed on that side — and under ``most_recent`` a later edit
    of another field of the record reverted the other side's edit of it."""
    if same(value, agreed):
        return True
    return (isinstance(value, dt.date) or isinstance(agreed, dt.date)) and same(
        jsonable(value), jsonable(agreed)
    )


#: Types whose equality is plain equality (``plainly_same``; the planner's judging loop inlines it).
PLAIN = (str, int, bool)


def plainly_same(a: Any, b: Any) -> bool:
    """A cheap test that implies ``same(a, b)`` (both None, or equal values of one plain type): lets
    a cycle skip the judge for the many fields that hold the same value on both sides."""
    return (a is None and b is None) or (type(a) is type(b) and type(a) in PLAIN and a == b)


def _write(winner: Side, crm: Observed, ma: Observed, rule: Rule, evidence: Evidence, reason: str,
           sync_blanks: bool) -> Decision | None:  # fmt: skip
    value = crm.value if winner is Side.CRM else ma.value
    if is_blank(value) and not sync_blanks:
        return None  # a blank never overwrites a value unless the field syncs blanks
    return Decision(winner.other, value, rule, evidence, reason)


def decide(rule: Rule, crm: Observed, ma: Observed, last_crm: Any = None, last_ma: Any = None, *,
           synced_before: bool = False, sync_blanks: bool = False) -> Decision | None:  # fmt: skip
    """What to write for one field, or None when nothing should be written."""
    if rule is Rule.NONE or same_value(crm.value, ma.value):
        return None
    crm_changed = not synced_before or not same_value(crm.value, last_crm)
    ma_changed = not synced_before or not same_value(ma.value, last_ma)
    if rule is Rule.CRM_WINS:
        return _write(Side.CRM, crm, ma, rule, Evidence.RULE, "the CRM's value wins", sync_blanks)
    if rule is Rule.MA_WINS:
        return _write(Side.MA, crm, ma, rule, Evidence.RULE, "marketing's value wins", sync_blanks)
    if rule in (Rule.CRM_WINS_UNLESS_BLANK, Rule.MA_WINS_UNLESS_BLANK):
        winner = Side.CRM if rule is Rule.CRM_WINS_UNLESS_BLANK else Side.MA
        winning = crm if winner is Side.CRM else ma
        if is_blank(winning.value):
            return _write(winner.other, crm, ma, rule, Evidence.BLANK_FALLBACK,
                          f"the {winner.value} value is blank, so the other side's value is used", sync_blanks)  # fmt: skip
        return _write(winner, crm, ma, rule, Evidence.RULE, f"the {winner.value} value wins", sync_blanks)
    if rule in (Rule.CRM_TO_MA, Rule.MA_TO_CRM):
        # (the side written from, its value, the other side's value and agreed value, whether the source moved)
        source, value, target, last_target, moved = (
            (Side.CRM, crm.value, ma.value, last_ma, crm_changed)
            if rule is Rule.CRM_TO_MA
            else (Side.MA, ma.value, crm.value, last_crm, ma_changed)
        )
        way = f"one way {'CRM → marketing' if source is Side.CRM else 'marketing → CRM'}"
        if synced_before and not moved:
            if is_blank(last_target) and is_blank(target) and not is_blank(value):
                # a value the other side has never had: a prospect created from a CRM record agrees its
                # marketing fields (score, created date …) beside the record's empty ones unwritten
                return _write(source, crm, ma, rule, Evidence.RULE, f"{way}: the other side has been empty",
                              sync_blanks)  # fmt: skip
            return None  # one way: an edit on the other side stays until the source value changes
        return _write(source, crm, ma, rule, Evidence.RULE, way, sync_blanks)
    # most recent
    if synced_before and crm_changed != ma_changed:
        winner = Side.CRM if crm_changed else Side.MA
        return _write(winner, crm, ma, rule, Evidence.ONLY_ONE_SIDE_CHANGED,
                      f"only the {winner.value} side changed this field since the last sync", sync_blanks)  # fmt: skip
    c, m = crm.record_changed_at, ma.record_changed_at
    if synced_before and not crm_changed and c is None and m is None:
        return None  # left apart at the last sync and neither record edited since: no evidence either way
    winner = Side.CRM if (m is None or (c is not None and c >= m)) else Side.MA
    if not synced_before:
        why = "first sync of this field"
    elif crm_changed:
        why = "both sides changed this field"
    else:  # a blank that lost at the last sync left the sides apart
        why = "the sides were left different at the last sync"
    return _write(winner, crm, ma, rule, Evidence.RECORD_TIME,
                  f"{why}; the {winner.value} record changed last", sync_blanks)  # fmt: skip
