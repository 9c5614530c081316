"""The planner on its own: pure decisions from in-memory sides, no database and no HTTP.

``core.sync.planner.Planner`` reads the CRM through the adapter port and the marketing side through
``MarketingView``; here both are dictionaries, so each test states a situation and the operations
it must give (the end-to-end behaviour is covered by the CLI and property tests).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any

from renkei.connector import config as c
from renkei.core.identity import email_key
from renkei.core.sync.judge import Rule, Side
from renkei.core.sync.messages import Action, Op
from renkei.core.sync.planner import OWNER, MarketingView, Planner
from renkei.core.sync.ports import ChangeBatch, CrmAdapter, Cursor, WriteResult

T0 = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(hours=1)
LEAD_FIELDS = ["Id", "Email", "FirstName", "LastName", "Company", "Title", "Phone", "OwnerId", "IsDeleted",
               "IsConverted", "ConvertedContactId", "MasterRecordId", "SystemModstamp", "LeadSource"]  # fmt: skip


class DictCrm:
    """A CRM of dictionaries: reads and the planner's email look-ups; writes are refused (planning
    writes nothing)."""

    def __init__(self, records: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> None:
        self.records = records
        self.reads: list[tuple[str, tuple[str, ...]]] = []

    def changes(self, object_name: str, cursor: Cursor | None, limit: int = 2000) -> ChangeBatch:
        raise AssertionError("the planner does not read changes")

    def read(self, object_name: str, ids: Sequence[str]) -> list[Mapping[str, Any]]:
        self.reads.append((object_name, tuple(ids)))
        return [self.records[object_name][i] for i in ids if i in self.records.get(object_name, {})]

    def create(self, object_name: str, records: Sequence[Mapping[str, Any]]) -> list[WriteResult]:
        raise AssertionError("planning writes nothing")

    def update(self, object_name: str, records: Sequence[Mapping[str, Any]]) -> list[WriteResult]:
        raise AssertionError("planning writes nothing")

    def describe(self, object_name: str) -> Mapping[str, Any]:
        return {"fields": [{"name": n} for n in LEAD_FIELDS]}

    def count(self, object_name: str, where: str | None) -> int:
        return len(self.records.get(object_name, {}))

    def query(self, soql: str) -> list[Mapping[str, Any]]:
        m = re.fullmatch(
            r"SELECT Id, Email FROM (\w+) WHERE Email IN \((.*?)\)( AND IsConverted = false)? ORDER BY Id",
            soql,
        )
        assert m, soql
        keys = set(re.findall(r"'([^']*)'", m[2]))
        return [{"Id": r["Id"], "Email": r["Email"]} for r in self.records.get(m[1], {}).values()
                if email_key(r.get("Email")) in keys and not (m[3] and r.get("IsConverted"))]  # fmt: skip


class DictView:
    """The marketing side as dictionaries: prospects, links (prospect → (CRM id, object)), agreed values."""

    def __init__(self, prospects: dict[int, dict[str, Any]], links: dict[int, tuple[str, str]] | None = None,
                 states: dict[int, dict[str, list[Any]]] | None = None, users: dict[str, int] | None = None) -> None:  # fmt: skip
        self._prospects = prospects
        self._links = links or {}
        self._states = states or {}
        self._users = users or {}

    def prefetch_links(self, crm_ids: set[str], prospect_ids: set[int]) -> None:
        pass

    def link_of_record(self, crm_id: str) -> tuple[int, str] | None:
        return next(((pid, obj) for pid, (cid, obj) in self._links.items() if cid == crm_id), None)

    def link_of_prospect(self, prospect_id: int) -> tuple[str, str] | None:
        return self._links.get(prospect_id)

    def linked_count(self) -> int:
        return len(self._links)

    def prospects(self, prospect_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        return {i: self._prospects[i] for i in prospect_ids if i in self._prospects}

    def prospect_row(self, prospect_id: int) -> dict[str, Any] | None:
        return self._prospects.get(prospect_id)

    def states(self, prospect_ids: Sequence[int]) -> dict[int, dict[str, list[Any]]]:
        return {i: self._states[i] for i in prospect_ids if i in self._states}

    def prospects_by_key(self, keys: set[str]) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for p in self._prospects.values():
            if (k := email_key(p.get("email"))) in keys:
                out.setdefault(k, []).append({"id": p["id"], "isDeleted": p.get("isDeleted", False)})
        return out

    def passing(self, object_name: str, where: str, record_ids: Sequence[str]) -> set[str]:
        assert where == "Title != '除外'"
        return {i for i in record_ids if CRM[object_name][i].get("Title") != "除外"}

    def field_names(self, object_name: str) -> frozenset[str]:
        return frozenset(LEAD_FIELDS)

    def user_for_crm_owner(self, crm_owner: str | None) -> int | None:
        return self._users.get(crm_owner or "")

    def crm_user_for(self, user_id: Any) -> str | None:
        return next((crm for crm, u in self._users.items() if u == user_id), None)


CRM: dict[str, dict[str, dict[str, Any]]] = {}


def lead(i: str, email: str, **fields: Any) -> dict[str, Any]:
    return {"Id": i, "Email": email, "LastName": "山田", "Company": "連携商事", "Title": "課長", "IsDeleted": False,
            "IsConverted": False, "SystemModstamp": T1, "LeadSource": "Web", **fields}  # fmt: skip


def prospect(pid: int, email: str, **fields: Any) -> dict[str, Any]:
    return {"id": pid, "email": email, "lastName": "山田", "company": "連携商事", "jobTitle": "課長",
            "source": "Web", "isDeleted": False, "updatedAt": T0, "salesforceLastSync": T0, OWNER: None, **fields}  # fmt: skip


def plan(cfg: c.ConnectorConfig, changed: Mapping[str, Mapping[str, dict[str, Any]]], view: DictView,
         prospects: Mapping[int, Mapping[str, Any]] | None = None) -> list[Op]:  # fmt: skip
    CRM.clear()
    CRM.update({"Lead": {}, "Contact": {}, **{o: dict(r) for o, r in changed.items()}})
    crm: CrmAdapter = DictCrm(CRM)
    store: MarketingView = view
    return Planner(cfg, crm, store).plan({"Lead": {}, "Contact": {}, **changed}, prospects or {})


DEFAULT = c.parse(c.DEFAULT_YAML)


def test_a_new_lead_becomes_a_prospect_with_its_mapped_values_and_owner() -> None:
    ops = plan(DEFAULT, {"Lead": {"00Q1": lead("00Q1", "Taro@Example.jp", OwnerId="005A")}},
               DictView({}, users={"005A": 7}))  # fmt: skip
    assert [(o.action, o.side, o.record_id) for o in ops] == [(Action.CREATE, Side.MA, "00Q1")]
    assert ops[0].values is not None
    assert ops[0].values["email"] == "Taro@Example.jp" and ops[0].values["jobTitle"] == "課長"
    assert ops[0].values[OWNER] == 7


def test_a_crm_edit_on_a_linked_lead_is_judged_field_by_field_against_the_agreed_values() -> None:
    agreed = {"jobTitle": ["課長", "課長"], "company": ["連携商事", "連携商事"]}
    view = DictView({1: prospect(1, "a@example.jp")}, links={1: ("00Q1", "Lead")}, states={1: agreed})
    ops = plan(DEFAULT, {"Lead": {"00Q1": lead("00Q1", "a@example.jp", Title="部長")}}, view)
    assert [o.action for o in ops] == [Action.UPDATE]
    (write,) = ops[0].writes
    assert (write.to, write.ma_field, write.crm_field, write.old, write.new) == (
        Side.MA,
        "jobTitle",
        "Title",
        "課長",
        "部長",
    )


def test_two_leads_with_one_email_create_one_prospect_and_report_the_collision() -> None:
    ops = plan(DEFAULT, {"Lead": {"00Q1": lead("00Q1", "a@example.jp"), "00Q2": lead("00Q2", " A@EXAMPLE.JP")}},
               DictView({}))  # fmt: skip
    assert [(o.action, o.record_id) for o in ops] == [(Action.CREATE, "00Q1"), (Action.ERROR, "00Q2")]
    assert ops[1].error_kind == "collision" and ops[1].code == "EMAIL_COLLISION"


def test_the_licence_cap_gives_a_visible_error_per_record() -> None:
    cfg = DEFAULT.model_copy(update={"cap": 1})
    view = DictView({1: prospect(1, "x@example.jp")}, links={1: ("00Q9", "Lead")})
    ops = plan(cfg, {"Lead": {"00Q1": lead("00Q1", "a@example.jp")}}, view)
    assert [(o.action, o.error_kind, o.code) for o in ops] == [(Action.ERROR, "cap_reached", "CAP_REACHED")]


def test_a_record_leaving_its_filter_sends_its_prospect_to_the_recycle_bin_or_unlinks_it() -> None:
    objects = {o: c.ObjectSettings(filter="Title != '除外'") for o in c.CRM_OBJECTS}
    view = DictView({1: prospect(1, "a@example.jp")}, links={1: ("00Q1", "Lead")})
    changed = {"Lead": {"00Q1": lead("00Q1", "a@example.jp", Title="除外")}}
    for setting, action in (("recycle", Action.RECYCLE), ("unlink", Action.UNLINK)):
        cfg = DEFAULT.model_copy(update={"objects": objects, "on_filter_mismatch": setting})
        assert [(o.action, o.prospect_id) for o in plan(cfg, changed, view)] == [(action, 1)]


def test_a_prospect_becomes_a_crm_lead_only_once_assigned() -> None:
    unassigned = prospect(5, "new@example.jp", updatedAt=T1)
    assigned = prospect(6, "new2@example.jp", updatedAt=T1, **{OWNER: 7})
    view = DictView({5: unassigned, 6: assigned}, users={"005A": 7})
    ops = plan(DEFAULT, {}, view, prospects={5: unassigned, 6: assigned})
    assert [(o.action, o.side, o.prospect_id) for o in ops] == [
        (Action.SKIP, None, 5),
        (Action.CREATE, Side.CRM, 6),
    ]
    assert ops[1].values is not None and ops[1].values["OwnerId"] == "005A"
    assert ops[1].values["LastName"] == "山田"


def test_an_unlinked_assigned_prospect_matches_an_existing_contact_by_email_instead_of_creating() -> None:
    person = prospect(6, "hanako@example.jp", updatedAt=T1, **{OWNER: 7})
    contact = {"Id": "003A", "Email": "Hanako@example.jp", "LastName": "佐藤", "IsDeleted": False,
               "SystemModstamp": T0}  # fmt: skip
    CRM.clear()
    crm = DictCrm({"Lead": {}, "Contact": {"003A": contact}})
    CRM.update(crm.records)  # type: ignore[arg-type]
    ops = Planner(DEFAULT, crm, DictView({6: person}, users={"005A": 7})).plan(
        {"Lead": {}, "Contact": {}}, {6: person}
    )
    assert (ops[0].action, ops[0].object, ops[0].record_id) == (Action.LINK, "Contact", "003A")
    assert crm.reads == [("Contact", ("003A",))]  # the match read in one call, not per record


def test_a_deleted_lead_recycles_its_prospect_and_a_merge_follows_the_master() -> None:
    view = DictView({1: prospect(1, "a@example.jp"), 2: prospect(2, "b@example.jp")},
                    links={1: ("00Q1", "Lead"), 2: ("00Q2", "Lead")})  # fmt: skip
    ops = plan(DEFAULT, {"Lead": {"00Q1": lead("00Q1", "a@example.jp", IsDeleted=True)}}, view)
    assert [(o.action, o.prospect_id) for o in ops] == [(Action.RECYCLE, 1)]
    merged = lead("00Q1", "a@example.jp", IsDeleted=True, MasterRecordId="00Q2")
    ops = plan(DEFAULT, {"Lead": {"00Q1": merged}}, view)
    assert [(o.action, o.prospect_id, o.target_id) for o in ops] == [(Action.MERGE, 1, "2")]


def test_most_recent_rules_on_the_newer_side_with_its_evidence() -> None:
    fields = [
        f.model_copy(update={"rule": Rule.MOST_RECENT}) if f.ma == "jobTitle" else f for f in DEFAULT.fields
    ]
    cfg = DEFAULT.model_copy(update={"fields": fields})
    later = T1 + dt.timedelta(minutes=5)
    person = prospect(1, "a@example.jp", jobTitle="本部長", updatedAt=later)
    view = DictView({1: person}, links={1: ("00Q1", "Lead")}, states={1: {"jobTitle": ["課長", "課長"]}})
    ops = plan(
        cfg, {"Lead": {"00Q1": lead("00Q1", "a@example.jp", Title="部長")}}, view, prospects={1: person}
    )
    (write,) = ops[0].writes
    assert (write.to, write.new, write.rule) == (Side.CRM, "本部長", "most_recent")


def test_a_move_to_another_record_keeps_only_the_agreed_values_that_record_shares() -> None:
    """prefer: contact — a contact with the lead's email takes the prospect over. The lead's agreed
    ``jobTitle`` says nothing about the contact (another record, another title): that field starts
    afresh (first-sync rules), while the shared company keeps its agreed pair."""
    agreed = {"jobTitle": ["社長", "社長"], "company": ["連携商事", "連携商事"], "lastName": ["山田", "山田"]}
    person = prospect(1, "a@example.jp", jobTitle="社長")
    view = DictView({1: person}, links={1: ("00Q1", "Lead")}, states={1: agreed})
    contact = {"Id": "003C", "Email": "a@example.jp", "LastName": "山田", "Title": None, "IsDeleted": False,
               "SystemModstamp": T1}  # fmt: skip
    CRM.clear()
    CRM.update({"Lead": {"00Q1": lead("00Q1", "a@example.jp", Title="社長")}, "Contact": {"003C": contact}})
    ops = Planner(DEFAULT, DictCrm(CRM), view).plan({"Lead": {}, "Contact": {"003C": contact}}, {})
    move = ops[0]
    assert (move.action, move.record_id, move.target_id) == (Action.MOVE_LINK, "00Q1", "003C")
    assert move.agreed == {"lastName": ["山田", "山田"]}  # Contact has no Company field mapped; Title differs
    # the new pair's first sync follows in the same cycle (most recent record: the contact, whose blank
    # title does not overwrite) — and nothing is planned against the old lead
    assert all(o.record_id != "00Q1" or o is move for o in ops)


def test_a_most_recent_pair_left_apart_by_a_blank_is_not_rewritten_by_an_echo_of_our_own_write() -> None:
    """The first sync left ``assignedToId`` apart (the newer prospect was unassigned, and a blank does
    not overwrite the CRM owner). Our own write to the lead (a score, say) then comes back with a
    newer ``SystemModstamp``: no synced field of the lead changed, so that time is no evidence and
    nothing is written. A real edit of the lead (its title) makes the CRM the newer side again."""
    agreed = {"lastName": "山田", "company": "連携商事", "jobTitle": "課長", "source": "Web",
              "email": "a@example.jp", OWNER: [7, None]}  # fmt: skip
    agreed = {k: v if isinstance(v, list) else [v, v] for k, v in agreed.items()}
    person = prospect(1, "a@example.jp")  # its last change is the connector's own write
    users = {"005U7": 7}
    later = T1 + dt.timedelta(minutes=5)
    echo = lead("00Q1", "a@example.jp", OwnerId="005U7", SystemModstamp=later)
    view = DictView({1: person}, links={1: ("00Q1", "Lead")}, states={1: agreed}, users=users)
    assert plan(DEFAULT, {"Lead": {"00Q1": echo}}, view) == []
    # the prospect edited by someone (not our write) is the newer side, and its blank writes nothing
    edited = {**person, "updatedAt": later}
    view = DictView({1: edited}, links={1: ("00Q1", "Lead")}, states={1: agreed}, users=users)
    assert plan(DEFAULT, {"Lead": {"00Q1": echo}}, view, prospects={1: edited}) == []
    # a real CRM edit after it: the lead is the newer record, and its owner reaches the prospect
    retitled = {**echo, "Title": "部長", "SystemModstamp": later + dt.timedelta(minutes=1)}
    (op,) = plan(DEFAULT, {"Lead": {"00Q1": retitled}}, view)
    assert {(w.ma_field, w.to, w.new, w.evidence) for w in op.writes} == {
        ("jobTitle", Side.MA, "部長", "rule"),
        (OWNER, Side.MA, 7, "record_time"),
    }
