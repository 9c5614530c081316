"""ProspectService and the small marketing services, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from renkei.clock import FixedClock
from renkei.errors import InputError, NotFoundError, ValidationError
from renkei.marketing.service import (
    ALLOW_DUPLICATE_EMAILS,
    CampaignService,
    ListService,
    ProspectService,
    SettingService,
    TagService,
    UserService,
    to_json,
)
from renkei.store import tables as t

T0 = dt.datetime(2026, 4, 1, 0, 0, tzinfo=dt.UTC)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def prospects(engine: Engine, clock: FixedClock) -> ProspectService:
    return ProspectService(engine, clock=clock, actor="test", user_id=7)


def _blank_prospect(**values: Any) -> dict[str, Any]:
    """A new prospect as created at T0 by user 7, with ``values`` over the defaults."""
    from renkei.marketing.schema import PROSPECT_FIELDS

    record: dict[str, Any] = {name: None for name in PROSPECT_FIELDS}
    record.update(
        score=0, optedOut=False, isDoNotEmail=False, isDoNotCall=False, doNotSell=False, isReviewed=False,
        isStarred=False, isEmailHardBounced=False, softBounceCount=0, isDeleted=False, createdAt=T0,
        updatedAt=T0, createdById=7, updatedById=7,
    )  # fmt: skip
    record.update(values)
    return record


def test_create_returns_the_whole_prospect(prospects: ProspectService) -> None:
    got = prospects.create(
        {"email": " Hanako@Example.co.jp ", "firstName": "花子", "lastName": "山田", "employees": "50",
         "isDoNotEmail": "true", "assignedToId": "3", "company": "サンプル商事"}
    )  # fmt: skip
    assert got == _blank_prospect(
        id=got["id"], email="Hanako@Example.co.jp", firstName="花子", lastName="山田", employees="50",
        isDoNotEmail=True, assignedToId=3, company="サンプル商事",
    )  # fmt: skip
    assert prospects.get(got["id"]) == got


def test_to_json_uses_iso_datetimes_with_offset(prospects: ProspectService) -> None:
    got = to_json(prospects.create({"email": "a@example.com"}))
    assert (got["createdAt"], got["updatedAt"], got["grade"], got["score"]) == (
        "2026-04-01T00:00:00+00:00",
        "2026-04-01T00:00:00+00:00",
        None,
        0,
    )


@pytest.mark.parametrize(
    ("values", "code", "message"),
    [
        ({"firstName": "x"}, "REQUIRED_FIELD_MISSING", "email: required field missing"),
        ({"email": "no-at-sign"}, "INVALID_EMAIL_ADDRESS", "email: invalid email address: 'no-at-sign'"),
        ({"email": "a@b.jp", "firstName": "x" * 41}, "STRING_TOO_LONG", "firstName: data value too large: 41 characters (max 40)"),
        ({"email": "a@b.jp", "score": "many"}, "INVALID_TYPE_ON_FIELD_IN_RECORD", "score: value not of required type int: 'many'"),
        ({"email": "a@b.jp", "optedOut": "perhaps"}, "INVALID_TYPE_ON_FIELD_IN_RECORD", "optedOut: value not of required type boolean: 'perhaps'"),
        ({"email": "a@b.jp", "shoeSize": "42"}, "INVALID_FIELD", "No such column 'shoeSize' on prospect"),
        ({"email": "a@b.jp", "salesforceId": "00Q5g0000000001AAA"}, "INVALID_FIELD_FOR_INSERT_UPDATE", "salesforceId: field is read-only"),
        ({"email": "a@b.jp", "grade": "Z"}, "INVALID_FIELD", "grade: not a grade letter: 'Z'"),
    ],
)  # fmt: skip
def test_create_rejects_bad_values_and_writes_nothing(
    prospects: ProspectService, engine: Engine, values: dict[str, Any], code: str, message: str
) -> None:
    with pytest.raises(ValidationError) as info:
        prospects.create(values)
    assert (info.value.code, info.value.message) == (code, message)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.prospect)).scalar_one() == 0


def test_every_bad_field_is_reported_at_once(prospects: ProspectService) -> None:
    with pytest.raises(ValidationError) as info:
        prospects.create({"email": "bad", "score": "x"})
    assert [e.fields for e in info.value.errors] == [("email",), ("score",)]


def test_find_by_id_or_email_matches_the_email_key(prospects: ProspectService) -> None:
    created = prospects.create({"email": "Taro@Example.JP"})
    assert prospects.find(str(created["id"])) == created
    assert prospects.find("ｔａｒｏ＠example.jp") == created
    assert prospects.find_by_email("TARO@example.jp ") == [created]
    with pytest.raises(NotFoundError):
        prospects.find("nobody@example.jp")


def test_duplicate_email_is_rejected_unless_the_setting_allows_it(
    engine: Engine, prospects: ProspectService, clock: FixedClock
) -> None:
    first = prospects.create({"email": "dup@example.jp"})
    with pytest.raises(InputError) as info:
        prospects.create({"email": "DUP@example.jp"})
    assert info.value.code == "DUPLICATE_VALUE"
    other = prospects.create({"email": "other@example.jp"})
    with pytest.raises(InputError) as info:
        prospects.update(other["id"], {"email": "dup@example.jp"})
    assert info.value.code == "DUPLICATE_VALUE"

    SettingService(engine, clock=clock).set(ALLOW_DUPLICATE_EMAILS, True)
    clock.advance(minutes=1)
    second = prospects.create({"email": "DUP@example.jp"})
    assert [p["id"] for p in prospects.find_by_email("dup@example.jp")] == [first["id"], second["id"]]
    assert prospects.find("dup@example.jp")["id"] == second["id"]  # the latest updated


def test_update_changes_writable_fields_and_update_system_any(
    prospects: ProspectService, clock: FixedClock
) -> None:
    p = prospects.create({"email": "u@example.jp", "company": "旧社名"})
    clock.advance(hours=1)
    got = prospects.update(p["id"], {"company": "新社名", "phone": "03-1234-5678", "isDoNotCall": ""})
    assert got == {**p, "company": "新社名", "phone": "03-1234-5678", "updatedAt": T0 + dt.timedelta(hours=1)}
    with pytest.raises(ValidationError) as info:
        prospects.update(p["id"], {"salesforceLeadId": "00Q5g0000000001AAA"})
    assert info.value.code == "INVALID_FIELD_FOR_INSERT_UPDATE"
    synced = prospects.update_system(p["id"], {"salesforceLeadId": "00Q5g0000000001AAA", "grade": "B"})
    assert (synced["salesforceLeadId"], synced["grade"]) == ("00Q5g0000000001AAA", "B")
    with pytest.raises(NotFoundError):
        prospects.update(999, {"company": "x"})


def test_recycle_bin(prospects: ProspectService, clock: FixedClock) -> None:
    p = prospects.create({"email": "bin@example.jp"})
    clock.advance(minutes=5)
    prospects.delete(p["id"])
    deleted_at = T0 + dt.timedelta(minutes=5)
    with pytest.raises(NotFoundError):
        prospects.get(p["id"])
    assert prospects.get(p["id"], include_deleted=True) == {
        **p, "isDeleted": True, "deletedAt": deleted_at, "updatedAt": deleted_at
    }  # fmt: skip
    assert prospects.list() == []
    assert [r["id"] for r in prospects.list(include_deleted=True)] == [p["id"]]
    assert prospects.find_by_email("bin@example.jp") == []
    # a deleted prospect's email is free again; undelete then refuses the duplicate
    other = prospects.create({"email": "bin@example.jp"})
    with pytest.raises(InputError) as info:
        prospects.undelete(p["id"])
    assert info.value.code == "DUPLICATE_VALUE"
    prospects.delete(other["id"])
    restored = prospects.undelete(p["id"])
    assert (restored["isDeleted"], restored["deletedAt"]) == (False, None)
    with pytest.raises(InputError) as info:
        prospects.undelete(p["id"])
    assert info.value.code == "UNDELETE_FAILED"


def test_list_pages_and_orders(prospects: ProspectService) -> None:
    ids = [
        prospects.create({"email": f"p{i}@example.jp", "lastName": name})["id"]
        for i, name in enumerate("cab")
    ]
    assert [p["id"] for p in prospects.list()] == ids
    assert [p["lastName"] for p in prospects.list(order_by="-lastName")] == ["c", "b", "a"]
    assert [p["id"] for p in prospects.list(limit=1, offset=1)] == ids[1:2]
    with pytest.raises(InputError):
        prospects.list(order_by="emailKey")


def test_custom_fields_of_every_kind(prospects: ProspectService) -> None:
    assert (
        prospects.add_field("Seminar", "picklist", values=["東京", "大阪"], restricted=True).name
        == "Seminar__c"
    )
    prospects.add_field("Budget__c", "currency", precision=10, scale=0)
    prospects.add_field("Member", "checkbox")
    prospects.add_field("Joined", "date")
    prospects.add_field("Memo", "text", length=10)
    prospects.add_field("Interests", "multipicklist", values=["MA", "SFA"])
    assert [f.name for f in prospects.schema().custom_fields] == [
        "Seminar__c", "Budget__c", "Member__c", "Joined__c", "Memo__c", "Interests__c"
    ]  # fmt: skip
    p = prospects.create(
        {"email": "c@example.jp", "Seminar__c": "東京", "Budget__c": "1200000", "Joined__c": "2025-04-01",
         "Interests__c": "MA;SFA"}
    )  # fmt: skip
    assert {k: p[k] for k in ("Seminar__c", "Budget__c", "Member__c", "Joined__c", "Memo__c", "Interests__c")} == {
        "Seminar__c": "東京", "Budget__c": 1200000.0, "Member__c": False, "Joined__c": dt.date(2025, 4, 1),
        "Memo__c": None, "Interests__c": "MA;SFA",
    }  # fmt: skip
    for values, code in [
        ({"Seminar__c": "名古屋"}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
        ({"Memo__c": "x" * 11}, "STRING_TOO_LONG"),
        ({"Joined__c": "April"}, "INVALID_TYPE_ON_FIELD_IN_RECORD"),
        ({"Budget__c": "1" * 11}, "NUMBER_OUTSIDE_VALID_RANGE"),
    ]:
        with pytest.raises(ValidationError) as info:
            prospects.update(p["id"], values)
        assert info.value.code == code


@pytest.mark.parametrize(
    ("name", "type_", "kw", "code"),
    [
        ("Seminar", "picklist", {}, "INVALID_FIELD"),
        ("Seminar", "colour", {}, "INVALID_TYPE"),
        ("2bad", "text", {}, "INVALID_FIELD"),
        ("Memo", "text", {"length": 256}, "INVALID_FIELD"),
        ("Amount", "number", {"precision": 5, "scale": 6}, "INVALID_FIELD"),
    ],
)
def test_bad_custom_field_definitions(
    prospects: ProspectService, name: str, type_: str, kw: dict[str, Any], code: str
) -> None:
    with pytest.raises(InputError) as info:
        prospects.add_field(name, type_, **kw)
    assert info.value.code == code
    assert prospects.schema().custom_fields == ()


def test_a_custom_field_name_is_added_once(prospects: ProspectService) -> None:
    prospects.add_field("Rank", "text")
    with pytest.raises(InputError) as info:
        prospects.add_field("rank__c", "text")
    assert info.value.code == "DUPLICATE_DEVELOPER_NAME"


def test_users_campaigns_lists_and_tags(
    engine: Engine, prospects: ProspectService, clock: FixedClock
) -> None:
    users = UserService(engine, clock=clock)
    admin = users.create(
        {"email": "admin@renkei.example", "role": "admin", "salesforceId": "0055g0000000001AAA"}
    )
    assert admin == {
        "id": admin["id"], "email": "admin@renkei.example", "firstName": None, "lastName": None, "jobTitle": None,
        "role": "admin", "salesforceId": "0055g0000000001AAA", "isActive": True, "timezone": "Asia/Tokyo",
        "language": "ja", "createdAt": T0, "updatedAt": T0,
    }  # fmt: skip
    assert users.for_crm_user("0055g0000000001AAA") == admin
    assert users.find_by_email("Admin@Renkei.Example") == admin
    with pytest.raises(InputError) as info:
        users.create({"email": "admin@renkei.example"})
    assert info.value.code == "DUPLICATE_VALUE"

    campaign = CampaignService(engine, clock=clock).create({"name": "展示会2026", "cost": 500000.0})
    assert (campaign["name"], campaign["cost"], campaign["isActive"]) == ("展示会2026", 500000.0, True)

    lists = ListService(engine, clock=clock)
    seminar = lists.create({"name": "seminar", "title": "セミナー案内"})
    a = prospects.create({"email": "a@example.jp"})
    b = prospects.create({"email": "b@example.jp"})
    assert lists.add_prospects(seminar["id"], [a["id"], b["id"], a["id"]]) == 2
    assert lists.add_prospects(seminar["id"], [a["id"]]) == 0
    assert [(m["prospectId"], m["optedOut"]) for m in lists.members(seminar["id"])] == [
        (a["id"], False), (b["id"], False)
    ]  # fmt: skip
    assert lists.remove_prospects(seminar["id"], [a["id"]]) == 1
    assert lists.lists_of(b["id"]) == [seminar["id"]]
    with pytest.raises(NotFoundError):
        lists.add_prospects(seminar["id"], [999])
    dynamic_list = lists.create({"name": "hot", "isDynamic": True})
    with pytest.raises(InputError):
        lists.add_prospects(dynamic_list["id"], [a["id"]])

    tags = TagService(engine, clock=clock)
    tags.add("展示会", "prospect", a["id"])
    tags.add("展示会", "prospect", a["id"])
    tags.add("VIP", "prospect", a["id"])
    assert tags.tags_of("prospect", a["id"]) == ["VIP", "展示会"]
    assert tags.remove("VIP", "prospect", a["id"]) is True
    assert tags.tags_of("prospect", a["id"]) == ["展示会"]
    assert [tag["name"] for tag in tags.list()] == ["展示会", "VIP"]
