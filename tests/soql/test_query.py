"""run_query / compile_where / count_where on SQLite and PostgreSQL: whole Salesforce-shaped answers."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from renkei.crm.soql_sql import compile_where, count_where, run_query
from renkei.ids import make_id
from renkei.store.dynamic import load_crm_schema

from .helpers import NOW, TAGS, add_custom_field, insert, lead, system_values, user

U1, U2 = make_id("005", 1), make_id("005", 2)
L1, L2, L3 = make_id("00Q", 1), make_id("00Q", 2), make_id("00Q", 3)
A1 = make_id("001", 1)
C1 = make_id("003", 1)


@pytest.fixture
def org(engine: Engine) -> Engine:
    with engine.begin() as conn:
        schema = add_custom_field(conn, "Lead", TAGS)
        insert(conn, schema, "User", [user(1, "山田", "太郎"), user(2, "Suzuki")])
        insert(conn, schema, "Account", [system_values("001", 1, U2) | {"Name": "株式会社アクメ"}])
        insert(
            conn,
            schema,
            "Contact",
            [system_values("003", 1, U1) | {"LastName": "佐藤", "AccountId": A1, "Email": "sato@example.jp"}],
        )
        insert(
            conn,
            schema,
            "Lead",
            [
                lead(1, Company="Acme", Email="A@Example.com", AnnualRevenue=5000.0, Tags__c="a;b",
                     CreatedDate=dt.datetime(2024, 4, 30, 15, 0, tzinfo=dt.UTC), ConvertedContactId=C1),
                lead(2, 2, Company="acme west", Industry="Banking", NumberOfEmployees=12, Tags__c="c",
                     ConvertedDate=dt.date(2024, 4, 30), CreatedDate=dt.datetime(2024, 4, 30, 14, 59, tzinfo=dt.UTC)),
                lead(3, Company="Zeta 50% off", IsDeleted=True, DoNotCall=True),
            ],
        )  # fmt: skip
    return engine


def query(engine: Engine, soql: str, *, include_deleted: bool = False) -> dict[str, object]:
    with engine.connect() as conn:
        return run_query(conn, load_crm_schema(conn), soql, include_deleted=include_deleted, now=NOW)


def ids(engine: Engine, where: str, *, include_deleted: bool = False) -> list[str]:
    result = query(engine, f"SELECT Id FROM Lead WHERE {where}", include_deleted=include_deleted)
    return [r["Id"] for r in result["records"]]  # type: ignore[index, union-attr]


def attrs(obj: str, record_id: str) -> dict[str, str]:
    return {"type": obj, "url": f"/services/data/v60.0/sobjects/{obj}/{record_id}"}


def test_records_are_salesforce_shaped_with_nested_parents(org: Engine) -> None:
    result = query(
        org,
        "select Id, company, Owner.Name, CreatedDate, ConvertedDate, AnnualRevenue, Tags__c, "
        "ConvertedContact.Account.Name, ConvertedContact.Email from lead order by Company desc",
    )
    assert result == {
        "totalSize": 2,
        "done": True,
        "records": [
            {
                "attributes": attrs("Lead", L2),
                "Id": L2,
                "Company": "acme west",
                "Owner": {"attributes": attrs("User", U2), "Name": "Suzuki"},
                "CreatedDate": "2024-04-30T14:59:00.000+0000",
                "ConvertedDate": "2024-04-30",
                "AnnualRevenue": None,
                "Tags__c": "c",
                "ConvertedContact": None,
            },
            {
                "attributes": attrs("Lead", L1),
                "Id": L1,
                "Company": "Acme",
                "Owner": {"attributes": attrs("User", U1), "Name": "太郎 山田"},
                "CreatedDate": "2024-04-30T15:00:00.000+0000",
                "ConvertedDate": None,
                "AnnualRevenue": 5000.0,
                "Tags__c": "a;b",
                "ConvertedContact": {
                    "attributes": attrs("Contact", C1),
                    "Account": {"attributes": attrs("Account", A1), "Name": "株式会社アクメ"},
                    "Email": "sato@example.jp",
                },
            },
        ],
    }


def test_count_and_aggregates(org: Engine) -> None:
    assert query(org, "SELECT COUNT() FROM Lead") == {"totalSize": 2, "done": True, "records": []}
    assert query(org, "SELECT COUNT() FROM Lead", include_deleted=True)["totalSize"] == 3
    assert query(org, "SELECT COUNT() FROM Lead LIMIT 1")["totalSize"] == 1
    assert query(org, "SELECT COUNT(Id), COUNT(Industry) n, COUNT(Email) FROM Lead") == {
        "totalSize": 1,
        "done": True,
        "records": [{"attributes": {"type": "AggregateResult"}, "expr0": 2, "n": 1, "expr1": 1}],
    }


WHERE_CASES: dict[str, list[str]] = dict(
    [
        ("Company = 'ACME'", [L1]),
        ("Company LIKE 'acme%'", [L1, L2]),
        ("Company LIKE '%50\\% off'", []),
        ("Email = 'a@example.COM'", [L1]),
        ("Industry != 'Banking'", [L1]),
        ("Industry = null", [L1]),
        ("NOT Industry IN ('banking')", [L1]),
        ("Industry NOT IN ('Banking', null)", []),
        ("Tags__c INCLUDES ('A;b')", [L1]),
        ("Tags__c INCLUDES ('a;c', 'C')", [L2]),
        ("Tags__c EXCLUDES ('b')", [L2]),
        ("CreatedDate = TODAY", [L1]),
        ("CreatedDate = YESTERDAY", [L2]),
        ("CreatedDate < TODAY", [L2]),
        ("CreatedDate >= 2024-05-01T00:00:00+09:00", [L1]),
        ("CreatedDate = LAST_N_DAYS:1", [L1, L2]),
        ("ConvertedDate = YESTERDAY", [L2]),
        ("ConvertedDate = 2024-04-30", [L2]),
        ("ConvertedDate = THIS_MONTH", []),
        ("ConvertedDate = LAST_MONTH", [L2]),
        ("NumberOfEmployees >= 12 OR AnnualRevenue > 4999.5", [L1, L2]),
        ("Owner.Name = 'suzuki'", [L2]),
        ("ConvertedContact.Account.Name LIKE '%アクメ'", [L1]),
        ("OwnerId = '005" + U1[3:15] + "'", [L1]),
        ("DoNotCall = false AND (IsConverted = false)", [L1, L2]),
    ]
)


def test_where(org: Engine) -> None:
    assert {where: ids(org, where) for where in WHERE_CASES} == WHERE_CASES


def test_deleted_records_only_with_query_all(org: Engine) -> None:
    assert ids(org, "DoNotCall = true") == []
    assert ids(org, "DoNotCall = true", include_deleted=True) == [L3]
    assert ids(org, "Company LIKE '%50\\% off'", include_deleted=True) == [L3]


def test_order_limit_offset(org: Engine) -> None:
    def names(soql: str) -> list[str]:
        return [r["Company"] for r in query(org, soql, include_deleted=True)["records"]]  # type: ignore[index, union-attr]

    assert names("SELECT Company FROM Lead ORDER BY Company") == ["Acme", "acme west", "Zeta 50% off"]
    assert names("SELECT Company FROM Lead ORDER BY Industry DESC, Company DESC") == [
        "acme west", "Zeta 50% off", "Acme",
    ]  # fmt: skip
    assert names("SELECT Company FROM Lead ORDER BY Industry NULLS LAST, Company LIMIT 2 OFFSET 1") == [
        "Acme", "Zeta 50% off",
    ]  # fmt: skip


def test_compile_where_and_count_where(org: Engine) -> None:
    with org.connect() as conn:
        schema = load_crm_schema(conn)
        table = schema.table("Lead")
        cond = compile_where(schema, "lead", "Owner.Name = '太郎 山田' OR Company = 'zeta 50% off'", now=NOW)
        rows = conn.execute(sa.select(table.c.Id).where(cond).order_by(table.c.Id)).scalars().all()
        assert rows == [L1, L3]
        assert count_where(conn, schema, "Lead", "Company LIKE 'a%'", now=NOW) == 2
        assert count_where(conn, schema, "Lead", "Company != null", now=NOW, include_deleted=True) == 3
