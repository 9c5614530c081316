from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from renkei.core.sync.judge import Evidence, Observed, Rule, Side, decide, plainly_same, same

T1 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
T2 = T1 + dt.timedelta(hours=1)


def _d(rule: Rule, crm: Any, ma: Any, last: tuple[Any, Any] | None = None, *, crm_t: dt.datetime = T1,
       ma_t: dt.datetime = T2, blanks: bool = False) -> tuple[str, Any, str] | None:  # fmt: skip
    d = decide(rule, Observed(crm, crm_t), Observed(ma, ma_t), *(last or (None, None)), synced_before=last is not None,
               sync_blanks=blanks)  # fmt: skip
    return None if d is None else (d.to.value, d.value, d.evidence.value)


@pytest.mark.parametrize(
    ("rule", "crm", "ma", "last", "expected"),
    [
        (Rule.CRM_WINS, "東京都", "東京", None, ("ma", "東京都", "rule")),
        (Rule.MA_WINS, "旧", "新", None, ("crm", "新", "rule")),
        (Rule.CRM_WINS, None, "kept", None, None),  # a blank never overwrites by default
        (Rule.CRM_WINS_UNLESS_BLANK, None, "form value", None, ("crm", "form value", "blank_fallback")),
        (Rule.MA_WINS_UNLESS_BLANK, "crm value", "", None, ("ma", "crm value", "blank_fallback")),
        (Rule.CRM_TO_MA, "new", "edited in MA", ("old", "old"), ("ma", "new", "rule")),
        (Rule.CRM_TO_MA, "old", "edited in MA", ("old", "old"), None),  # one way: the MA edit stays
        (Rule.MA_TO_CRM, "edited in CRM", "old", ("old", "old"), None),
        (Rule.NONE, "a", "b", None, None),
        # most recent: field-level evidence beats a newer record elsewhere (seed 001 failure mode 5)
        (
            Rule.MOST_RECENT,
            "edited in CRM",
            "old",
            ("old", "old"),
            ("ma", "edited in CRM", "only_one_side_changed"),
        ),
        (
            Rule.MOST_RECENT,
            "old",
            "edited in MA",
            ("old", "old"),
            ("crm", "edited in MA", "only_one_side_changed"),
        ),
        (Rule.MOST_RECENT, "crm edit", "ma edit", ("old", "old"), ("crm", "ma edit", "record_time")),
        (Rule.MOST_RECENT, "Ｓａｔｏ ", "Sato", None, None),  # NFKC + trim: equal values never conflict
    ],
)
def test_decision_table(rule: Rule, crm: Any, ma: Any, last: tuple[Any, Any] | None, expected: Any) -> None:
    assert _d(rule, crm, ma, last) == expected


def test_blanks_sync_when_asked() -> None:
    assert _d(Rule.CRM_WINS, None, "stale", blanks=True) == ("ma", None, "rule")


values = st.one_of(st.none(), st.text(max_size=5), st.integers(-5, 5))
rules = st.sampled_from(list(Rule))


@given(rules, values, values, st.none() | st.tuples(values, values), st.booleans())
def test_equal_values_never_conflict(rule: Rule, v: Any, _w: Any, last: Any, blanks: bool) -> None:
    assert _d(rule, v, v, last, blanks=blanks) is None


@given(values, values, st.none() | st.tuples(values, values), st.booleans())
def test_swapping_sides_swaps_the_winner(crm: Any, ma: Any, last: Any, blanks: bool) -> None:
    pairs = [(Rule.CRM_WINS, Rule.MA_WINS), (Rule.CRM_TO_MA, Rule.MA_TO_CRM),
             (Rule.CRM_WINS_UNLESS_BLANK, Rule.MA_WINS_UNLESS_BLANK), (Rule.MOST_RECENT, Rule.MOST_RECENT)]  # fmt: skip
    for rule, mirror in pairs:
        a = decide(rule, Observed(crm, T1), Observed(ma, T2), *(last or (None, None)), synced_before=last is not None,
                   sync_blanks=blanks)  # fmt: skip
        swapped_last = (last[1], last[0]) if last else (None, None)
        b = decide(mirror, Observed(ma, T2), Observed(crm, T1), *swapped_last, synced_before=last is not None,
                   sync_blanks=blanks)  # fmt: skip
        assert (a is None) == (b is None)
        if a is not None and b is not None:
            assert (a.to, a.value) == (b.to.other, b.value) or a.evidence is Evidence.RECORD_TIME


@given(rules, values, values, st.booleans())
def test_applying_a_decision_settles_the_field(rule: Rule, crm: Any, ma: Any, blanks: bool) -> None:
    """After writing the decision, the same inputs decide nothing (a second sync changes nothing)."""
    d = decide(rule, Observed(crm, T1), Observed(ma, T2), sync_blanks=blanks)
    if d is None:
        return
    crm2, ma2 = (d.value, ma) if d.to is Side.CRM else (crm, d.value)
    assert (
        decide(rule, Observed(crm2, T2), Observed(ma2, T2), crm2, ma2, synced_before=True, sync_blanks=blanks)
        is None
    )


plain = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True), st.text(max_size=3),
                  st.dates(), st.datetimes(timezones=st.just(dt.UTC)))  # fmt: skip


@given(plain, plain)
def test_plainly_same_implies_same(a: Any, b: Any) -> None:
    """The cycle's shortcut past the judge is only taken where the judge sees no difference."""
    if plainly_same(a, b):
        assert same(a, b)


M1 = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC)
M2 = dt.datetime(2026, 12, 10, 15, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("rule", "crm", "ma", "last", "expected"),
    [
        # agreed values are JSON (a date-time as its ISO text); the sides hold date-times or text
        (Rule.MOST_RECENT, M1, M2.isoformat(), (M1.isoformat(), M1.isoformat()),
         ("crm", M2.isoformat(), "only_one_side_changed")),  # the CRM's unchanged date is no change
        (Rule.MOST_RECENT, M2, M1.isoformat(), (M1.isoformat(), M1.isoformat()),
         ("ma", M2, "only_one_side_changed")),
        (Rule.MOST_RECENT, M1, M1.isoformat(), (None, None), None),  # one instant, two spellings: in step
        (Rule.CRM_TO_MA, M1, M2.isoformat(), (M1.isoformat(), M1.isoformat()), None),  # the MA edit stays
        (Rule.MA_TO_CRM, M1, M2, (M1.isoformat(), M1.isoformat()), ("crm", M2, "rule")),
        (Rule.MA_TO_CRM, M2, M1, (M1.isoformat(), M1.isoformat()), None),  # a CRM edit stays
        (Rule.CRM_TO_MA, dt.date(2026, 12, 1), "2026-12-01", ("2026-11-30", "2026-11-30"), None),
        # a value the CRM side has never had (a prospect created from a CRM record) goes across
        (Rule.MA_TO_CRM, None, M1, (None, M1.isoformat()), ("crm", M1, "rule")),
        (Rule.MA_TO_CRM, None, 0, (None, 0), ("crm", 0, "rule")),
        (Rule.MA_TO_CRM, None, None, (None, None), None),
    ],
)  # fmt: skip
def test_dates_are_compared_with_their_agreed_text(rule: Rule, crm: Any, ma: Any, last: tuple[Any, Any],
                                                   expected: tuple[str, Any, str] | None) -> None:  # fmt: skip
    assert _d(rule, crm, ma, last, crm_t=T2, ma_t=T1) == expected
