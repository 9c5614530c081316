from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from renkei.clock import FixedClock
from renkei.crm.service import CrmService, Watermark
from renkei.errors import InputError, NotFoundError, ValidationError
from renkei.store import dynamic

T0 = dt.datetime(2026, 4, 1, 0, 0, tzinfo=dt.UTC)


@pytest.fixture
def crm(engine: Engine) -> CrmService:
    return CrmService(engine, clock=FixedClock(T0))


def _count(engine: Engine, object_name: str) -> int:
    with engine.connect() as conn:
        table = dynamic.load_crm_schema(conn).table(object_name)
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_create_and_get_with_defaults(crm: CrmService) -> None:
    lid = crm.create("Lead", {"LastName": "山田", "FirstName": "太郎", "Company": "連携商事",
                              "Email": " yamada@example.jp ", "NumberOfEmployees": "120"})  # fmt: skip
    got = crm.get(
        "Lead", lid[:15], ["Name", "Status", "Email", "NumberOfEmployees", "IsConverted", "CreatedDate"]
    )
    assert got == {"Id": lid, "Name": "山田 太郎", "Status": "Open - Not Contacted", "Email": "yamada@example.jp",
                   "NumberOfEmployees": 120, "IsConverted": False, "CreatedDate": T0}  # fmt: skip
    assert lid.startswith("00Q") and len(lid) == 18


def test_rejected_create_reports_every_error_and_writes_nothing(crm: CrmService, engine: Engine) -> None:
    before = _count(engine, "Lead")
    with pytest.raises(ValidationError) as info:
        crm.create("Lead", {"FirstName": "x" * 41, "Email": "not-an-email", "Foo__c": 1, "IsConverted": True})
    assert [e.code for e in info.value.errors] == [
        "STRING_TOO_LONG", "INVALID_EMAIL_ADDRESS", "INVALID_FIELD", "INVALID_FIELD_FOR_INSERT_UPDATE",
        "REQUIRED_FIELD_MISSING"]  # fmt: skip
    assert info.value.errors[-1].message == "Required fields are missing: [LastName, Company]"
    assert _count(engine, "Lead") == before


def test_collections_partial_and_all_or_none(crm: CrmService, engine: Engine) -> None:
    rows = [{"LastName": "A", "Company": "X"}, {"LastName": "B"}]
    partial = [r.to_dict() for r in crm.create_many("Lead", rows)]
    assert partial[0]["success"] and not partial[1]["success"]
    assert partial[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    before = _count(engine, "Lead")
    strict = [r.to_dict() for r in crm.create_many("Lead", rows, all_or_none=True)]
    assert [e["statusCode"] for r in strict for e in r["errors"]] == [
        "ALL_OR_NONE_OPERATION_ROLLED_BACK", "REQUIRED_FIELD_MISSING"]  # fmt: skip
    assert _count(engine, "Lead") == before


def test_custom_fields_types_and_restricted_picklist(crm: CrmService) -> None:
    crm.add_field("Lead", "Billing_Contact__c", "checkbox")
    crm.add_field("Lead", "Segment__c", "picklist", values=["Enterprise", "SMB"], restricted=True)
    crm.add_field("Lead", "Budget__c", "currency", precision=10, scale=0)
    with pytest.raises(InputError, match="DUPLICATE_DEVELOPER_NAME|already exists"):
        crm.add_field("Lead", "Segment__c", "text")
    with pytest.raises(InputError, match="__c"):
        crm.add_field("Lead", "NoSuffix", "text")
    lid = crm.create("Lead", {"LastName": "L", "Company": "C", "Segment__c": "SMB", "Budget__c": "1,200,000"})
    assert crm.get("Lead", lid, ["Billing_Contact__c", "Segment__c", "Budget__c"]) == {
        "Id": lid, "Billing_Contact__c": False, "Segment__c": "SMB", "Budget__c": 1200000.0}  # fmt: skip
    with pytest.raises(ValidationError) as info:
        crm.update("Lead", lid, {"Segment__c": "Startup", "Budget__c": "99999999999"})
    assert [e.code for e in info.value.errors] == ["INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                                                   "NUMBER_OUTSIDE_VALID_RANGE"]  # fmt: skip
    described = {f["name"]: f for f in crm.describe("Lead")["fields"]}
    assert described["Segment__c"]["restrictedPicklist"] is True and described["Segment__c"]["custom"] is True
    assert [p["value"] for p in described["Segment__c"]["picklistValues"]] == ["Enterprise", "SMB"]


def test_convert_lead_with_opportunity(crm: CrmService) -> None:
    lid = crm.create(
        "Lead", {"LastName": "佐藤", "Company": "佐藤工業", "Email": "sato@example.jp", "LeadSource": "Web"}
    )
    result = crm.convert_lead(lid, opportunity_name="佐藤工業 - 初回")
    lead = crm.get("Lead", lid)
    assert (lead["IsConverted"], lead["Status"], lead["ConvertedContactId"], lead["ConvertedAccountId"],
            lead["ConvertedOpportunityId"], lead["ConvertedDate"]) == (
        True, "Closed - Converted", result.contact_id, result.account_id, result.opportunity_id, T0.date())  # fmt: skip
    contact = crm.get("Contact", result.contact_id, ["Email", "AccountId", "LeadSource"])
    assert contact == {"Id": result.contact_id, "Email": "sato@example.jp", "AccountId": result.account_id,
                       "LeadSource": "Web"}  # fmt: skip
    roles = crm.query(
        f"SELECT ContactId, IsPrimary FROM OpportunityContactRole WHERE OpportunityId = '{result.opportunity_id}'"
    )
    assert [(r["ContactId"], r["IsPrimary"]) for r in roles["records"]] == [(result.contact_id, True)]
    with pytest.raises(ValidationError, match="CANNOT_UPDATE_CONVERTED_LEAD|converted"):
        crm.update("Lead", lid, {"Company": "x"})


def test_convert_into_existing_account_and_contact_fills_only_blanks(crm: CrmService) -> None:
    acc = crm.create("Account", {"Name": "株式会社既存", "Phone": "03-1111-2222"})
    con = crm.create("Contact", {"LastName": "既存", "AccountId": acc, "Title": None})
    lid = crm.create(
        "Lead", {"LastName": "新規", "Company": "既存", "Phone": "090-0000-0000", "Title": "部長"}
    )
    result = crm.convert_lead(lid, account_id=acc, contact_id=con)
    assert (result.account_id, result.contact_id, result.opportunity_id) == (acc, con, None)
    assert crm.get("Account", acc, ["Name", "Phone"]) == {
        "Id": acc,
        "Name": "株式会社既存",
        "Phone": "03-1111-2222",
    }
    assert crm.get("Contact", con, ["LastName", "Title"]) == {"Id": con, "LastName": "既存", "Title": "部長"}


def test_merge_reparents_and_undelete(crm: CrmService) -> None:
    master = crm.create("Account", {"Name": "連携商事"})
    dup = crm.create("Account", {"Name": "連携商事（株）"})
    contact = crm.create("Contact", {"LastName": "田中", "AccountId": dup})
    out = crm.merge("Account", master, [dup])
    assert out["mergedRecordIds"] == [dup] and out["updatedRelatedIds"] == [contact]
    assert crm.get("Contact", contact, ["AccountId"])["AccountId"] == master
    loser = crm.get("Account", dup, ["IsDeleted", "MasterRecordId"], include_deleted=True)
    assert (loser["IsDeleted"], loser["MasterRecordId"]) == (True, master)
    with pytest.raises(NotFoundError):
        crm.get("Account", dup)
    with pytest.raises(InputError, match="three records"):
        crm.merge("Account", master, [])


def test_delete_cascades_and_undelete_restores_exactly(crm: CrmService) -> None:
    acc = crm.create("Account", {"Name": "A"})
    c1 = crm.create("Contact", {"LastName": "one", "AccountId": acc})
    c2 = crm.create("Contact", {"LastName": "two", "AccountId": acc})
    crm.delete("Contact", c2)  # deleted on its own first
    crm.delete("Account", acc)
    assert crm.query("SELECT COUNT() FROM Contact")["totalSize"] == 0
    crm.undelete("Account", acc)
    assert [r["Id"] for r in crm.query("SELECT Id FROM Contact")["records"]] == [c1]
    with pytest.raises(InputError, match="ENTITY_IS_DELETED|deleted"):
        crm.delete("Contact", c2)


def test_change_feed_pages_by_watermark(crm: CrmService) -> None:
    clock = crm.clock
    assert isinstance(clock, FixedClock)
    made = []
    for i in range(5):
        made.append(crm.create("Lead", {"LastName": f"L{i}", "Company": "C"}))
    page = crm.changes_since("Lead", None, limit=3)
    assert [r["Id"] for r in page.records] == made[:3] and not page.done
    page2 = crm.changes_since("Lead", page.watermark, limit=3)
    assert [r["Id"] for r in page2.records] == made[3:] and page2.done
    assert crm.changes_since("Lead", page2.watermark).records == ()
    clock.advance(minutes=5)
    crm.update("Lead", made[0], {"Title": "CEO"})
    crm.delete("Lead", made[1])
    page3 = crm.changes_since("Lead", page2.watermark)
    assert [(r["Id"], r["IsDeleted"]) for r in page3.records] == [(made[0], False), (made[1], True)]
    assert isinstance(page3.watermark, Watermark)
    clock.advance(minutes=5)
    updated = crm.updated("Lead", T0, clock.now())
    deleted = crm.deleted("Lead", T0, clock.now())
    assert set(updated["ids"]) == set(made) - {made[1]}
    assert [d["id"] for d in deleted["deletedRecords"]] == [made[1]]
    with pytest.raises(InputError, match="INVALID_REPLICATION_DATE|days"):
        crm.updated("Lead", T0 - dt.timedelta(days=40), clock.now())


def test_opportunity_stage_derivations_and_ids(crm: CrmService) -> None:
    acc = crm.create("Account", {"Name": "A"})
    opp = crm.create(
        "Opportunity", {"Name": "O", "AccountId": acc, "StageName": "Closed Lost", "CloseDate": "2026-05-10"}
    )
    got = crm.get("Opportunity", opp, ["IsClosed", "IsWon", "Probability", "FiscalYear", "FiscalQuarter"])
    assert got == {
        "Id": opp,
        "IsClosed": True,
        "IsWon": False,
        "Probability": 0.0,
        "FiscalYear": 2026,
        "FiscalQuarter": 2,
    }
    with pytest.raises(ValidationError, match="INVALID_CROSS_REFERENCE_KEY|cross reference"):
        crm.create("Contact", {"LastName": "x", "AccountId": opp})
    with pytest.raises(InputError, match="MALFORMED_ID|incorrect type"):
        crm.get("Lead", "nope")
