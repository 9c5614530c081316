"""Salesforce-format record IDs: 15-character case-sensitive ids and their 18-character form.

The 3-character suffix is a case mask: each 5-character chunk of the 15-character id gives one
suffix character, whose value has bit *i* set when character *i* of the chunk is an upper-case
letter. It lets the 18-character id be compared case-insensitively and restored to the 15.
"""

from __future__ import annotations

import functools
import re
import string

_SUFFIX_ALPHABET = string.ascii_uppercase + "012345"
_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_ID15 = re.compile(r"^[0-9A-Za-z]{15}$")
_ID18 = re.compile(r"^[0-9A-Za-z]{15}[A-Z0-5]{3}$")

KEY_PREFIXES: dict[str, str] = {
    "Account": "001",
    "Contact": "003",
    "Lead": "00Q",
    "Opportunity": "006",
    "OpportunityContactRole": "00K",
    "Campaign": "701",
    "CampaignMember": "00v",
    "Task": "00T",
    "User": "005",
}
OBJECT_BY_PREFIX: dict[str, str] = {v: k for k, v in KEY_PREFIXES.items()}

#: The 4th and 5th characters of a generated id name the "instance"; the 6th is reserved (0).
INSTANCE = "5g"


class MalformedIdError(ValueError):
    """Not a 15- or 18-character Salesforce id (Salesforce: MALFORMED_ID)."""


def case_suffix(id15: str) -> str:
    if not _ID15.match(id15):
        raise MalformedIdError(f"not a 15-character id: {id15!r}")
    out = []
    for chunk in range(3):
        bits = 0
        for i, ch in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            if "A" <= ch <= "Z":
                bits |= 1 << i
        out.append(_SUFFIX_ALPHABET[bits])
    return "".join(out)


def to18(record_id: str) -> str:
    """15 → 18 characters; an 18-character id is checked and returned with its case restored."""
    if len(record_id) == 15:
        return record_id + case_suffix(record_id)
    if len(record_id) == 18:
        return to15(record_id) + record_id[15:].upper()
    raise MalformedIdError(f"invalid id: {record_id!r} (expected 15 or 18 characters)")


def to15(record_id: str) -> str:
    """18 → 15 characters, restoring the case from the suffix (so a case-folded id still works)."""
    if len(record_id) == 15:
        if not _ID15.match(record_id):
            raise MalformedIdError(f"invalid id: {record_id!r}")
        return record_id
    suffix = record_id[15:].upper()
    if len(record_id) != 18 or not _ID18.match(record_id[:15] + suffix):
        raise MalformedIdError(f"invalid id: {record_id!r} (expected 15 or 18 characters)")
    body = []
    for pos, ch in enumerate(record_id[:15]):
        upper = (_SUFFIX_ALPHABET.index(suffix[pos // 5]) >> (pos % 5)) & 1
        if ch.isalpha():
            body.append(ch.upper() if upper else ch.lower())
        elif upper:
            raise MalformedIdError(f"invalid id: {record_id!r} (case suffix does not match)")
        else:
            body.append(ch)
    return "".join(body)


_CASE_BITS = str.maketrans({c: "1" if c in string.ascii_uppercase else "0" for c in _BASE62})


def _canonical(record_id: str) -> bool:
    """Already the canonical 18-character id (the form every id a cycle handles has): its suffix is
    the case mask of its 15 characters — checked with one ``translate`` instead of a loop per character."""
    if len(record_id) != 18 or not _ID18.match(record_id):
        return False
    bits = record_id[:15].translate(_CASE_BITS)
    return (
        record_id[15] == _SUFFIX_ALPHABET[int(bits[4::-1], 2)]
        and record_id[16] == _SUFFIX_ALPHABET[int(bits[9:4:-1], 2)]
        and record_id[17] == _SUFFIX_ALPHABET[int(bits[14:9:-1], 2)]
    )


@functools.lru_cache(maxsize=1 << 16)  # pure; a batch of 200 records is checked several times per call
def normalize(record_id: str) -> str:
    """Any accepted form (15, 18, 18 case-folded) → the canonical 18-character id."""
    if _canonical(record_id):
        return record_id
    return to18(to15(record_id.strip()))


def is_valid(record_id: str) -> bool:
    try:
        normalize(record_id)
    except MalformedIdError:
        return False
    return True


def encode_base62(n: int, width: int) -> str:
    if n < 0:
        raise ValueError("negative")
    chars = []
    for _ in range(width):
        n, r = divmod(n, 62)
        chars.append(_BASE62[r])
    if n:
        raise ValueError("number too large for width")
    return "".join(reversed(chars))


def make_id(prefix: str, number: int) -> str:
    """The ``number``-th id for a key prefix, as an 18-character id."""
    if len(prefix) != 3:
        raise ValueError(f"key prefix must be 3 characters: {prefix!r}")
    return to18(prefix + INSTANCE + "0" + encode_base62(number, 9))


def object_for_id(record_id: str) -> str | None:
    return OBJECT_BY_PREFIX.get(record_id[:3])
