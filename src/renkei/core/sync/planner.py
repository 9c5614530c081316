"""The sync planner: one cycle's changes in, the operations that bring both sides in step out.

Pure: no SQL, no HTTP. It reads the CRM through the adapter port (``ports.CrmAdapter``: records by
id, SOQL for email look-ups) and the marketing side through ``MarketingView`` (links, prospects,
agreed values, filters, user links), which the connector service implements over its store. Its
output is a list of immutable ``messages.Op`` values: creates, updates with their field writes
(from → to, rule, evidence, reason), links, moves, merges, recycles, skips and errors. Executing
them — and persisting links, agreed values, audit and errors — is the service's job; ``renkei sync
plan`` prints them without executing anything.

The decisions, in the order a cycle meets them:

* CRM side first, contacts before leads (``prefer: lead`` reverses), each in change order: deleted
  records (merge into the master's prospect, hand the prospect to a same-email heir, else recycle or
  unlink), converted leads (the prospect moves to the contact with its history), records that stop
  matching their filter, linked records (field by field through ``judge.decide``), unlinked records
  (match by email key, collisions reported, never guessed; else create a prospect when
  ``auto_create_prospects``), all under the licence cap;
* then the changed prospects: linked ones whose synced fields differ from the agreed values are
  judged against their CRM record; unlinked ones become CRM leads only as ``create_in_crm`` allows
  (on assignment by default), after an email match against existing records.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from renkei.core.identity import email_key
from renkei.core.sync.judge import (
    PLAIN,
    Observed,
    Rule,
    Side,
    decide,
    is_blank,
    plainly_same,
    same,
    same_value,
)
from renkei.core.sync.messages import Action, FieldWrite, Op
from renkei.core.sync.ports import CrmAdapter, QueriesMany, ReadsManyRecords

#: The prospect field that follows the CRM record's ``OwnerId`` through the user links.
OWNER = "assignedToId"
#: What ``map(row.get, fields, ABSENTS)`` gives for a field a row does not have.
ABSENT: Any = object()
ABSENTS = itertools.repeat(ABSENT)
#: The CRM objects prospects sync with.
CRM_OBJECTS = ("Lead", "Contact")


class Mapping_(Protocol):
    """One field pair of the connector config (``connector.config.FieldMapping``)."""

    @property
    def ma(self) -> str: ...
    @property
    def rule(self) -> Rule: ...
    @property
    def sync_blanks(self) -> bool: ...


class Settings(Protocol):
    """What the planner reads of the connector config (``connector.config.ConnectorConfig``)."""

    @property
    def cap(self) -> int | None: ...
    @property
    def prefer(self) -> str: ...
    @property
    def on_crm_delete(self) -> str: ...
    @property
    def on_filter_mismatch(self) -> str: ...
    @property
    def auto_create_prospects(self) -> bool: ...
    @property
    def create_in_crm(self) -> str: ...
    @property
    def placeholder(self) -> str: ...
    def filter_for(self, object_name: str) -> str | None: ...
    def mappings(self, object_name: str) -> Sequence[tuple[Mapping_, str]]: ...
    def fields_to_pull(self, object_name: str) -> Sequence[tuple[Mapping_, str]]: ...
    def fields_to_create_in_crm(self, object_name: str) -> Sequence[tuple[Mapping_, str]]: ...


class MarketingView(Protocol):
    """What the planner reads of the marketing side and of the connector's own state."""

    def prefetch_links(self, crm_ids: set[str], prospect_ids: set[int]) -> None:
        """Read these records' and prospects' links in batches (later look-ups are then free)."""

    def link_of_record(self, crm_id: str) -> tuple[int, str] | None:
        """(prospect id, CRM object) linked to a CRM record."""

    def link_of_prospect(self, prospect_id: int) -> tuple[str, str] | None:
        """(CRM id, CRM object) linked to a prospect."""

    def linked_count(self) -> int:
        """How many prospects are linked (the licence cap counts them)."""

    def prospects(self, prospect_ids: Sequence[int]) -> Mapping[int, Mapping[str, Any]]:
        """Prospects by id, with at least their synced fields (mapped, assigned user, stamps)."""

    def prospect_row(self, prospect_id: int) -> Mapping[str, Any] | None:
        """One whole prospect (None when there is none)."""

    def states(self, prospect_ids: Sequence[int]) -> Mapping[int, Mapping[str, Sequence[Any]]]:
        """Agreed values by prospect: field → [CRM value as marketing keeps it, marketing value]. A
        prospect without agreed values is left out (never synced: first-sync rules); a field left out
        of a prospect's values was never synced either (a field both sides left empty at the last
        sync is there as [None, None], even where the store keeps it as no entry at all)."""

    def prospects_by_key(self, keys: set[str]) -> Mapping[str, list[dict[str, Any]]]:
        """Prospects (``id``, ``isDeleted``) per email key."""

    def passing(self, object_name: str, where: str, record_ids: Sequence[str]) -> set[str]:
        """Which of these CRM records match the object's filter (SOQL WHERE)."""

    def field_names(self, object_name: str) -> frozenset[str]:
        """The CRM object's field names (its describe)."""

    def user_for_crm_owner(self, crm_owner: str | None) -> int | None:
        """The marketing user linked to a CRM user (``OwnerId``), if any."""

    def crm_user_for(self, user_id: Any) -> str | None:
        """The CRM user linked to a marketing user, if any."""


@dataclass
class _Tally:
    """What a cycle's planning has decided so far (shared by its CRM-side and marketing-side passes)."""

    cap: int | None
    live_synced: int  # linked prospects before this cycle (counted only under a cap)
    planned_new: int = 0  # prospects this cycle links or creates
    ops: list[Op] = field(default_factory=list)
    touched: set[int] = field(default_factory=set)  # prospects whose pair the CRM side already planned

    def cap_ok(self) -> bool:
        return self.cap is None or self.live_synced + self.planned_new < self.cap


class Planner:
    """Plans one cycle. Holds per-cycle caches only: make one per cycle."""

    def __init__(self, settings: Settings, crm: CrmAdapter, store: MarketingView) -> None:
        self.settings = settings
        self.crm = crm
        self.store = store
        self._changes: Mapping[str, Mapping[str, Mapping[str, Any]]] = {}
        self._mapped: dict[str, Sequence[tuple[Mapping_, str]]] = {}
        self._judged_fields: dict[str, list[tuple[Mapping_, str, str]]] = {}
        self._judged_cols: dict[
            str, tuple[list[tuple[Mapping_, str, str]], tuple[str, ...], tuple[str, ...]]
        ] = {}
        self._mapped_cols: dict[
            str, tuple[Sequence[tuple[Mapping_, str]], tuple[str, ...], tuple[str, ...]]
        ] = {}

    def _judged(self, obj: str) -> list[tuple[Mapping_, str, str]]:
        """(mapping, prospect field, CRM field) of the object's pairs whose CRM field it has, once per cycle."""
        if obj not in self._judged_fields:
            describe = self.store.field_names(obj)
            self._judged_fields[obj] = [(m, m.ma, f) for m, f in self.mappings(obj) if f in describe]
        return self._judged_fields[obj]

    def _judged_columns(
        self, obj: str
    ) -> tuple[list[tuple[Mapping_, str, str]], tuple[str, ...], tuple[str, ...]]:
        """``_judged(obj)`` with its prospect fields and CRM fields as tuples (for C-level fetching)."""
        if obj not in self._judged_cols:
            judged = self._judged(obj)
            self._judged_cols[obj] = (
                judged,
                tuple(ma for _, ma, _ in judged),
                tuple(f for _, _, f in judged),
            )
        return self._judged_cols[obj]

    def _mapped_columns(
        self, obj: str
    ) -> tuple[Sequence[tuple[Mapping_, str]], tuple[str, ...], tuple[str, ...]]:
        """``mappings(obj)`` with its prospect fields and CRM fields as tuples."""
        if obj not in self._mapped_cols:
            pairs = self.mappings(obj)
            self._mapped_cols[obj] = (pairs, tuple(m.ma for m, _ in pairs), tuple(f for _, f in pairs))
        return self._mapped_cols[obj]

    def mappings(self, obj: str) -> Sequence[tuple[Mapping_, str]]:
        """The object's field pairs, worked out once per cycle."""
        if obj not in self._mapped:
            self._mapped[obj] = self.settings.mappings(obj)
        return self._mapped[obj]

    def plan(self, crm: Mapping[str, Mapping[str, Mapping[str, Any]]],
             prospects: Mapping[int, Mapping[str, Any]]) -> list[Op]:  # fmt: skip
        """The cycle's operations for these changes: ``crm`` is object → id → record (deleted ones
        included) in change order, ``prospects`` the changed prospects by id (deleted ones included)."""
        self._changes = crm
        store = self.store
        # only the links this cycle's records touch are read (idle cycles stay cheap)
        store.prefetch_links({str(r[k]) for recs in crm.values() for r in recs.values()
                              for k in ("Id", "MasterRecordId", "ConvertedContactId") if r.get(k)}, set(prospects))  # fmt: skip
        # counted only under a cap: a count of every link costs tens of ms at a million links
        tally = _Tally(self.settings.cap, store.linked_count() if self.settings.cap is not None else 0)
        self._plan_records(crm, prospects, tally)
        self._plan_prospects(prospects, tally)
        return tally.ops

    def _plan_records(self, crm: Mapping[str, Mapping[str, Mapping[str, Any]]],
                      prospects: Mapping[int, Mapping[str, Any]], tally: _Tally) -> None:  # fmt: skip
        """The CRM side's changes: contacts before leads (reversed with ``prefer: lead``), in change order."""
        cfg, store, ops, touched_pairs = self.settings, self.store, tally.ops, tally.touched
        planned_links: dict[str, int] = {}
        planned_creates: dict[str, tuple[str, str]] = {}  # email key → the CRM record creating its prospect
        # the linked records' prospects and agreed values, read a page at a time (not per record)
        linked = sorted(
            {
                link[0]
                for recs in crm.values()
                for rid in recs
                if (link := store.link_of_record(rid)) is not None
            }
        )
        rows = store.prospects([pid for pid in linked if pid not in prospects])
        states = store.states(linked)

        def prospect_row(pid: int) -> Mapping[str, Any] | None:
            if pid in prospects:
                return prospects[pid]
            if pid in rows:
                return rows[pid]
            return store.prospect_row(pid)

        filters = {obj: f for obj in CRM_OBJECTS if (f := cfg.filter_for(obj))}
        passing = {obj: store.passing(obj, where, list(crm[obj])) for obj, where in filters.items()}
        ordered = [("Contact", r) for r in crm["Contact"].values()] + [
            ("Lead", r) for r in crm["Lead"].values()
        ]
        if cfg.prefer == "lead":
            ordered.reverse()
        by_key = store.prospects_by_key(
            {
                k
                for _, r in ordered
                if store.link_of_record(str(r["Id"])) is None and (k := email_key(r.get("Email")))
            },
        )
        # the records already linked to those emails' prospects: whether each is in the recycle bin,
        # read in batches now rather than one call per matching CRM record below
        candidate_ids = {c["id"] for cands in by_key.values() for c in cands}
        store.prefetch_links(set(), candidate_ids)
        linked_elsewhere = [
            pair for pid in candidate_ids if (pair := store.link_of_prospect(pid)) is not None
        ]
        in_recycle_bin = {
            crm_id: bool(r.get("IsDeleted")) for crm_id, r in self._read_current(linked_elsewhere).items()
        }
        # A converted lead's contact takes the lead's prospect: decided before any other record with the
        # same email can claim it (contacts are planned before leads), so a second contact gets a
        # collision error instead of a competing move.
        converted_to = {
            link[0]: str(r["ConvertedContactId"])
            for r in crm["Lead"].values()
            if r.get("IsConverted") and r.get("ConvertedContactId") and not r.get("IsDeleted")
            and (link := store.link_of_record(str(r["Id"]))) is not None
        }  # fmt: skip
        # A deleted record's person may live on as another lead or contact with the same email that was
        # left unlinked (prefer: contact/lead): the prospect moves to it instead of the recycle bin.
        gone = [str(r["Email"]) for _, r in ordered if r.get("IsDeleted") and not r.get("MasterRecordId")
                and store.link_of_record(str(r["Id"])) is not None and email_key(r.get("Email"))]  # fmt: skip
        successors = self._crm_by_emails(gone) if gone else {}
        for obj, rec in ordered:
            rid = str(rec["Id"])
            link = store.link_of_record(rid)
            pid = link[0] if link else None
            if rec.get("IsDeleted"):
                if pid is None:
                    continue
                if any(v == pid and c != rid for c, v in planned_links.items()):
                    continue  # another record of this person took the prospect over earlier in this cycle
                master = rec.get("MasterRecordId")
                if master:
                    other = store.link_of_record(str(master))
                    if other is not None and other[0] != pid:
                        ops.append(Op(Action.MERGE, Side.MA, obj, rid, pid, f"CRM merged {rid} into {master}; "
                                      f"prospect {pid} is merged into prospect {other[0]}", target_id=str(other[0])))  # fmt: skip
                    else:
                        ops += self._move(obj, rid, pid, str(master), states.get(pid, {}), prospect_row(pid),
                                          f"CRM merged {rid} into {master}: the prospect follows the master")  # fmt: skip
                        touched_pairs.add(pid)
                    continue
                heir = self._heir(successors.get(email_key(rec.get("Email")) or "", []), planned_links)
                if heir is not None:
                    ops += self._move(obj, rid, pid, heir[1], states.get(pid, {}), prospect_row(pid),
                                      f"{obj} {rid} was deleted in the CRM; {heir[0]} {heir[1]} has the same "
                                      "email: the prospect moves to it")  # fmt: skip
                    touched_pairs.add(pid)
                    planned_links[heir[1]] = pid
                    continue
                action = Action.RECYCLE if cfg.on_crm_delete == "recycle" else Action.UNLINK
                ops.append(
                    Op(
                        action,
                        Side.MA,
                        obj,
                        rid,
                        pid,
                        f"{obj} {rid} was deleted in the CRM (on_crm_delete: {cfg.on_crm_delete})",
                    )
                )
                continue
            if obj == "Lead" and rec.get("IsConverted"):
                contact = rec.get("ConvertedContactId")
                if pid is not None and contact:
                    other = store.link_of_record(str(contact))
                    if other is not None and other[0] != pid:
                        ops.append(Op(Action.MERGE, Side.MA, obj, rid, other[0], f"lead {rid} was converted to contact "
                                      f"{contact}; prospect {other[0]} is merged into prospect {pid} (history kept)",
                                      target_id=str(pid)))  # fmt: skip
                    ops += self._move(obj, rid, pid, str(contact), states.get(pid, {}), prospect_row(pid),
                                      f"lead {rid} was converted to contact {contact}: the prospect moves with its history")  # fmt: skip
                    touched_pairs.add(pid)
                    planned_links[str(contact)] = pid
                continue
            flt = cfg.filter_for(obj)
            if flt and rid not in passing[obj]:
                if pid is not None:
                    action = Action.RECYCLE if cfg.on_filter_mismatch == "recycle" else Action.UNLINK
                    ops.append(
                        Op(action, Side.MA, obj, rid, pid, f"{obj} {rid} no longer matches the filter: {flt}")
                    )
                else:
                    ops.append(
                        Op(Action.SKIP, None, obj, rid, None, f"does not match the {obj} filter: {flt}")
                    )
                continue
            if pid is not None:
                if any(v == pid and c != rid for c, v in planned_links.items()):
                    continue  # the prospect moved to another record earlier in this cycle
                prospect = prospect_row(pid)
                if prospect is None:
                    continue
                state = states.get(pid, {})
                if prospect.get("isDeleted"):
                    if not self._crm_changed(obj, rec, state):
                        continue  # our own write echoing back: the deleted prospect stays deleted
                    ops.append(Op(Action.RESTORE, Side.MA, obj, rid, pid,
                                  f"{obj} {rid} changed in the CRM: the prospect is restored from the recycle bin"))  # fmt: skip
                ops += self._update_ops(obj, rid, pid, rec, prospect, state, "fields differ")
                touched_pairs.add(pid)
                continue
            # unlinked CRM record
            key = email_key(rec.get("Email"))
            if key is None:
                ops.append(
                    Op(Action.SKIP, None, obj, rid, None, "no email: a prospect needs an email address")
                )
                continue
            candidates = by_key.get(key, [])
            live = [c for c in candidates if not c["isDeleted"]]
            if len(live) > 1:
                ops.append(Op(Action.ERROR, None, obj, rid, None, f"{len(live)} prospects share the email {rec.get('Email')}: "
                              "not linked (email collision; resolve by merging the prospects)",
                              error_kind="collision", code="EMAIL_COLLISION"))  # fmt: skip
                continue
            target = live[0]["id"] if live else (candidates[0]["id"] if candidates else None)
            creator = planned_creates.get(key)
            if target is None and creator is not None:
                # another record with this email creates the prospect in this cycle: never a second one
                if creator[0] == obj:
                    ops.append(Op(Action.ERROR, None, obj, rid, None, f"the email {rec.get('Email')} is on {obj} "
                                  f"{creator[1]} too: not linked (email collision)", error_kind="collision",
                                  code="EMAIL_COLLISION"))  # fmt: skip
                else:
                    ops.append(Op(Action.SKIP, None, obj, rid, None, f"the email's prospect is created from "
                                  f"{creator[0]} {creator[1]} (prefer: {cfg.prefer})"))  # fmt: skip
                continue
            if target is not None:
                # who has this prospect after this cycle's earlier decisions: a conversion, a move or link
                # planned above, else the stored link
                claimed = converted_to.get(target) or next(
                    (c for c, v in planned_links.items() if v == target and not c.startswith("!")), None
                )
                if claimed == rid:
                    continue  # the lead's conversion moves the prospect to this contact (planned below)
                existing = (claimed, object_of(claimed)) if claimed else store.link_of_prospect(target)
                if (
                    not claimed
                    and existing is not None
                    and existing[0] != rid
                    and (
                        in_recycle_bin[existing[0]]
                        if existing[0] in in_recycle_bin
                        else self._deleted_in_crm(existing[1], existing[0])
                    )
                ):
                    existing = (
                        None  # its record is in the CRM's recycle bin: this record takes the prospect over
                    )
                if existing is not None and existing[0] != rid:
                    other_obj = existing[1]
                    if other_obj == "Lead" and obj == "Contact" and cfg.prefer == "contact":
                        moved = store.states([target]).get(target, {})
                        ops += self._move("Lead", existing[0], target, rid, moved, prospect_row(target),
                                          f"lead and contact share the email {rec.get('Email')}: prefer contact")  # fmt: skip
                        touched_pairs.add(target)
                        planned_links[rid] = target
                    elif other_obj == obj:
                        ops.append(Op(Action.ERROR, None, obj, rid, target, f"the email {rec.get('Email')} is on "
                                      f"{obj} {existing[0]} (already linked to prospect {target}) and on {rid}: not "
                                      "linked (email collision)", error_kind="collision", code="EMAIL_COLLISION"))  # fmt: skip
                    else:
                        ops.append(Op(Action.SKIP, None, obj, rid, target,
                                      f"the email is linked to {other_obj} {existing[0]} (prefer: {cfg.prefer})"))  # fmt: skip
                    continue
                if not tally.cap_ok():
                    ops.append(Op(Action.ERROR, None, obj, rid, target, f"licence cap of {cfg.cap} synced prospects reached",
                                  error_kind="cap_reached", code="CAP_REACHED"))  # fmt: skip
                    continue
                prospect = prospect_row(target) or {}
                if prospect.get("isDeleted"):
                    ops.append(Op(Action.RESTORE, Side.MA, obj, rid, target,
                                  "a CRM record with this email changed: the prospect is restored"))  # fmt: skip
                ops.append(Op(Action.LINK, None, obj, rid, target, f"matched by email {rec.get('Email')}"))
                ops += self._update_ops(obj, rid, target, rec, prospect, {}, "first sync after linking")
                planned_links[rid] = target
                tally.planned_new += 1
                touched_pairs.add(target)
                continue
            if not cfg.auto_create_prospects:
                ops.append(Op(Action.SKIP, None, obj, rid, None, "auto_create_prospects is off"))
                continue
            if not tally.cap_ok():
                ops.append(Op(Action.ERROR, None, obj, rid, None, f"licence cap of {cfg.cap} synced prospects reached",
                              error_kind="cap_reached", code="CAP_REACHED"))  # fmt: skip
                continue
            values = self.prospect_values(obj, rec)
            ops.append(
                Op(
                    Action.CREATE,
                    Side.MA,
                    obj,
                    rid,
                    None,
                    f"new {obj} with email {rec.get('Email')}",
                    values=values,
                    record=rec,
                )
            )
            planned_creates[key] = (obj, rid)
            tally.planned_new += 1

    def _plan_prospects(self, prospects: Mapping[int, Mapping[str, Any]], tally: _Tally) -> None:
        """The changed prospects the CRM side's records did not already cover."""
        cfg, store, ops, touched_pairs = self.settings, self.store, tally.ops, tally.touched
        agreed = store.states([pid for pid, row in prospects.items()
                                     if store.link_of_prospect(pid) is not None and pid not in touched_pairs and not own_write(row)])  # fmt: skip
        linked_changes = [
            (pid, pair) for pid, prospect in prospects.items()
            if pid not in touched_pairs and not prospect.get("isDeleted") and not own_write(prospect)
            and (pair := store.link_of_prospect(pid)) is not None and not self._ma_unchanged(pair[1], prospect, agreed.get(pid, {}))
        ]  # fmt: skip
        current = self._read_current([pair for _, pair in linked_changes])
        ma_changed = {pid for pid, _ in linked_changes}
        planned_pids = {o.prospect_id for o in ops}
        # unlinked prospects bound for the CRM may match a record by email: look them all up at once
        by_email = self._crm_by_emails(
            [r["email"] for pid, r in prospects.items()
             if r.get("email") and not r.get("isDeleted") and pid not in touched_pairs and pid not in planned_pids
             and store.link_of_prospect(pid) is None and cfg.create_in_crm != "never"
             and (cfg.create_in_crm != "on_assignment" or r.get("assignedToId"))],
        )  # fmt: skip
        matched = self._read_current([(crm_id, obj) for found in by_email.values() for obj, crm_id in found])
        for pid, prospect in prospects.items():
            if pid in touched_pairs or prospect.get("isDeleted"):
                continue
            if store.link_of_prospect(pid) is not None and own_write(prospect):
                continue  # the connector's own write is the last change (the echo of a past cycle)
            pair = store.link_of_prospect(pid)
            if pair is not None:
                crm_id, obj = pair
                if pid not in ma_changed:
                    continue  # only our own writes (or unmapped fields) changed: nothing to send, no CRM read
                found = current.get(crm_id)
                if found is None:
                    continue
                rec = dict(found)
                if rec.get("IsDeleted"):
                    continue
                ops += self._update_ops(obj, crm_id, pid, rec, prospect, agreed.get(pid, {}), "fields differ")
                continue
            if pid in planned_pids:  # the CRM side's records planned something for this prospect
                continue
            gate = cfg.create_in_crm
            if gate == "never":
                ops.append(Op(Action.SKIP, None, "Lead", None, pid, "create_in_crm is never"))
                continue
            if gate == "on_assignment" and not prospect.get("assignedToId"):
                ops.append(Op(Action.SKIP, None, "Lead", None, pid,
                              "not assigned to a user (create_in_crm: on_assignment): stays marketing-only"))  # fmt: skip
                continue
            if not prospect.get("email"):
                ops.append(Op(Action.SKIP, None, "Lead", None, pid, "no email"))
                continue
            match = self._first_match(by_email.get(email_key(prospect["email"]) or "", []))
            if match is not None and match[1] in matched:
                obj, crm_id = match
                ops.append(Op(Action.LINK, None, obj, crm_id, pid, f"matched existing {obj} by email"))
                rec = dict(matched[crm_id])
                ops += self._update_ops(obj, crm_id, pid, rec, prospect, {}, "first sync after linking")
                continue
            if not tally.cap_ok():
                ops.append(Op(Action.ERROR, None, "Lead", None, pid, f"licence cap of {cfg.cap} synced prospects reached",
                              error_kind="cap_reached", code="CAP_REACHED"))  # fmt: skip
                continue
            tally.planned_new += 1
            ops.append(Op(Action.CREATE, Side.CRM, "Lead", None, pid,
                          "assigned prospect without a CRM record" if gate == "on_assignment" else "create_in_crm: always",
                          values=self._lead_values(prospect)))  # fmt: skip

    def _move(self, obj: str, record_id: str, prospect_id: int, new_id: str, state: Mapping[str, Sequence[Any]],
              prospect: Mapping[str, Any] | None, reason: str) -> list[Op]:  # fmt: skip
        """A MOVE_LINK of the prospect from ``record_id`` to ``new_id`` — and, when the new record is
        among this cycle's changes, the new pair's first sync. The old record's agreed values are
        carried over only where the new record holds the same CRM value (a converted lead's contact
        inherits the lead's fields, so an unsynced marketing edit still wins); where it differs, the
        field starts without agreed values (first-sync rules), since another record's agreement says
        nothing about it."""
        new_obj = object_of(new_id)
        rec = self._changes.get(new_obj, {}).get(new_id)
        agreed = None if rec is None else self._rebased(new_obj, rec, state)
        ops = [
            Op(Action.MOVE_LINK, None, obj, record_id, prospect_id, reason, target_id=new_id, agreed=agreed)
        ]
        if (
            rec is not None
            and prospect is not None
            and not prospect.get("isDeleted")
            and not rec.get("IsDeleted")
        ):
            ops += self._update_ops(new_obj, new_id, prospect_id, rec, prospect, agreed or {},
                                    f"first sync after the link moved to {new_obj} {new_id}")  # fmt: skip
        return ops

    def _rebased(
        self, obj: str, rec: Mapping[str, Any], state: Mapping[str, Sequence[Any]]
    ) -> dict[str, Any]:
        """The agreed pairs that still hold with ``rec`` on the CRM side."""
        out: dict[str, Any] = {}
        for m, crm_field in self.mappings(obj):
            pair = state.get(m.ma)
            if pair is not None and same_value(to_ma(rec.get(crm_field), pair[1]), pair[0]):
                out[m.ma] = list(pair)
        pair = state.get(OWNER)
        if pair is not None and same(self.store.user_for_crm_owner(rec.get("OwnerId")), pair[0]):
            out[OWNER] = list(pair)
        return out

    def _update_ops(self, obj: str, record_id: str, prospect_id: int, rec: Mapping[str, Any],
                    prospect: Mapping[str, Any], state: Mapping[str, Sequence[Any]], reason: str) -> list[Op]:  # fmt: skip
        """The field writes one linked pair needs, as an UPDATE op (none when the pair is in step)."""
        writes = self.decisions(obj, rec, prospect, state)
        if not writes:
            return []
        return [
            Op(Action.UPDATE, None, obj, record_id, prospect_id, reason, writes=tuple(writes), record=rec)
        ]

    def _read_current(self, pairs: Sequence[tuple[str, str]]) -> dict[str, Mapping[str, Any]]:
        """The CRM records of (CRM id, object) pairs: from the cycle's changes when there, else read
        in batches (one read per object and 200 ids, not one call per record)."""
        out: dict[str, Mapping[str, Any]] = {}
        missing: dict[str, list[str]] = {}
        for crm_id, obj in pairs:
            if crm_id in self._changes.get(obj, {}):
                out[crm_id] = self._changes[obj][crm_id]
            else:
                missing.setdefault(obj, []).append(crm_id)
        if len(missing) > 1 and isinstance(self.crm, ReadsManyRecords):  # one call for all objects
            for rows in self.crm.read_many(missing).values():
                out.update({str(r["Id"]): r for r in rows})
            return out
        for obj, wanted in missing.items():
            out.update({str(r["Id"]): r for r in self.crm.read(obj, wanted)})
        return out

    def _ma_unchanged(
        self, obj: str, prospect: Mapping[str, Any], state: Mapping[str, Sequence[Any]]
    ) -> bool:
        """Nothing the edited prospect holds gives the judge work: every mapped field (and the
        assigned user) still holds the value agreed at the last sync — and no ``most_recent`` field
        was left with different values on the two sides (a blank that lost to a value is not
        written, so the sides may stay apart) while the prospect holds a value: the prospect is now
        the newer record, so its value goes to the CRM as the rule says."""
        pairs, names, _ = self._mapped_columns(obj)
        most_recent = Rule.MOST_RECENT
        for (m, _), value, pair in zip(
            pairs, map(prospect.get, names, ABSENTS), map(state.get, names), strict=False
        ):
            if value is ABSENT:
                continue
            if pair is None:
                return False
            agreed_crm, agreed = pair
            if (
                not (  # plainly_same(value, agreed), inlined: this runs for every field of every edited prospect
                    (value is None and agreed is None)
                    or (type(value) is type(agreed) and type(value) in PLAIN and value == agreed)
                )
                and not same_value(value, agreed)
            ):
                return False
            if (
                m.rule is most_recent
                and not plainly_same(agreed_crm, agreed)
                and not is_blank(value)
                and not same(agreed_crm, agreed)
            ):
                return False
        if OWNER not in state:
            return False
        value, agreed = prospect.get(OWNER), state[OWNER][1]
        return plainly_same(value, agreed) or same_value(value, agreed)

    def _crm_changed(self, obj: str, rec: Mapping[str, Any], state: Mapping[str, Sequence[Any]]) -> bool:
        """Whether any synced field of the CRM record differs from its agreed value (compared as
        stored: JSON types, so a date-time the CRM returns equals its agreed ISO text)."""
        _, names, crm_fields = self._mapped_columns(obj)
        for value, pair in zip(map(rec.get, crm_fields), map(state.get, names), strict=False):
            if pair is None:
                continue
            agreed = pair[0]
            if (value is None and agreed is None) or (
                type(value) is type(agreed) and type(value) in PLAIN and value == agreed
            ):
                continue  # plainly_same, inlined
            if not same_value(to_ma(value, agreed), agreed):
                return True
        return False

    def decisions(self, obj: str, rec: Mapping[str, Any], prospect: Mapping[str, Any],
                   state: Mapping[str, Sequence[Any]]) -> list[FieldWrite]:  # fmt: skip
        crm_time = rec.get("SystemModstamp")
        ma_time = prospect.get("updatedAt")
        edited: tuple[Any, Any] | None = None  # the record times that count as evidence (worked out lazily)

        def times(last: Sequence[Any] | None) -> tuple[Any, Any]:
            """Record times as ``most_recent`` evidence. Before the first sync both count; after it, a
            side's time counts only when that side was edited since — the CRM record's synced fields
            (or owner) differ from the agreed values, the prospect's last change is not the
            connector's own write — so a write of ours echoing back never makes its side "newer"."""
            nonlocal edited
            if last is None:
                return crm_time, ma_time
            if edited is None:
                crm_edited = self._crm_changed(obj, rec, state) or (
                    OWNER in state
                    and not same(self.store.user_for_crm_owner(rec.get("OwnerId")), state[OWNER][0])
                )
                edited = (crm_time if crm_edited else None, None if own_write(prospect) else ma_time)
            return edited

        writes = []
        # the hottest loop of a busy cycle (pairs × mapped fields): the fields judged on this object
        # worked out once per cycle, and equal values passed over before any call
        judged, names, crm_fields = self._judged_columns(obj)
        for (m, ma, crm_field), crm_value, ma_value in zip(
            judged, map(rec.get, crm_fields), map(prospect.get, names, ABSENTS), strict=False
        ):
            # equal values never conflict: the judge would write nothing (as plainly_same)
            if ma_value is None:
                if crm_value is None:
                    continue
            elif ma_value is ABSENT:
                continue  # a field the prospect row does not have
            elif type(crm_value) is type(ma_value) and type(ma_value) in PLAIN and crm_value == ma_value:
                continue
            if type(crm_value) is float:
                crm_value = to_ma(crm_value, ma_value)
                if plainly_same(crm_value, ma_value):
                    continue
            if ma == "email" and email_key(crm_value) == email_key(ma_value):
                continue  # the same address (case, width and spaces are not differences)
            last = state.get(m.ma)
            c_time, m_time = times(last) if m.rule is Rule.MOST_RECENT else (crm_time, ma_time)
            d = decide(m.rule, Observed(crm_value, c_time), Observed(ma_value, m_time),
                       last[0] if last else None, last[1] if last else None,
                       synced_before=last is not None, sync_blanks=m.sync_blanks)  # fmt: skip
            if d is not None:
                old = rec.get(crm_field) if d.to is Side.CRM else prospect.get(m.ma)
                writes.append(
                    FieldWrite(d.to, m.ma, crm_field, old, d.value, d.rule.value, d.evidence.value, d.reason)
                )
        # the assigned user follows the CRM owner through the user links (and back)
        crm_owner = self.store.user_for_crm_owner(rec.get("OwnerId"))
        if plainly_same(crm_owner, prospect.get(OWNER)):
            return writes
        last = state.get(OWNER)
        c_time, m_time = times(last)
        d2 = decide(Rule.MOST_RECENT, Observed(crm_owner, c_time), Observed(prospect.get(OWNER), m_time),
                    last[0] if last else None, last[1] if last else None, synced_before=last is not None)  # fmt: skip
        if d2 is not None:
            if d2.to is Side.MA:
                writes.append(FieldWrite(Side.MA, OWNER, "OwnerId", prospect.get(OWNER), d2.value, d2.rule.value,
                                         d2.evidence.value, d2.reason))  # fmt: skip
            else:
                owner = self.store.crm_user_for(d2.value)
                if owner:
                    writes.append(FieldWrite(Side.CRM, OWNER, "OwnerId", rec.get("OwnerId"), owner, d2.rule.value,
                                             d2.evidence.value, d2.reason))  # fmt: skip
        return writes

    def prospect_values(self, obj: str, rec: Mapping[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for m, crm_field in self.settings.fields_to_pull(obj):
            if crm_field in rec and not is_blank(rec.get(crm_field)):
                values[m.ma] = to_ma(rec[crm_field], None)
        owner = self.store.user_for_crm_owner(rec.get("OwnerId"))
        if owner is not None:
            values[OWNER] = owner
        return values

    def _lead_values(self, prospect: Mapping[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        describe = self.store.field_names("Lead")
        for m, crm_field in self.settings.fields_to_create_in_crm("Lead"):
            if crm_field not in describe:
                continue
            value = prospect.get(m.ma)
            if not is_blank(value):
                values[crm_field] = value
        for required in ("LastName", "Company"):
            if is_blank(values.get(required)):
                values[required] = self.settings.placeholder
        owner = self.store.crm_user_for(prospect.get(OWNER))
        if owner:
            values["OwnerId"] = owner
        return values

    def _deleted_in_crm(self, obj: str, crm_id: str) -> bool:
        rows = self.crm.read(obj, [crm_id])
        return not rows or bool(rows[0].get("IsDeleted"))

    def _crm_by_emails(self, emails: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
        """Unlinked contacts and unconverted leads per email key: one ``Email IN (…)`` query per
        object and 200 emails (not one query per prospect)."""
        keys = sorted({k for e in emails if (k := email_key(e))})
        out: dict[str, list[tuple[str, str]]] = {}
        soqls: list[tuple[str, str]] = []  # (object, query)
        for start in range(0, len(keys), 200):
            quoted = ", ".join(
                "'" + k.replace("\\", "\\\\").replace("'", "\\'") + "'" for k in keys[start : start + 200]
            )
            for obj in ("Contact", "Lead"):
                where = f"Email IN ({quoted})" + (" AND IsConverted = false" if obj == "Lead" else "")
                soqls.append((obj, f"SELECT Id, Email FROM {obj} WHERE {where} ORDER BY Id"))
        for (obj, _), rows in zip(soqls, queries(self.crm, [q for _, q in soqls]), strict=True):
            for rec in rows:
                key = email_key(rec.get("Email"))
                if key is not None and self.store.link_of_record(str(rec["Id"])) is None:
                    out.setdefault(key, []).append((obj, str(rec["Id"])))
        return out

    def _heir(self, found: list[tuple[str, str]], planned_links: Mapping[str, int]) -> tuple[str, str] | None:
        """The one live, unlinked record (passing its filter, not claimed in this cycle) that takes over
        a deleted record's prospect; None when there is none — or several of one kind (a collision
        is not resolved by guessing: the prospect is recycled and each record reported when it syncs)."""
        cands = [(o, i) for o, i in found if i not in planned_links]
        for o in {o for o, _ in cands}:
            where = self.settings.filter_for(o)
            if where:
                ok = self.store.passing(o, where, [i for oo, i in cands if oo == o])
                cands = [(oo, i) for oo, i in cands if oo != o or i in ok]
        order = ("Lead", "Contact") if self.settings.prefer == "lead" else ("Contact", "Lead")
        for o in order:
            mine = [c for c in cands if c[0] == o]
            if len(mine) == 1:
                return mine[0]
            if mine:
                return None
        return None

    def _first_match(self, found: list[tuple[str, str]]) -> tuple[str, str] | None:
        """Contacts before leads (``prefer: lead`` puts leads first), skipping records linked meanwhile."""
        live = [f for f in found if self.store.link_of_record(f[1]) is None]
        if self.settings.prefer == "lead":
            live.sort(key=lambda x: x[0] != "Lead")
        return live[0] if live else None


def queries(crm: CrmAdapter, soqls: Sequence[str]) -> list[list[Mapping[str, Any]]]:
    """Several SOQL queries: batched where the adapter can (a Composite call per five), else one each."""
    if isinstance(crm, QueriesMany):
        return crm.query_many(soqls)
    return [list(crm.query(soql)) for soql in soqls]


def to_ma(crm_value: Any, like: Any) -> Any:
    """A CRM value as the marketing side keeps it (numbers to ints where the prospect has ints)."""
    if isinstance(crm_value, float) and (isinstance(like, int) or crm_value.is_integer()):
        return int(crm_value)
    return crm_value


def own_write(prospect: Mapping[str, Any]) -> bool:
    """The prospect's last change is the connector's own write: it stamps updatedAt and
    salesforceLastSync with one instant; any later edit moves updatedAt past it."""
    return prospect.get("updatedAt") is not None and prospect.get("updatedAt") == prospect.get(
        "salesforceLastSync"
    )


def object_of(crm_id: str) -> str:
    return "Lead" if crm_id.startswith("00Q") else "Contact"
