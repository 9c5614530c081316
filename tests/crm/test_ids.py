from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from renkei import ids

BASE62 = string.digits + string.ascii_letters


@given(st.text(alphabet=BASE62, min_size=15, max_size=15))
def test_15_to_18_round_trip(id15: str) -> None:
    id18 = ids.to18(id15)
    assert len(id18) == 18 and id18[:15] == id15
    assert ids.to15(id18) == id15
    # the 18-character id survives case folding: the suffix restores the case
    assert ids.to15(id18.lower()) == id15
    assert ids.to15(id18.upper()) == id15
    assert ids.normalize(id15) == ids.normalize(id18.swapcase()) == id18


def test_published_examples() -> None:
    assert ids.to18("00Q5g00000AbCdE") == "00Q5g00000AbCdEEAV"
    assert ids.to18("00558000001N0Ke") == "00558000001N0KeAAK"
    assert ids.make_id("00Q", 1) == "00Q5g0000000001EAA"


@pytest.mark.parametrize("bad", ["", "00Q", "00Q5g00000AbCdE!", "00Q5g00000AbCdEEA9", "0" * 17])
def test_malformed(bad: str) -> None:
    with pytest.raises(ids.MalformedIdError):
        ids.normalize(bad)
