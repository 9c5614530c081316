"""The REST surface with a plain HTTP client: collections, field selection, error shapes (SQLite:
the storage underneath is CrmService's, tested on both backends with simple-salesforce)."""

from __future__ import annotations

from typing import Any

from renkei.sfapi.usage import ApiUsage

from .conftest import Server

V = "/services/data/v60.0"


def lead(name: str, **extra: Any) -> dict[str, Any]:
    return {"attributes": {"type": "Lead"}, "LastName": name, "Company": "Acme", **extra}


def test_collection_create_reports_each_record_in_order(sqlite_server: Server) -> None:
    s = sqlite_server.session()
    body = {"allOrNone": False, "records": [lead("A"), {"attributes": {"type": "Lead"}, "LastName": "NoCompany"},
                                              {"attributes": {"type": "Contact"}, "LastName": "C"}, lead("B", Id="00Q5g000000000AAAA")]}  # fmt: skip
    r = s.post(sqlite_server.base + V + "/composite/sobjects", json=body, timeout=10)
    assert r.status_code == 200
    results = r.json()
    assert [x["success"] for x in results] == [True, False, True, False]
    assert results[1]["errors"] == [
        {
            "statusCode": "REQUIRED_FIELD_MISSING",
            "message": "Required fields are missing: [Company]",
            "fields": ["Company"],
        }
    ]
    assert results[3]["errors"][0]["statusCode"] == "INVALID_FIELD"
    assert (results[0]["id"][:3], results[2]["id"][:3]) == ("00Q", "003")
    assert ApiUsage(sqlite_server.engine).log()[-1].records == 4


def test_collection_update_and_delete(sqlite_server: Server) -> None:
    s = sqlite_server.session()
    created = s.post(
        sqlite_server.base + V + "/composite/sobjects", json={"records": [lead("U1"), lead("U2")]}, timeout=10
    ).json()
    ids = [c["id"] for c in created]
    upd = {"records": [{"attributes": {"type": "Lead"}, "Id": ids[0], "Title": "CTO"}, {"Id": ids[1], "Title": "CEO"},
                       {"Id": "not-an-id", "Title": "x"}]}  # fmt: skip
    r = s.patch(sqlite_server.base + V + "/composite/sobjects", json=upd, timeout=10)
    assert [x["success"] for x in r.json()] == [True, True, False]
    assert r.json()[2]["errors"][0]["statusCode"] == "MALFORMED_ID"
    got = s.get(
        sqlite_server.base + V + f"/sobjects/Lead/{ids[1]}", params={"fields": "Title,LastName"}, timeout=10
    ).json()
    assert {k: v for k, v in got.items() if k != "attributes"} == {
        "Id": ids[1],
        "Title": "CEO",
        "LastName": "U2",
    }
    r = s.delete(
        sqlite_server.base + V + "/composite/sobjects",
        params={"ids": ",".join(ids), "allOrNone": "false"},
        timeout=10,
    )
    assert [(x["id"], x["success"]) for x in r.json()] == [(ids[0], True), (ids[1], True)]
    assert s.get(sqlite_server.base + V + f"/sobjects/Lead/{ids[0]}", timeout=10).status_code == 404


def test_collection_limits_and_malformed_bodies(sqlite_server: Server) -> None:
    s = sqlite_server.session()
    r = s.post(
        sqlite_server.base + V + "/composite/sobjects",
        json={"records": [lead(str(i)) for i in range(201)]},
        timeout=30,
    )
    assert (r.status_code, r.json()[0]["errorCode"]) == (400, "EXCEEDED_ID_LIMIT")
    r = s.post(sqlite_server.base + V + "/composite/sobjects", json=[1, 2], timeout=10)
    assert (r.status_code, r.json()[0]["errorCode"]) == (400, "JSON_PARSER_ERROR")
    r = s.post(
        sqlite_server.base + V + "/sobjects/Lead",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
        timeout=10,
    )  # noqa: E501
    assert (r.status_code, r.json()[0]["errorCode"]) == (400, "JSON_PARSER_ERROR")
    r = s.post(
        sqlite_server.base + V + "/composite/sobjects",
        json={
            "allOrNone": True,
            "records": [lead("x"), {"attributes": {"type": "Contact"}, "LastName": "y"}],
        },
        timeout=10,
    )
    assert (r.status_code, r.json()[0]["errorCode"]) == (400, "INVALID_BATCH_REQUEST")


def test_errors_for_unknown_objects_ids_and_fields(sqlite_server: Server) -> None:
    s = sqlite_server.session()
    r = s.get(sqlite_server.base + V + "/sobjects/Nope/describe", timeout=10)
    assert (r.status_code, r.json()[0]["errorCode"]) == (404, "INVALID_TYPE")
    r = s.get(sqlite_server.base + V + "/sobjects/Lead/short", timeout=10)
    assert (r.status_code, r.json()[0]["errorCode"]) == (404, "NOT_FOUND")
    r = s.get(sqlite_server.base + V + "/query", params={"q": "SELECT Id FROM Nope"}, timeout=10)
    assert r.status_code == 400
    r = s.get(sqlite_server.base + V + "/query", timeout=10)
    assert (r.status_code, r.json()[0]["errorCode"]) == (400, "MALFORMED_QUERY")
    r = s.get(sqlite_server.base + V + "/query/01g5gffffffffffff-200", timeout=10)
    assert (r.status_code, r.json()[0]["errorCode"]) == (400, "INVALID_QUERY_LOCATOR")
    created = s.post(
        sqlite_server.base + V + "/sobjects/Lead/", json={"LastName": "F", "Company": "C"}, timeout=10
    )
    assert created.status_code == 201
    r = s.patch(
        sqlite_server.base + V + f"/sobjects/Lead/{created.json()['id']}",
        json={"NoSuchField__c": 1},
        timeout=10,
    )
    assert (r.status_code, r.json()[0]["errorCode"]) == (400, "INVALID_FIELD")
    assert r.headers["Sforce-Limit-Info"].startswith("api-usage=")
