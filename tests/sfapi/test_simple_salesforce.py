"""simple-salesforce 1.12.10, unmodified, against ``renkei serve`` over TLS on 127.0.0.1."""

from __future__ import annotations

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceResourceNotFound

from renkei.sfapi.usage import ApiUsage

from .conftest import Server


def client(server: Server) -> Salesforce:
    session = requests.Session()
    session.verify = server.ca
    return Salesforce(instance_url=server.base, session_id=server.token, version="60.0", session=session)


def test_leads_create_get_update_query_delete(server: Server) -> None:
    sf = client(server)
    lead = sf.Lead
    created = lead.create(
        {"LastName": "山田", "FirstName": "太郎", "Company": "株式会社テスト", "Email": "taro@example.jp"}
    )
    assert created["success"] is True and created["errors"] == []
    lead_id = created["id"]
    got = lead.get(lead_id)
    assert (got["attributes"]["type"], got["Id"], got["LastName"], got["Company"], got["Status"]) == (
        "Lead", lead_id, "山田", "株式会社テスト", "Open - Not Contacted",
    )  # fmt: skip
    assert lead.update(lead_id, {"Title": "部長", "Rating": "Hot"}) == 204
    rows = sf.query(f"SELECT Id, Title, Rating FROM Lead WHERE Id = '{lead_id}'")
    assert (rows["totalSize"], rows["done"]) == (1, True)
    assert [(r["Id"], r["Title"], r["Rating"]) for r in rows["records"]] == [(lead_id, "部長", "Hot")]
    assert lead.delete(lead_id) == 204
    assert sf.query(f"SELECT Id FROM Lead WHERE Id = '{lead_id}'")["totalSize"] == 0
    assert sf.query_all(f"SELECT Id, IsDeleted FROM Lead WHERE Id = '{lead_id}'", include_deleted=True)[
        "records"
    ][0]["IsDeleted"]
    with pytest.raises(SalesforceResourceNotFound):
        sf.Lead.get(lead_id)
    assert sf.api_usage["api-usage"].used >= 1


def test_contacts_and_describe(server: Server) -> None:
    sf = client(server)
    contact = sf.Contact
    cid = contact.create({"LastName": "佐藤", "Email": "sato@example.jp"})["id"]
    assert contact.get(cid)["Email"] == "sato@example.jp"
    assert contact.update(cid, {"Department": "営業"}) == 204
    assert contact.get(cid)["Department"] == "営業"
    desc = sf.Contact.describe()
    assert (desc["name"], desc["keyPrefix"]) == ("Contact", "003")
    by_name = {f["name"]: f for f in desc["fields"]}
    assert (by_name["LastName"]["type"], by_name["LastName"]["nillable"]) == ("string", False)
    names = {o["name"] for o in sf.describe()["sobjects"]}
    assert {"Lead", "Contact", "Account"} <= names
    assert contact.delete(cid) == 204


def test_errors_map_to_simple_salesforce_exceptions(server: Server) -> None:
    sf = client(server)
    with pytest.raises(SalesforceMalformedRequest) as missing:
        sf.Lead.create({"FirstName": "No last name"})
    assert missing.value.content[0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    with pytest.raises(SalesforceMalformedRequest) as with_id:
        sf.Lead.create({"Id": "00Q5g000000000AAAA", "LastName": "X", "Company": "Y"})
    assert with_id.value.content[0]["errorCode"] == "INVALID_FIELD"
    with pytest.raises(SalesforceMalformedRequest) as bad_query:
        sf.query("SELEKT Id FROM Lead")
    assert bad_query.value.content[0]["errorCode"] == "MALFORMED_QUERY"
    with pytest.raises(SalesforceResourceNotFound):
        sf.Contact.get("0035g0000000000AAA")


def test_query_paging_with_batch_size_and_query_all(server: Server) -> None:
    sf = client(server)
    rows = [
        {"attributes": {"type": "Lead"}, "LastName": f"L{i:04d}", "Company": "Paging"} for i in range(450)
    ]
    for start in range(0, len(rows), 200):
        result = sf.restful(
            "composite/sobjects",
            method="POST",
            json={"allOrNone": True, "records": rows[start : start + 200]},
        )
        assert all(r["success"] for r in result)
    soql = "SELECT Id, LastName FROM Lead WHERE Company = 'Paging' ORDER BY LastName"
    first = sf.query(soql, headers={"Sforce-Query-Options": "batchSize=200"})
    assert (first["totalSize"], first["done"], len(first["records"])) == (450, False, 200)
    assert first["nextRecordsUrl"].startswith("/services/data/v60.0/query/01g")
    second = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    third = sf.query_more(second["nextRecordsUrl"], identifier_is_url=True)
    assert (len(second["records"]), second["done"], len(third["records"]), third["done"]) == (
        200,
        False,
        50,
        True,
    )
    names = [r["LastName"] for page in (first, second, third) for r in page["records"]]
    assert names == [f"L{i:04d}" for i in range(450)]
    every = sf.query_all(soql, headers={"Sforce-Query-Options": "batchSize=200"})
    assert (every["totalSize"], len(every["records"])) == (450, 450)
    log = [e for e in ApiUsage(server.engine).log() if "/query" in e.path]
    assert [e.records for e in log] == [200, 200, 50, 200, 200, 50]


def test_updated_and_deleted_windows(server: Server) -> None:
    sf = client(server)
    start = server.clock.now()
    lead = sf.Lead
    a = lead.create({"LastName": "A", "Company": "W"})["id"]
    b = lead.create({"LastName": "B", "Company": "W"})["id"]
    assert lead.delete(b) == 204
    # Windows cover whole minutes up to the server's "now": move past the current minute.
    server.clock.advance(minutes=2)
    end = server.clock.now()
    updated = sf.Lead.updated(start, end)
    assert updated["ids"] == [a]
    deleted = sf.Lead.deleted(start, end)
    assert [r["id"] for r in deleted["deletedRecords"]] == [b]
    assert deleted["latestDateCovered"].endswith(":00.000+0000")
