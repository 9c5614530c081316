"""The field mapping compiled for creating many prospects at once (the fast initial sync).

When a cycle meets many CRM records that have no prospect yet, an adapter able to copy in bulk
(``ports.BulkCopyCapable``) creates them with set-based statements instead of one ``Op`` each. What
those statements copy is decided here, from the same mapping the per-record planner uses, so both
paths write the same prospects and the same agreed values:

* ``copies`` — the prospect fields a new prospect takes from its record (the rules that let a CRM
  value reach marketing), each with the conversion the per-record path applies;
* ``agreed`` — every mapped field, whose ``[CRM value, marketing value]`` pair is recorded as the
  value both sides agree on after the create (the no-echo basis).

Pure: value kinds come in as plain names, no SQL here.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


class Kind(enum.StrEnum):
    """What a column holds, as far as copying and JSON rendering care."""

    TEXT = "text"
    BOOLEAN = "boolean"
    INTEGER = "integer"
    NUMBER = "number"  # floating point
    DATETIME = "datetime"
    DATE = "date"


class Conversion(enum.StrEnum):
    COPY = "copy"  # the value as it is (a blank becomes no value)
    WHOLE_NUMBER = "whole_number"  # a CRM number: whole values become integers, as the planner does


@dataclass(frozen=True, slots=True)
class Copy:
    target: str  # prospect field
    source: str  # CRM field
    conversion: Conversion


@dataclass(frozen=True, slots=True)
class AgreedPair:
    field: str  # prospect field
    source: str | None  # CRM field (None: the object has no such field, the CRM side is empty)
    crm_kind: Kind | None  # the CRM field's kind (None with no source)
    ma_kind: Kind


@dataclass(frozen=True, slots=True)
class CreationSpec:
    object: str
    copies: tuple[Copy, ...]
    agreed: tuple[AgreedPair, ...]


_COMPATIBLE = {
    Kind.TEXT: {Kind.TEXT},
    Kind.BOOLEAN: {Kind.BOOLEAN},
    Kind.INTEGER: {Kind.INTEGER, Kind.NUMBER},
    Kind.NUMBER: {Kind.INTEGER, Kind.NUMBER},
    Kind.DATETIME: {Kind.DATETIME},
    Kind.DATE: {Kind.DATE},
}


def creation_spec(
    object_name: str,
    pulled: Sequence[tuple[str, str]],
    mapped: Sequence[tuple[str, str]],
    crm_kinds: Mapping[str, Kind | None],
    ma_kinds: Mapping[str, Kind | None],
) -> CreationSpec | None:
    """The copy of ``object_name`` records into new prospects, or None when a pair cannot be copied
    as the per-record path would (a kind the bulk statements do not render, or a CRM value of one
    kind landing in a prospect field of another): such a configuration takes the per-record path.

    ``pulled`` and ``mapped`` are (prospect field, CRM field) pairs; ``*_kinds`` name each side's
    fields (None: a field of a kind not listed in ``Kind``); a missing CRM field is absent.
    """
    copies = []
    for ma, crm in pulled:
        if crm not in crm_kinds or ma not in ma_kinds:
            continue  # the per-record path skips these too (no such field on the record or prospect)
        source, target = crm_kinds[crm], ma_kinds[ma]
        if source is None or target is None or target not in _COMPATIBLE[source]:
            return None
        copies.append(Copy(ma, crm, Conversion.WHOLE_NUMBER if source is Kind.NUMBER else Conversion.COPY))
    agreed = []
    for ma, crm in mapped:
        if ma not in ma_kinds:
            continue
        ma_kind, crm_kind = ma_kinds[ma], crm_kinds.get(crm)
        if ma_kind is None or (crm in crm_kinds and crm_kind is None):
            return None
        agreed.append(AgreedPair(ma, crm if crm in crm_kinds else None, crm_kind, ma_kind))
    return CreationSpec(object_name, tuple(copies), tuple(agreed))
