"""The messages between the steps of a sync cycle: immutable values.

A cycle gathers each side's changes, the planner turns them into ``Op`` values (one per record:
what happens to it and why, with one ``FieldWrite`` per field it writes — from which value to which,
under which rule and evidence), the engine executes them, and the audit stores the ``FieldWrite``s.
``renkei sync plan`` prints the same ``Op`` values without executing them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from renkei.core.sync.judge import Side, jsonable


class Action(enum.StrEnum):
    """What a planned step does to one record."""

    CREATE = "create"
    UPDATE = "update"
    LINK = "link"
    MOVE_LINK = "move_link"
    MERGE = "merge"
    RECYCLE = "recycle"
    RESTORE = "restore"
    UNLINK = "unlink"
    SKIP = "skip"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class FieldWrite:
    """One field written to side ``to``: ``old`` → ``new``, under ``rule`` with ``evidence``."""

    to: Side
    ma_field: str
    crm_field: str
    old: Any
    new: Any
    rule: str
    evidence: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"to": self.to.value, "field": self.ma_field, "crmField": self.crm_field, "from": jsonable(self.old),
                "value": jsonable(self.new), "rule": self.rule, "evidence": self.evidence, "reason": self.reason}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Op:
    """One planned step: what happens to one record, and why."""

    action: Action
    side: Side | None
    object: str
    record_id: str | None
    prospect_id: int | None
    reason: str
    writes: tuple[FieldWrite, ...] = ()
    values: Mapping[str, Any] = field(default_factory=dict)
    target_id: str | None = None  # move_link: the new CRM id; merge: the surviving prospect id (as str)
    error_kind: str | None = None
    code: str | None = None
    #: The CRM record as the cycle read it (lets the engine record the agreed values without reading it back).
    record: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    #: move_link: the agreed values that still hold for the new record (the old record's pairs whose
    #: CRM value the new record holds too); None when the new record was not at hand (none hold).
    agreed: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.action.value, "side": self.side.value if self.side else None,
                               "object": self.object, "recordId": self.record_id, "prospectId": self.prospect_id,
                               "reason": self.reason}  # fmt: skip
        if self.writes:
            out["fields"] = [w.to_dict() for w in self.writes]
        if self.target_id:
            out["target"] = self.target_id
        if self.error_kind:
            out["error"] = {"kind": self.error_kind, "code": self.code}
        return out
