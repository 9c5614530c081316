"""``update_many`` in detail: every result (codes, messages, fields) of a mixed batch, exactly the
fields each write changes (derived ones included), records named twice, and all-or-none."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from renkei.clock import FixedClock
from renkei.crm.schema import STANDARD_OBJECTS
from renkei.crm.service import _DERIVED, CrmService
from renkei.errors import NotFoundError, ValidationError
from renkei.store import dynamic

T0 = dt.datetime(2026, 4, 1, 0, 0, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(minutes=1)
US = dt.timedelta(microseconds=1)
ROLLED_BACK = ("ALL_OR_NONE_OPERATION_ROLLED_BACK", "Record rolled back because not all records were valid and "
               "the request was using AllOrNone header", [])  # fmt: skip


@dataclass
class Org:
    crm: CrmService
    clock: FixedClock
    ids: dict[str, str]

    def name(self, record_id: str | None) -> str | None:
        return {v: k for k, v in self.ids.items()}.get(record_id or "", record_id)

    def update(
        self, obj: str, rows: list[dict[str, Any]], names: list[str], **kw: Any
    ) -> tuple[list[Any], dict[str, Any]]:
        """(results with ids as names, {name: the fields that changed and their new values})."""
        before = {n: self.crm.get(obj, self.ids[n], include_deleted=True) for n in names}
        results = self.crm.update_many(obj, rows, **kw)
        after = {n: self.crm.get(obj, self.ids[n], include_deleted=True) for n in names}
        out = [
            (self.name(r.id), r.success, [(e.code, e.message, list(e.fields)) for e in r.errors])
            for r in results
        ]
        return out, {n: {k: v for k, v in after[n].items() if v != before[n][k]} for n in names}


@pytest.fixture
def org(engine: Engine) -> Org:
    clock = FixedClock(T0)
    crm = CrmService(engine, clock=clock)
    crm.add_field("Lead", "Segment__c", "picklist", values=["Enterprise", "SMB"], restricted=True)
    crm.add_field("Lead", "Score__c", "number", precision=5, scale=2)
    ids = {
        "acc": crm.create("Account", {"Name": "連携商事"}),
        "gone_acc": crm.create("Account", {"Name": "消えた商事"}),
    }
    crm.delete("Account", ids["gone_acc"])
    ids["l1"] = crm.create("Lead", {"LastName": "山田", "FirstName": "太郎", "Company": "連携商事",
                                    "Email": "y@example.jp"})  # fmt: skip
    ids["l2"] = crm.create("Lead", {"LastName": "佐藤", "Company": "佐藤工業"})
    ids["l3"] = crm.create("Lead", {"LastName": "削除", "Company": "C"})
    crm.delete("Lead", ids["l3"])
    ids["l4"] = crm.create("Lead", {"LastName": "変換", "Company": "C"})
    crm.convert_lead(ids["l4"])
    # stored without validation: a required field that is blank (a later update must fill it)
    [ids["l5"]] = crm.insert_bulk("Lead", [{"LastName": "会社なし", "Company": "  "}], validate=False)
    ids["c1"] = crm.create("Contact", {"LastName": "田中", "AccountId": ids["acc"]})
    ids["opp"] = crm.create("Opportunity", {"Name": "O", "AccountId": ids["acc"], "StageName": "Prospecting",
                                            "CloseDate": "2026-05-10"})  # fmt: skip
    ids["task"] = crm.create("Task", {"WhoId": ids["l1"], "Subject": "Call"})
    campaign = crm.create("Campaign", {"Name": "展示会"})
    ids["member"] = crm.create("CampaignMember", {"CampaignId": campaign, "LeadId": ids["l1"]})
    clock.advance(minutes=1)
    return Org(crm, clock, ids)


def test_a_mixed_lead_batch_reports_each_record_and_writes_only_what_changed(org: Org) -> None:
    i = org.ids
    rows = [
        {"Id": i["l1"], "FirstName": "次郎", "Title": "課長", "NumberOfEmployees": "1,200", "HasOptedOutOfEmail": "yes",
         "AnnualRevenue": 12.345, "Email": " a@b.jp ", "Score__c": "12.345", "Segment__c": "SMB",
         "attributes": {"type": "Lead"}},
        {"Id": i["l2"][:15], "LastName": ""},
        {"Title": "no id"},
        {"Id": "bogus", "Title": "x"},
        {"Id": i["c1"], "Title": "x"},
        {"Id": "00Q000000000000AAA", "Title": "x"},
        {"Id": i["l3"], "Title": "x"},
        {"Id": i["l4"], "Title": "x"},
        {"Id": i["l2"], "Foo__c": 1, "IsConverted": True, "Name": "x", "Email": "bad", "FirstName": "x" * 41,
         "NumberOfEmployees": "abc", "Segment__c": "Startup", "ConvertedDate": "2026-01-01", "Score__c": 1000},
        {"Id": i["l2"], "OwnerId": i["acc"]},
        {"Id": i["l2"], "OwnerId": "005000000000000AAA", "Status": "Working - Contacted"},
        {"Id": i["l5"], "Title": "t"},
        {"Id": i["l2"], "Title": "first"},
        {"Id": i["l2"].lower(), "Title": "second", "Description": "d", "Email": None, "DoNotCall": "t"},
        {"Id": i["l1"]},
    ]  # fmt: skip
    results, changed = org.update("Lead", rows, ["l1", "l2", "l3", "l4", "l5"])
    assert results == [
        ("l1", True, []),
        ("l2", False, [("REQUIRED_FIELD_MISSING", "Required fields are missing: [LastName]", ["LastName"])]),
        (None, False, [("MISSING_ARGUMENT", "Id not specified in an update call", ["Id"])]),
        ("bogus", False, [("MALFORMED_ID", "Lead id value of incorrect type: bogus", ["Id"])]),
        ("c1", False, [("NOT_FOUND", "Provided external ID field does not exist or is not accessible: "
                        f"{i['c1']}", ["Id"])]),
        ("00Q000000000000AAA", False, [("NOT_FOUND", "Provided external ID field does not exist or is not "
                                        "accessible: 00Q000000000000AAA", ["Id"])]),
        ("l3", False, [("ENTITY_IS_DELETED", "entity is deleted", [])]),
        ("l4", False, [("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead", [])]),
        ("l2", False, [
            ("INVALID_FIELD", "No such column 'Foo__c' on sobject of type Lead", ["Foo__c"]),
            ("INVALID_EMAIL_ADDRESS", "Email: invalid email address: bad", ["Email"]),
            ("STRING_TOO_LONG", "First Name: data value too large: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx… "
                                "(max length=40)", ["FirstName"]),
            ("INVALID_TYPE_ON_FIELD_IN_RECORD", "Number Of Employees: value not of required type: abc",
             ["NumberOfEmployees"]),
            ("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "Segment: bad value for restricted picklist field: Startup",
             ["Segment__c"]),
            ("NUMBER_OUTSIDE_VALID_RANGE", "Score: value outside of valid range on numeric field: 1000", ["Score__c"]),
            ("INVALID_FIELD_FOR_INSERT_UPDATE", "Unable to create/update fields: IsConverted, Name, ConvertedDate. "
             "Please check the security settings of this field and verify that it is read/write for your profile "
             "or permission set.", ["IsConverted", "Name", "ConvertedDate"]),
        ]),
        ("l2", False, [("INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {i['acc']}", ["OwnerId"])]),
        ("l2", False, [("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id: 005000000000000AAA",
                        ["OwnerId"])]),
        ("l5", False, [("REQUIRED_FIELD_MISSING", "Required fields are missing: [Company]", ["Company"])]),
        ("l2", True, []),
        ("l2", True, []),  # named twice: both validated against the record as it was, written in call order
        ("l1", True, []),
    ]  # fmt: skip
    assert changed == {
        "l1": {"LastModifiedDate": T1, "SystemModstamp": T1, "FirstName": "次郎", "Name": "山田 次郎", "Title": "課長",
               "Email": "a@b.jp", "AnnualRevenue": 12.0, "NumberOfEmployees": 1200, "HasOptedOutOfEmail": True,
               "Segment__c": "SMB", "Score__c": 12.35},
        "l2": {"LastModifiedDate": T1, "SystemModstamp": T1, "Title": "second", "Description": "d", "DoNotCall": True},
        "l3": {}, "l4": {}, "l5": {},
    }  # fmt: skip

    # the same values again: only the stamp moves (one microsecond: the clock stands still)
    assert org.update("Lead", [{"Id": i["l1"], "Title": "課長", "FirstName": "次郎"}], ["l1"]) == (
        [("l1", True, [])], {"l1": {"SystemModstamp": T1 + US}})  # fmt: skip


def test_updates_derive_what_salesforce_derives(org: Org) -> None:
    i = org.ids
    rows: list[dict[str, Any]] = [
        {"Id": i["c1"], "AccountId": i["gone_acc"]},
        {"Id": i["c1"], "AccountId": i["acc"], "Birthdate": "2000-01-02T09:00:00+09:00", "FirstName": "一郎", "Title": "t"},
    ]  # fmt: skip
    assert org.update("Contact", rows, ["c1"]) == (
        [("c1", False, [("INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {i['gone_acc']}",
                         ["AccountId"])]), ("c1", True, [])],
        {"c1": {"LastModifiedDate": T1, "SystemModstamp": T1, "FirstName": "一郎", "Name": "田中 一郎", "Title": "t",
                "Birthdate": dt.date(2000, 1, 2)}},
    )  # fmt: skip
    assert org.update("Opportunity", [{"Id": i["opp"], "StageName": "Closed Won"}], ["opp"]) == (
        [("opp", True, [])],
        {"opp": {"LastModifiedDate": T1, "SystemModstamp": T1, "StageName": "Closed Won", "Probability": 100.0,
                 "IsClosed": True, "IsWon": True, "ForecastCategoryName": "Closed"}},
    )  # fmt: skip
    rows = [{"Id": i["opp"], "CloseDate": "2027-02-01T10:00:00Z", "StageName": "Negotiation/Review",
             "Probability": 55, "ForecastCategoryName": "BestCase"}]  # fmt: skip
    assert org.update("Opportunity", rows, ["opp"]) == (
        [("opp", True, [])],
        {"opp": {"SystemModstamp": T1 + US, "StageName": "Negotiation/Review", "Probability": 55.0,
                 "CloseDate": dt.date(2027, 2, 1), "IsClosed": False, "IsWon": False,
                 "ForecastCategoryName": "BestCase", "FiscalYear": 2027, "FiscalQuarter": 1}},
    )  # fmt: skip
    rows = [{"Id": i["task"], "Status": "Completed", "WhatId": i["opp"]},
            {"Id": i["task"], "WhoId": i["c1"], "WhatId": None}]  # fmt: skip
    assert org.update("Task", rows, ["task"]) == (
        [("task", True, []), ("task", True, [])],
        {"task": {"LastModifiedDate": T1, "SystemModstamp": T1, "WhoId": i["c1"], "WhatId": i["opp"],
                  "Status": "Completed", "IsClosed": True, "AccountId": i["acc"]}},
    )  # fmt: skip
    org.crm.update("Lead", i["l1"], {"FirstName": "次郎", "Email": "a@b.jp"})
    rows = [{"Id": i["member"], "Status": "Responded"}, {"Id": i["member"], "LeadId": i["l2"]}]
    assert org.update("CampaignMember", rows, ["member"]) == (
        [("member", True, []),
         ("member", False, [("INVALID_FIELD_FOR_INSERT_UPDATE", "Unable to create/update fields: LeadId. Please "
                             "check the security settings of this field and verify that it is read/write for your "
                             "profile or permission set.", ["LeadId"])])],
        {"member": {"LastModifiedDate": T1, "SystemModstamp": T1, "Status": "Responded", "HasResponded": True,
                    "FirstRespondedDate": T1.date(), "FirstName": "次郎", "Email": "a@b.jp"}},
    )  # fmt: skip


def test_all_or_none_writes_nothing_unless_every_record_is_valid(org: Org) -> None:
    i = org.ids
    rows = [{"Id": i["l1"], "Title": "x"}, {"Id": i["l2"], "Email": "bad"}, {"Id": i["l2"], "Title": "y"}]
    assert org.update("Lead", rows, ["l1", "l2"], all_or_none=True) == (
        [("l1", False, [ROLLED_BACK]),
         ("l2", False, [("INVALID_EMAIL_ADDRESS", "Email: invalid email address: bad", ["Email"])]),
         ("l2", False, [ROLLED_BACK])],
        {"l1": {}, "l2": {}},
    )  # fmt: skip
    rows = [{"Id": i["l1"], "Title": "aon"}, {"Id": i["l2"], "Title": "aon2"}]
    assert org.update("Lead", rows, ["l1", "l2"], all_or_none=True) == (
        [("l1", True, []), ("l2", True, [])],
        {"l1": {"LastModifiedDate": T1, "SystemModstamp": T1, "Title": "aon"},
         "l2": {"LastModifiedDate": T1, "SystemModstamp": T1, "Title": "aon2"}},
    )  # fmt: skip
    with pytest.raises(ValidationError) as info:
        org.crm.update("Lead", i["l1"], {"Email": "bad"})
    assert [(e.code, e.fields) for e in info.value.errors] == [("INVALID_EMAIL_ADDRESS", ("Email",))]
    with pytest.raises(NotFoundError, match="00Q000000000000AAA"):
        org.crm.update("Lead", "00Q000000000000AAA", {"Title": "x"})
    with pytest.raises(NotFoundError) as missing:
        org.crm.update("Nope", i["l1"], {})
    assert missing.value.code == "INVALID_TYPE"


class _Recording(dict[str, Any]):
    """A record that notes each field read or written through it, and refuses to be walked whole."""

    def __init__(self, values: dict[str, Any]) -> None:
        super().__init__(values)
        self.touched: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.touched.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self.touched.add(key)
        return super().__getitem__(key)

    def __setitem__(self, key: str, value: Any) -> None:
        self.touched.add(key)
        super().__setitem__(key, value)

    def __contains__(self, key: object) -> bool:
        self.touched.add(str(key))
        return super().__contains__(key)

    def update(self, *args: Any, **kw: Any) -> None:  # type: ignore[override]
        new = dict(*args, **kw)
        self.touched |= new.keys()
        super().update(new)

    def _whole(self, *args: Any, **kw: Any) -> Any:
        raise AssertionError("_derive walks the whole record")

    __iter__ = keys = values = items = copy = pop = popitem = setdefault = _whole  # type: ignore[assignment]


def test_derive_reads_and_writes_only_the_fields_an_update_reads(org: Org, engine: Engine) -> None:
    """An update reads of each record only its required fields, those it names and ``_DERIVED``'s:
    what ``_derive`` touches must be among the latter, for every object, in each of its branches."""
    crm, i = org.crm, org.ids
    campaign = crm.get("CampaignMember", i["member"], ["CampaignId"])["CampaignId"]
    crm.create("Task", {"WhatId": i["acc"], "Subject": "s"})
    crm.create("Task", {"WhatId": i["opp"], "WhoId": i["c1"], "Subject": "s", "Status": "Completed"})
    crm.create("Task", {"WhoId": i["c1"], "Subject": "s"})
    crm.create("CampaignMember", {"CampaignId": campaign, "ContactId": i["c1"], "Status": "Responded"})
    crm.create("Opportunity", {"Name": "P", "StageName": "Closed Won", "CloseDate": "2026-12-01"})
    with engine.connect() as conn:
        schema = dynamic.load_crm_schema(conn)
        for name, obj in schema.objects.items():
            samples = [{f.name: None for f in obj.fields}]
            if name in STANDARD_OBJECTS:
                table = schema.table(name)
                samples += [dict(r) for r in conn.execute(sa.select(table).limit(5)).mappings()]
            for sample in samples:
                for changed in [set(), set(sample), *({f} for f in sample)]:
                    for previous in (None, sample):
                        record = _Recording(sample)
                        crm._derive(conn, schema, obj, record, changed, previous)
                        assert record.touched <= _DERIVED.get(name, frozenset()), (name, changed, previous)


def test_a_bulk_load_that_doubles_a_table_refreshes_its_postgresql_statistics(pg_url: str) -> None:
    """PostgreSQL only: SQLite keeps no planner statistics to refresh."""
    from renkei.store.db import make_engine

    engine = make_engine(pg_url)
    crm = CrmService(engine, clock=FixedClock(dt.datetime(2026, 4, 1, 9, tzinfo=dt.UTC)))

    def estimate() -> float:
        with engine.connect() as conn:
            return float(
                conn.execute(
                    sa.text("SELECT reltuples FROM pg_class WHERE relname = 'crm_lead'")
                ).scalar_one()
            )

    def load(n: int, start: int) -> None:
        crm.insert_bulk(
            "Lead", [{"LastName": f"統計{i}", "Company": "統計商事"} for i in range(start, start + n)]
        )

    assert estimate() < 1  # never analysed
    load(1200, 0)
    assert estimate() == 1200  # analysed right after the load: the whole table sampled
    load(600, 1200)
    assert estimate() == 1200  # 600 more rows: neither 1,000 nor a doubling, left to autovacuum
    load(1800, 1800)
    assert estimate() == 3600
    engine.dispose()


def test_calls_made_together_commit_as_one_and_roll_back_as_one(org: Org, engine: Engine) -> None:
    """``together()``: several write calls, each with its own results, one commit; an error inside
    the block leaves none of them written; another thread's calls stay on their own."""
    import threading

    from renkei.connector.adapters.builtin import BuiltinCrmAdapter

    crm, i = org.crm, org.ids
    commits: list[int] = []
    sa.event.listen(engine, "commit", lambda conn: commits.append(1))
    with crm.together():
        first = crm.update_many("Lead", [{"Id": i["l1"], "Title": "課長"}, {"Id": i["l3"], "Title": "x"}])
        second = crm.update_many("Lead", [{"Id": i["l2"], "Title": "部長"}])
        with engine.connect() as conn:  # not visible to other connections before the block ends
            seen = conn.execute(
                sa.text('SELECT "Title" FROM crm_lead WHERE "Id" = :i'), {"i": i["l2"]}
            ).scalar()
        assert seen is None
    assert [r.success for r in first] == [True, False] and [r.success for r in second] == [True]
    assert first[1].errors[0].code == "ENTITY_IS_DELETED"
    assert len(commits) == 1
    assert (crm.get("Lead", i["l1"])["Title"], crm.get("Lead", i["l2"])["Title"]) == ("課長", "部長")

    with pytest.raises(RuntimeError), crm.together():
        crm.update_many("Lead", [{"Id": i["l1"], "Title": "取り消される"}])
        crm.create_many("Lead", [{"LastName": "取消", "Company": "C"}])
        raise RuntimeError("the caller fails half way")
    assert crm.get("Lead", i["l1"])["Title"] == "課長"
    assert crm.query("SELECT Id FROM Lead WHERE LastName = '取消'")["totalSize"] == 0

    other: list[Any] = []
    with crm.together():
        crm.update_many("Lead", [{"Id": i["l1"], "Title": "同時"}])
        # another thread's call is its own transaction: on SQLite it waits for this block's write
        # lock, so it is started here and joined after the block
        worker = threading.Thread(
            target=lambda: other.extend(crm.update_many("Lead", [{"Id": i["l2"], "Title": "別"}]))
        )
        worker.start()
    worker.join(30)
    assert [r.success for r in other] == [True]
    assert (crm.get("Lead", i["l1"])["Title"], crm.get("Lead", i["l2"])["Title"]) == ("同時", "別")

    # the connector's adapter: a call per 200 records (what it counts), one commit for them all
    adapter = BuiltinCrmAdapter(crm)
    created = adapter.create("Lead", [{"LastName": f"一括{n}", "Company": "C"} for n in range(450)])
    commits.clear()
    results = adapter.update("Lead", [{"Id": r.id, "Title": "一括"} for r in created])
    assert adapter.calls["write"] == 6 and len(commits) == 1
    assert all(r.success for r in results)
    assert crm.query("SELECT COUNT() FROM Lead WHERE Title = '一括'")["totalSize"] == 450


def test_records_as_read_are_written_only_while_still_as_read(org: Org, engine: Engine) -> None:
    """``update_many(as_read=…)`` (the connector hands over the records it judged): a record still
    as read is written without being read again; one changed, deleted or undeleted since, or whose
    row failed against the copy, is judged again against the record as it is — never written from
    the stale copy."""
    from renkei.connector.adapters.builtin import BuiltinCrmAdapter

    crm, i = org.crm, org.ids
    i["l6"] = crm.create("Lead", {"LastName": "不変", "Company": "C"})
    names = ["l1", "l2", "l3", "l5", "l6"]
    as_read = {r["Id"]: r for r in crm.get_many("Lead", [i[n] for n in names], include_deleted=True)}
    assert as_read[i["l3"]]["IsDeleted"] and as_read[i["l5"]]["Company"] == "  "
    org.clock.advance(minutes=1)
    crm.update("Lead", i["l1"], {"LastName": "鈴木"})  # the Name a stale copy would derive is 山田 …
    crm.delete("Lead", i["l2"])
    crm.undelete("Lead", i["l3"])
    crm.update("Lead", i["l5"], {"Company": "埋めた会社"})
    with engine.connect() as conn:
        latest = conn.execute(sa.text('SELECT max("SystemModstamp") FROM crm_lead')).scalar()
    rows = [{"Id": i["l1"], "FirstName": "花子"}, {"Id": i["l2"], "Title": "x"}, {"Id": i["l3"], "Title": "戻った"},
            {"Id": i["l5"], "Title": "t"}, {"Id": i["l6"], "Title": "そのまま"}]  # fmt: skip
    results, changed = org.update("Lead", rows, names, as_read=as_read)
    assert results == [("l1", True, []), ("l2", False, [("ENTITY_IS_DELETED", "entity is deleted", [])]),
                       ("l3", True, []), ("l5", True, []), ("l6", True, [])]  # fmt: skip
    assert changed["l1"]["Name"] == "鈴木 花子" and changed["l1"]["FirstName"] == "花子"
    assert changed["l2"] == {}
    assert (changed["l3"]["Title"], changed["l5"]["Title"], changed["l6"]["Title"]) == (
        "戻った",
        "t",
        "そのまま",
    )
    assert crm.get("Lead", i["l5"])["Company"] == "埋めた会社"
    # the stamps of a checked write come after every stamp in the table (the clock stands still here)
    assert latest is not None and changed["l6"]["SystemModstamp"] > dt.datetime.fromisoformat(
        str(latest)
    ).replace(tzinfo=dt.UTC)

    # a record still as read is not read again: no SELECT of the record, only the table's latest
    # stamp (a lead, and a contact: an object without the lead's IsConverted)
    for obj, name in (("Lead", "l6"), ("Contact", "c1")):
        as_read = {r["Id"]: r for r in crm.get_many(obj, [i[name]])}
        statements: list[str] = []

        def seen(*args: Any, into: list[str] = statements) -> None:
            into.append(args[2])

        sa.event.listen(engine, "before_cursor_execute", seen)
        [result] = crm.update_many(obj, [{"Id": i[name], "Title": "二度目"}], as_read=as_read)
        sa.event.remove(engine, "before_cursor_execute", seen)
        table = f"crm_{obj.lower()}"
        reads = [s for s in statements if s.lstrip().upper().startswith("SELECT") and table in s]
        assert result.success and reads and all("max(" in s.lower() for s in reads), reads
        assert crm.get(obj, i[name])["Title"] == "二度目"

    # the connector's adapter hands its reads to the update that follows
    adapter = BuiltinCrmAdapter(crm)
    adapter.read("Lead", [i["l6"]])
    crm.update("Lead", i["l6"], {"LastName": "変わった"})
    [written] = adapter.update("Lead", [{"Id": i["l6"], "FirstName": "名"}])
    assert written.success and crm.get("Lead", i["l6"])["Name"] == "変わった 名"
    adapter.read("Lead", [i["l6"]])
    assert adapter._as_read["Lead"] and adapter.changes("Lead", None).records  # a new cycle …
    assert not adapter._as_read.get("Lead")  # … lets the last one's copies go

    # all-or-none takes the records as they are: a copy of a record deleted since fails the call
    # as a whole (its other record is not written), as without copies
    copies = {r["Id"]: r for r in crm.get_many("Lead", [i["l1"], i["l6"]])}
    crm.delete("Lead", i["l1"])
    out = crm.update_many("Lead", [{"Id": i["l6"], "Title": "全部か"}, {"Id": i["l1"], "Title": "無か"}],
                          all_or_none=True, as_read=copies)  # fmt: skip
    assert [r.success for r in out] == [False, False] and out[1].errors[0].code == "ENTITY_IS_DELETED"
    assert crm.get("Lead", i["l6"])["Title"] == "二度目"


def test_the_records_of_one_call_share_its_time(engine: Engine) -> None:
    """One time per call, as Salesforce gives the records of one DML call: every record an
    ``update_many`` writes gets the same LastModifiedDate and SystemModstamp (a record whose own
    stamp is not earlier gets a microsecond past it), even on a clock that never repeats itself."""
    from renkei.clock import TickingClock

    crm = CrmService(engine, clock=TickingClock(FixedClock(T0)))
    ids = crm.create_many("Lead", [{"LastName": f"同時{n}", "Company": "C"} for n in range(5)])
    assert all(r.success for r in ids)
    results = crm.update_many("Lead", [{"Id": r.id, "Title": "課長"} for r in ids])
    assert all(r.success for r in results)
    after = crm.get_many("Lead", [str(r.id) for r in ids])
    assert len({(a["LastModifiedDate"], a["SystemModstamp"]) for a in after}) == 1
    assert after[0]["SystemModstamp"] > max(a["CreatedDate"] for a in after)
