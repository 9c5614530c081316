"""Related records: campaign members, tasks, what conversion and merge do to them, the recycle bin
over time, multi-select picklists, custom fields added by another process, concurrent id blocks."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from renkei import ids
from renkei.clock import FixedClock
from renkei.crm import schema as s
from renkei.crm.service import CrmService, make_custom_field
from renkei.errors import InputError, ValidationError
from renkei.store import dynamic
from renkei.store import tables as t

T0 = dt.datetime(2026, 4, 1, 0, 0, tzinfo=dt.UTC)


@pytest.fixture
def crm(engine: Engine) -> CrmService:
    return CrmService(engine, clock=FixedClock(T0))


def test_campaign_member_copies_the_person_and_follows_the_lead_into_its_contact(crm: CrmService) -> None:
    campaign = crm.create("Campaign", {"Name": "展示会 2026"})
    lead = crm.create("Lead", {"LastName": "伊藤", "FirstName": "花子", "Company": "伊藤製作所",
                               "Email": "ito@example.jp"})  # fmt: skip
    member = crm.create("CampaignMember", {"CampaignId": campaign, "LeadId": lead, "Status": "Responded"})
    task = crm.create("Task", {"WhoId": lead, "Subject": "Call", "Status": "Completed"})
    owner = crm.get("Lead", lead, ["OwnerId"])["OwnerId"]
    fields = ["LeadId", "ContactId", "FirstName", "LastName", "Email", "CompanyOrAccount", "LeadOrContactId",
              "LeadOrContactOwnerId", "HasResponded", "FirstRespondedDate"]  # fmt: skip
    assert crm.get("CampaignMember", member, fields) == {
        "Id": member, "LeadId": lead, "ContactId": None, "FirstName": "花子", "LastName": "伊藤",
        "Email": "ito@example.jp", "CompanyOrAccount": "伊藤製作所", "LeadOrContactId": lead,
        "LeadOrContactOwnerId": owner, "HasResponded": True, "FirstRespondedDate": T0.date()}  # fmt: skip
    assert crm.get("Task", task, ["IsClosed", "AccountId", "WhoId"]) == {
        "Id": task, "IsClosed": True, "AccountId": None, "WhoId": lead}  # fmt: skip

    mark = crm.changes_since("Task", None).watermark
    converted = crm.convert_lead(lead)
    # the clock stands still, yet the moved task is newer than the watermark: the feed sees it
    assert [r["Id"] for r in crm.changes_since("Task", mark).records] == [task]
    moved = crm.get("CampaignMember", member, ["LeadId", "ContactId", "LeadOrContactId", "CompanyOrAccount"])
    assert moved == {"Id": member, "LeadId": lead, "ContactId": converted.contact_id,
                     "LeadOrContactId": converted.contact_id, "CompanyOrAccount": "伊藤製作所"}  # fmt: skip
    assert crm.get("Task", task, ["WhoId", "AccountId"]) == {
        "Id": task, "WhoId": converted.contact_id, "AccountId": converted.account_id}  # fmt: skip


def test_campaign_member_needs_a_person_and_task_account_follows_what(crm: CrmService) -> None:
    campaign = crm.create("Campaign", {"Name": "Webinar"})
    with pytest.raises(ValidationError) as info:
        crm.create("CampaignMember", {"CampaignId": campaign})
    assert [(e.code, e.fields) for e in info.value.errors] == [
        ("REQUIRED_FIELD_MISSING", ("LeadId", "ContactId"))
    ]
    acc = crm.create("Account", {"Name": "連携商事"})
    opp = crm.create("Opportunity", {"Name": "O", "AccountId": acc, "StageName": "Prospecting",
                                     "CloseDate": "2026-06-30"})  # fmt: skip
    task = crm.create("Task", {"WhatId": opp, "Subject": "Send Quote"})
    assert crm.get("Task", task, ["IsClosed", "AccountId", "Status", "Priority"]) == {
        "Id": task, "IsClosed": False, "AccountId": acc, "Status": "Not Started", "Priority": "Normal"}  # fmt: skip


def test_merged_loser_comes_back_by_undelete_without_its_children(crm: CrmService) -> None:
    master = crm.create("Lead", {"LastName": "木村", "Company": "木村商店"})
    dup = crm.create("Lead", {"LastName": "木村", "Company": "木村商店 (株)"})
    campaign = crm.create("Campaign", {"Name": "C"})
    member = crm.create("CampaignMember", {"CampaignId": campaign, "LeadId": dup})
    task = crm.create("Task", {"WhoId": dup, "Subject": "Email"})
    out = crm.merge("Lead", master, [dup[:15]])
    assert out == {"id": master, "success": True, "mergedRecordIds": [dup], "updatedRelatedIds": [member, task],
                   "errors": []}  # fmt: skip
    crm.undelete("Lead", dup)
    assert crm.get("Lead", dup, ["IsDeleted", "MasterRecordId"]) == {
        "Id": dup, "IsDeleted": False, "MasterRecordId": master}  # fmt: skip
    assert crm.get("CampaignMember", member, ["LeadId", "LeadOrContactId"]) == {
        "Id": member, "LeadId": master, "LeadOrContactId": master}  # fmt: skip
    assert crm.get("Task", task, ["WhoId"]) == {"Id": task, "WhoId": master}


def test_writes_to_deleted_records_and_ids_in_creates_are_rejected(crm: CrmService) -> None:
    lead = crm.create("Lead", {"LastName": "L", "Company": "C"})
    with pytest.raises(ValidationError) as info:
        crm.create("Lead", {"Id": lead, "LastName": "L", "Company": "C"})
    assert [e.code for e in info.value.errors] == ["INVALID_FIELD"]
    crm.delete("Lead", lead)
    results = crm.update_many("Lead", [{"Id": lead, "Title": "x"}, {"Id": "00Q000000000000AAA", "Title": "y"},
                                       {"Id": "003000000000001AAA", "Title": "z"}])  # fmt: skip
    assert [r.to_dict()["errors"][0]["statusCode"] for r in results] == [
        "ENTITY_IS_DELETED", "NOT_FOUND", "NOT_FOUND"]  # fmt: skip
    with pytest.raises(InputError, match="UNDELETE_FAILED|not in the recycle bin"):
        crm.undelete("Lead", crm.create("Lead", {"LastName": "M", "Company": "C"}))


def test_purge_removes_only_what_is_old_enough(crm: CrmService, engine: Engine) -> None:
    clock = crm.clock
    assert isinstance(clock, FixedClock)
    old = crm.create("Lead", {"LastName": "old", "Company": "C"})
    recent = crm.create("Lead", {"LastName": "recent", "Company": "C"})
    crm.delete("Lead", old)
    clock.advance(days=10)
    crm.delete("Lead", recent)
    clock.advance(days=6)
    assert crm.purge_recycle_bin(15) == 1
    with engine.connect() as conn:
        table = dynamic.load_crm_schema(conn).table("Lead")
        left = [r.Id for r in conn.execute(sa.select(table.c.Id).order_by(table.c.Id))]
    assert left == [recent]
    assert crm.deleted("Lead", clock.now() - dt.timedelta(days=14), clock.now()) == {
        "deletedRecords": [{"id": recent, "deletedDate": T0 + dt.timedelta(days=10)}],
        "earliestDateAvailable": clock.now() - dt.timedelta(days=15),
        "latestDateCovered": clock.now()}  # fmt: skip
    with pytest.raises(InputError, match="15 days"):
        crm.deleted("Lead", clock.now() - dt.timedelta(days=16), clock.now())


def test_multipicklist_values_are_checked_one_by_one(crm: CrmService) -> None:
    crm.add_field("Lead", "Interests__c", "multipicklist", values=["MA", "SFA", "CRM"], restricted=True)
    lead = crm.create("Lead", {"LastName": "L", "Company": "C", "Interests__c": "MA;CRM"})
    assert crm.get("Lead", lead, ["Interests__c"]) == {"Id": lead, "Interests__c": "MA;CRM"}
    with pytest.raises(ValidationError) as info:
        crm.update("Lead", lead, {"Interests__c": "MA;ERP"})
    assert [(e.code, e.fields) for e in info.value.errors] == [
        ("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", ("Interests__c",))]  # fmt: skip
    assert crm.get("Lead", lead, ["Interests__c"]) == {"Id": lead, "Interests__c": "MA;CRM"}


def test_a_field_added_by_another_process_is_seen_at_once(crm: CrmService, engine: Engine) -> None:
    assert crm.schema().object("Lead").field("Partner__c") is None
    field = make_custom_field("Partner__c", "checkbox")
    # what another process does: the definition and the column, without this process's invalidate()
    with engine.begin() as conn:
        conn.execute(t.crm_custom_field.insert().values(
            object_name="Lead", api_name="Partner__c", definition=dynamic.field_to_json(field),
            created_at=T0 + dt.timedelta(seconds=1)))  # fmt: skip
        dynamic.add_column(conn, s.table_name("Lead"), field)
    lead = crm.create("Lead", {"LastName": "L", "Company": "C", "Partner__c": "true"})
    assert crm.get("Lead", lead, ["Partner__c"]) == {"Id": lead, "Partner__c": True}


def test_concurrent_writers_get_distinct_ids(pg_url: str) -> None:
    engines = [sa.create_engine(pg_url) for _ in range(4)]
    made: list[list[str]] = [[] for _ in engines]

    def work(i: int) -> None:
        crm = CrmService(engines[i], clock=FixedClock(T0))
        for n in range(15):
            made[i].append(crm.create("Account", {"Name": f"A{i}-{n}"}))
        made[i] += crm.insert_bulk("Account", [{"Name": f"B{i}-{n}"} for n in range(20)])

    CrmService(engines[0]).create("Account", {"Name": "first"})  # the system user exists before the race
    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(engines))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for e in engines:
        e.dispose()
    every = [rid for part in made for rid in part]
    assert len(every) == len(set(every)) == 4 * 35
    assert all(ids.normalize(rid[:15]) == rid and rid.startswith("001") for rid in every)


def test_a_writer_waits_for_the_write_before_it(engine: Engine) -> None:
    """SystemModstamps follow commit order: a write starts only when the one before it ended."""
    crm = CrmService(engine)
    crm.create("Lead", {"LastName": "A", "Company": "C"})  # the system user exists before
    finished = threading.Event()
    made: list[str] = []

    def other() -> None:
        made.append(CrmService(engine).create("Lead", {"LastName": "B", "Company": "C"}))
        finished.set()

    with crm._write():
        th = threading.Thread(target=other)
        th.start()
        assert not finished.wait(0.5)  # held by the open write
    th.join()
    assert finished.is_set() and len(made) == 1
