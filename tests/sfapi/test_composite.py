"""The Composite resource: subrequests in order, references between them, Salesforce's limits, and
ONE row of the request log (one call against the allocation) for the whole request."""

from __future__ import annotations

from typing import Any

from renkei.sfapi.usage import ApiUsage

from .conftest import Server

V = "/services/data/v60.0"


def composite(server: Server, subrequests: list[dict[str, Any]], **extra: Any) -> Any:
    s = server.session()
    return s.post(server.base + V + "/composite", json={"compositeRequest": subrequests, **extra}, timeout=10)


def test_subrequests_run_in_order_with_references_in_one_call(sqlite_server: Server) -> None:
    before = len(ApiUsage(sqlite_server.engine).log())
    r = composite(sqlite_server, [
        {"method": "POST", "url": V + "/sobjects/Account", "referenceId": "acct", "body": {"Name": "Acme"}},
        {"method": "POST", "url": V + "/sobjects/Contact", "referenceId": "ct",
         "body": {"LastName": "Ng", "AccountId": "@{acct.id}"}},
        {"method": "GET", "url": V + "/sobjects/Contact/@{ct.id}?fields=LastName,AccountId", "referenceId": "read"},
        {"method": "GET", "url": V + "/query?q=SELECT+Id,+Name+FROM+Account", "referenceId": "q"},
        {"method": "PATCH", "url": V + "/sobjects/Account/@{q.records[0].Id}", "referenceId": "upd",
         "body": {"Name": "Acme Japan"}},
    ])  # fmt: skip
    assert r.status_code == 200
    answers = r.json()["compositeResponse"]
    assert [(a["referenceId"], a["httpStatusCode"]) for a in answers] == [
        ("acct", 201), ("ct", 201), ("read", 200), ("q", 200), ("upd", 204)
    ]  # fmt: skip
    account_id = answers[0]["body"]["id"]
    assert answers[2]["body"]["AccountId"] == account_id
    assert answers[3]["body"]["records"][0]["Id"] == account_id
    log = ApiUsage(sqlite_server.engine).log()[before:]
    assert [(e.method, e.path) for e in log] == [("POST", V + "/composite")]
    assert int(r.headers["Sforce-Limit-Info"].split("=")[1].split("/")[0]) == len(
        ApiUsage(sqlite_server.engine).log()
    )


def test_a_failed_subrequest_halts_the_ones_that_refer_to_it(sqlite_server: Server) -> None:
    r = composite(sqlite_server, [
        {"method": "POST", "url": V + "/sobjects/Lead", "referenceId": "bad", "body": {"LastName": "NoCompany"}},
        {"method": "GET", "url": V + "/sobjects/Lead/@{bad.id}", "referenceId": "after"},
        {"method": "GET", "url": V + "/sobjects/Lead/describe", "referenceId": "independent"},
    ])  # fmt: skip
    answers = r.json()["compositeResponse"]
    assert [a["httpStatusCode"] for a in answers] == [400, 400, 200]
    assert answers[0]["body"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert answers[1]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert answers[2]["body"]["name"] == "Lead"


def test_limits_25_subrequests_and_5_queries(sqlite_server: Server) -> None:
    describe = {"method": "GET", "url": V + "/sobjects/Lead/describe"}
    too_many = composite(sqlite_server, [{**describe, "referenceId": f"d{i}"} for i in range(26)])
    query = {"method": "GET", "url": V + "/queryAll?q=SELECT+Id+FROM+Lead"}
    six_queries = composite(sqlite_server, [{**query, "referenceId": f"q{i}"} for i in range(6)])
    five = composite(sqlite_server, [{**query, "referenceId": f"q{i}"} for i in range(5)])
    writes_all_or_none = composite(
        sqlite_server,
        [{"method": "POST", "url": V + "/sobjects/Account", "referenceId": "a", "body": {"Name": "X"}}],
        allOrNone=True,
    )
    assert [too_many.status_code, six_queries.status_code, five.status_code, writes_all_or_none.status_code] == [
        400, 400, 200, 400
    ]  # fmt: skip
    assert too_many.json()[0]["errorCode"] == "INVALID_BATCH_REQUEST"
    assert six_queries.json()[0]["errorCode"] == "INVALID_BATCH_REQUEST"
