"""Bulk API 2.0: simple-salesforce's bulk2 client, unmodified, against ``renkei serve``; the job
states and result files over plain HTTP; jobs that survive a restart (processing resumes)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import time
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from simple_salesforce import Salesforce
from sqlalchemy.engine import Engine

from renkei.connector.adapters.salesforce import SalesforceAdapter
from renkei.crm.service import CrmService
from renkei.sfapi.bulk import CLAIM_TIMEOUT, BulkJobs, JobType
from renkei.sfapi.usage import ApiUsage
from renkei.store.tables_sfapi import sfapi_bulk_job

from .conftest import Server, add_user
from .test_contract import salesforce_client

V = "/services/data/v60.0"


def sf_client(server: Server) -> Salesforce:
    session = requests.Session()
    session.verify = server.ca
    return Salesforce(instance_url=server.base, session_id=server.token, version="60.0", session=session)


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_simple_salesforce_bulk2_inserts_updates_queries_and_deletes(server: Server) -> None:
    sf = sf_client(server)
    records = [{"LastName": f"L{i:03d}", "Company": "Acme", "AnnualRevenue": str(i * 10)} for i in range(250)]
    records[7] = {"LastName": "NoCompany", "Company": "", "AnnualRevenue": "1"}  # REQUIRED_FIELD_MISSING
    [inserted] = sf.bulk2.Lead.insert(records=records, wait=0)
    assert (inserted["numberRecordsProcessed"], inserted["numberRecordsFailed"], inserted["numberRecordsTotal"]) == (
        250, 1, 250
    )  # fmt: skip
    job_id = inserted["job_id"]
    ok = rows(sf.bulk2.Lead.get_successful_records(job_id))
    failed = rows(sf.bulk2.Lead.get_failed_records(job_id))
    assert len(ok) == 249 and {r["sf__Created"] for r in ok} == {"true"}
    assert [(r["LastName"], r["sf__Error"].split(":")[0]) for r in failed] == [
        ("NoCompany", "REQUIRED_FIELD_MISSING")
    ]
    crm = CrmService(server.engine)
    assert crm.get("Lead", ok[0]["sf__Id"])["AnnualRevenue"] == float(ok[0]["AnnualRevenue"])

    [updated] = sf.bulk2.Lead.update(records=[{"Id": r["sf__Id"], "Title": "部長"} for r in ok[:10]], wait=0)
    assert (updated["numberRecordsProcessed"], updated["numberRecordsFailed"]) == (10, 0)
    assert crm.get("Lead", ok[3]["sf__Id"])["Title"] == "部長"

    pages = list(
        sf.bulk2.Lead.query(
            "SELECT Id, LastName, Title FROM Lead WHERE Title = '部長'", max_records=4, wait=0
        )
    )
    assert [len(rows(p)) for p in pages] == [4, 4, 2]
    assert sorted(r["Id"] for p in pages for r in rows(p)) == sorted(r["sf__Id"] for r in ok[:10])

    [deleted] = sf.bulk2.Lead.delete(records=[{"Id": r["sf__Id"]} for r in ok[:5]], wait=0)
    assert (deleted["numberRecordsProcessed"], deleted["numberRecordsFailed"]) == (5, 0)
    assert crm.query("SELECT Id FROM Lead WHERE Title = '部長'")["totalSize"] == 5


def wait_for(session: requests.Session, url: str, states: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        info = session.get(url, timeout=10).json()
        if info["state"] in states or time.monotonic() > deadline:
            return dict(info)
        time.sleep(0.05)


def test_ingest_job_states_and_result_files_over_http(sqlite_server: Server) -> None:
    s = sqlite_server.session()
    base = sqlite_server.base + V + "/jobs/ingest"
    crm = CrmService(sqlite_server.engine)
    existing = crm.create("Account", {"Name": "Old", "Website": "a1.example.jp"})
    job = s.post(base, json={"object": "Account", "operation": "upsert", "externalIdFieldName": "Website",
                             "contentType": "CSV", "lineEnding": "LF"}, timeout=10).json()  # fmt: skip
    assert (job["state"], job["operation"], job["object"], job["externalIdFieldName"]) == (
        "Open", "upsert", "Account", "Website"
    )  # fmt: skip
    url = f"{base}/{job['id']}"
    csv_body = 'Website,Name\na1.example.jp,"Renamed, Inc."\na2.example.jp,New\na3.example.jp,\n'
    put = s.put(url + "/batches", data=csv_body.encode(), headers={"Content-Type": "text/csv"}, timeout=10)
    assert put.status_code == 201
    again = s.put(url + "/batches", data=csv_body.encode(), headers={"Content-Type": "text/csv"}, timeout=10)
    assert again.status_code == 400 and again.json()[0]["errorCode"] == "INVALIDJOBSTATE"
    closed = s.patch(url, json={"state": "UploadComplete"}, timeout=10).json()
    assert closed["state"] == "UploadComplete"
    info = wait_for(s, url, {"JobComplete", "Failed"})
    assert (info["state"], info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (
        "JobComplete",
        3,
        1,
    )
    ok = rows(s.get(url + "/successfulResults/", timeout=10).text)
    assert [(r["sf__Id"] == existing, r["sf__Created"], r["Website"], r["Name"]) for r in ok] == [
        (True, "false", "a1.example.jp", "Renamed, Inc."), (False, "true", "a2.example.jp", "New")
    ]  # fmt: skip
    assert crm.get("Account", existing)["Name"] == "Renamed, Inc."
    failed = rows(s.get(url + "/failedResults/", timeout=10).text)
    assert [(r["Website"], r["sf__Error"].split(":")[0]) for r in failed] == [
        ("a3.example.jp", "REQUIRED_FIELD_MISSING")
    ]
    assert s.get(url + "/unprocessedrecords/", timeout=10).text == "Website,Name\n"
    listed = s.get(base, timeout=10).json()
    assert (listed["done"], [j["id"] for j in listed["records"]]) == (True, [job["id"]])
    assert s.delete(url, timeout=10).status_code == 204
    assert s.get(url, timeout=10).status_code == 404


def test_an_unknown_column_fails_the_job_and_an_aborted_job_keeps_its_rows_unprocessed(
    sqlite_server: Server,
) -> None:
    s = sqlite_server.session()
    base = sqlite_server.base + V + "/jobs/ingest"
    bad = s.post(base, json={"object": "Lead", "operation": "insert"}, timeout=10).json()
    s.put(f"{base}/{bad['id']}/batches", data=b"LastName,Nope__c\nA,1\n", timeout=10)
    s.patch(f"{base}/{bad['id']}", json={"state": "UploadComplete"}, timeout=10)
    info = wait_for(s, f"{base}/{bad['id']}", {"JobComplete", "Failed"})
    assert (info["state"], info["errorMessage"]) == (
        "Failed",
        "INVALIDBATCH : InvalidBatch : Field name not found : Nope__c",
    )
    assert rows(s.get(f"{base}/{bad['id']}/unprocessedrecords", timeout=10).text) == [
        {"LastName": "A", "Nope__c": "1"}
    ]

    aborted = s.post(base, json={"object": "Lead", "operation": "insert"}, timeout=10).json()
    s.put(f"{base}/{aborted['id']}/batches", data=b"LastName,Company\nA,X\nB,Y\n", timeout=10)
    assert (
        s.patch(f"{base}/{aborted['id']}", json={"state": "Aborted"}, timeout=10).json()["state"] == "Aborted"
    )
    assert len(rows(s.get(f"{base}/{aborted['id']}/unprocessedrecords", timeout=10).text)) == 2
    reopen = s.patch(f"{base}/{aborted['id']}", json={"state": "UploadComplete"}, timeout=10)
    assert (reopen.status_code, reopen.json()[0]["errorCode"]) == (400, "INVALIDJOBSTATE")
    bad_op = s.post(base, json={"object": "Lead", "operation": "merge"}, timeout=10)
    assert (bad_op.status_code, bad_op.json()[0]["errorCode"]) == (400, "INVALIDJOB")


def test_jobs_survive_a_restart_and_a_stale_claim_resumes_after_the_last_chunk(engine: Engine) -> None:
    user = add_user(engine, "bulk@example.jp", "bulk@example.jp")
    jobs = BulkJobs(engine)
    job = jobs.create_ingest(user, {"object": "Lead", "operation": "insert"})
    body = "LastName,Company\n" + "".join(f"L{i},Acme\n" for i in range(450))
    assert jobs.upload(job["id"], body.encode()) == 450
    jobs.set_state(job["id"], JobType.INGEST, {"state": "UploadComplete"})
    # "restart": a new service on the same database finds the job waiting
    restarted = BulkJobs(engine)
    assert restarted.info(job["id"], JobType.INGEST)["state"] == "UploadComplete"
    assert restarted.needs_processing(job["id"], JobType.INGEST)
    # a worker claimed it, saved the first chunk, and died
    long_ago = dt.datetime.now(dt.UTC) - CLAIM_TIMEOUT - dt.timedelta(minutes=1)
    with engine.begin() as conn:
        conn.execute(sfapi_bulk_job.update().where(sfapi_bulk_job.c.id == job["id"]).values(
            state="InProgress", claimed_at=long_ago, rows_done=200, records_processed=200))  # fmt: skip
    assert restarted.needs_processing(job["id"], JobType.INGEST)
    restarted.process(job["id"])
    info = restarted.info(job["id"], JobType.INGEST)
    assert (info["state"], info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (
        "JobComplete",
        450,
        0,
    )
    with engine.connect() as conn:
        claimed = conn.execute(
            sa.select(sfapi_bulk_job.c.rows_done).where(sfapi_bulk_job.c.id == job["id"])
        ).scalar()
    assert claimed == 450
    # only the rows after the last saved chunk were written on resume
    assert CrmService(engine).query("SELECT COUNT() FROM Lead WHERE Company = 'Acme'")["totalSize"] == 250


@pytest.mark.parametrize("operation", ["queryAll", "query"])
def test_query_job_pages_with_locators(engine: Engine, operation: str) -> None:
    user = add_user(engine, "bulkq@example.jp", "bulkq@example.jp")
    crm = CrmService(engine)
    ids = [r.id for r in crm.create_many("Lead", [{"LastName": f"Q{i}", "Company": "Z"} for i in range(5)])]
    crm.delete("Lead", str(ids[0]))
    jobs = BulkJobs(engine)
    job = jobs.create_query(
        user, {"operation": operation, "query": "SELECT Id, LastName FROM Lead ORDER BY LastName"}
    )
    assert job["state"] == "UploadComplete"
    jobs.process(job["id"])
    first = jobs.query_results(job["id"], None, 3)
    second = jobs.query_results(job["id"], first.locator, 3)
    names = [r["LastName"] for page in (first, second) for r in rows(page.csv)]
    expected = ["Q0", "Q1", "Q2", "Q3", "Q4"] if operation == "queryAll" else ["Q1", "Q2", "Q3", "Q4"]
    assert (names, second.locator) == (expected, None)
    assert first.locator == "3"


def test_the_adapter_writes_past_the_threshold_through_one_bulk_job(
    sqlite_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = salesforce_client(sqlite_server, monkeypatch)
    client.config = client.config.model_copy(update={"bulk_threshold": 5})
    adapter = SalesforceAdapter(client)
    before = len(ApiUsage(sqlite_server.engine).log())
    leads: list[dict[str, Any]] = [
        {"LastName": f"B{i:02d}", "Company": "Acme", "Title": None} for i in range(12)
    ]
    leads[4] = {"LastName": "NoCompany"}
    leads[9] = dict(leads[8])  # identical rows still get one result each
    created = adapter.create("Lead", leads)
    assert [r.success for r in created] == [i != 4 for i in range(12)]
    assert created[4].errors[0][0] == "REQUIRED_FIELD_MISSING" and created[4].errors[0][2] == ("Company",)
    assert len({r.id for r in created if r.success}) == 11
    crm = CrmService(sqlite_server.engine)
    assert [crm.get("Lead", str(r.id))["LastName"] for r in created[:4]] == ["B00", "B01", "B02", "B03"]
    updated = adapter.update("Lead", [{"Id": r.id, "Title": "課長"} for r in created if r.success][:6]
                             + [{"Id": "00Q5g00000ZZZZZAAA", "Title": "x"}])  # fmt: skip
    assert [r.success for r in updated] == [True] * 6 + [False]
    assert crm.get("Lead", str(created[0].id))["Title"] == "課長"
    paths = [e.path.split("?")[0].replace(V, "") for e in ApiUsage(sqlite_server.engine).log()[before:]]
    assert not any(p.startswith("/composite/sobjects") for p in paths)
    assert paths.count("/jobs/ingest") == 2
    small = adapter.create("Lead", [{"LastName": "S", "Company": "C"}])  # under the threshold: a collection
    assert small[0].success
    assert ApiUsage(sqlite_server.engine).log()[-1].path.endswith("/composite/sobjects")
    client.close()


def test_an_insert_chunk_and_its_results_are_saved_together(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash while recording a chunk's results rolls back that chunk's records too: the resumed job
    saves every record exactly once (no duplicates from an insert job)."""
    user = add_user(engine, "bulk1@example.jp", "bulk1@example.jp")
    jobs = BulkJobs(engine)
    job = jobs.create_ingest(user, {"object": "Lead", "operation": "insert"})
    body = "LastName,Company\n" + "".join(f"L{i},Once\n" for i in range(450))
    jobs.upload(job["id"], body.encode())
    jobs.set_state(job["id"], JobType.INGEST, {"state": "UploadComplete"})
    calls = {"n": 0}
    real = BulkJobs._record

    def dying(self: BulkJobs, *args: object, **kw: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the second chunk: its records are written, then the process dies
            raise RuntimeError("killed")
        real(self, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(BulkJobs, "_record", dying)
    with pytest.raises(RuntimeError):
        jobs.process(job["id"])
    count = "SELECT COUNT() FROM Lead WHERE Company = 'Once'"
    assert CrmService(engine).query(count)["totalSize"] == 200  # the first chunk only
    monkeypatch.setattr(BulkJobs, "_record", real)
    long_ago = dt.datetime.now(dt.UTC) - CLAIM_TIMEOUT - dt.timedelta(minutes=1)
    with engine.begin() as conn:  # the dead worker's claim has gone stale
        conn.execute(
            sfapi_bulk_job.update().where(sfapi_bulk_job.c.id == job["id"]).values(claimed_at=long_ago)
        )
    BulkJobs(engine).process(job["id"])  # resumed after the last recorded chunk
    assert CrmService(engine).query(count)["totalSize"] == 450
    info = jobs.info(job["id"], JobType.INGEST)
    assert (info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (450, 0)
    success = jobs.results(job["id"], "successfulResults")[0]
    assert success.count("\n") == 451  # header + one line per record, none twice
