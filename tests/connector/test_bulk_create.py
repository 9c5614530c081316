"""The fast initial sync (``renkei.connector.bulk``) ends where the per-record planner ends.

For random small orgs — leads and contacts with colliding emails (case, full width, spaces), blank
emails, records failing their filter, owners with and without a linked marketing user, prospects
that already hold an email, a licence cap, either ``prefer`` — two copies of the same database are
synced until quiet, one with the bulk path forced (``bulk_create_threshold: 0``) and one with it
off; prospects, links, agreed values, create audit and errors are the same, and a further cycle
writes nothing. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Connection, Engine

from renkei.clock import FixedClock
from renkei.connector import bulk as bulk_path
from renkei.connector import config as c
from renkei.connector import service as service_module
from renkei.connector.service import SyncService
from renkei.core.identity import email_key
from renkei.crm.service import CrmService
from renkei.marketing.service import ProspectService
from renkei.store import tables as t
from renkei.store.db import make_engine
from renkei.store.tables_sync import (
    sync_audit,
    sync_error,
    sync_link,
    sync_state,
    sync_state_range,
    sync_watermark,
)
from tests.conftest import BACKENDS, _fresh_url, _Templates

START = dt.datetime(2026, 4, 1, 9, tzinfo=dt.UTC)
LINKED_OWNER, UNLINKED_OWNER = "0055g0000000001AAA", "0055g0000000002AAA"
SPELLINGS = ("p{i}@example.jp", "P{i}@Example.JP", " p{i}@example.jp　", "ｐ{i}＠ｅｘａｍｐｌｅ．ｊｐ")

emails = st.one_of(
    st.tuples(st.integers(0, 5), st.integers(0, len(SPELLINGS) - 1)).map(
        lambda x: SPELLINGS[x[1]].format(i=x[0])
    ),
    st.sampled_from([None, "", "   "]),
)
records = st.lists(
    st.fixed_dictionaries({
        "object": st.sampled_from(["Lead", "Contact"]),
        "Email": emails,
        "Title": st.sampled_from(["課長", "部長", "除外", None]),  # 除外: fails the filter
        "OwnerId": st.sampled_from([LINKED_OWNER, UNLINKED_OWNER]),
        "Phone": st.sampled_from([None, "", " ", "03-1234-5678", "\u2003", "\u202f\u3000"]),
        "HasOptedOutOfEmail": st.booleans(),
        "LeadSource": st.sampled_from([None, " ", "Web", "CRM"]),  # CRM: the default a prospect gets
        "Description": st.sampled_from([None, "", "展示会で名刺交換"]),  # a field a new prospect leaves empty
    }),
    max_size=14,
)  # fmt: skip
orgs = st.fixed_dictionaries({
    "records": records,
    "existing": st.lists(st.integers(0, 5), max_size=2, unique=True),  # prospects already holding p{i}@…
    "cap": st.none() | st.integers(0, 8),
    "prefer": st.sampled_from(["contact", "lead"]),
    "filter": st.booleans(),
    "package": st.booleans(),  # AE's package fields (pi__score__c …) in the CRM, as connector init adds them
})  # fmt: skip


@contextlib.contextmanager
def fresh(templates: _Templates, backend: str, tmp: Path) -> Iterator[Engine]:
    urls = _fresh_url(templates, backend, tmp)
    engine = make_engine(next(urls))
    try:
        yield engine
    finally:
        engine.dispose()
        with contextlib.suppress(StopIteration):
            next(urls)


def build(engine: Engine, org: dict[str, Any]) -> FixedClock:
    clock = FixedClock(START)
    if org.get("package"):
        crm = CrmService(engine, clock=clock)
        for obj in ("Lead", "Contact"):
            for name, kind, kw in c.PACKAGE_FIELDS:
                crm.add_field(obj, name, kind, **kw)
    with engine.begin() as conn:
        conn.execute(t.ma_user.insert().values(email="owner@example.jp", salesforceId=LINKED_OWNER, role="sales",
                                               createdAt=START, updatedAt=START))  # fmt: skip
    ma = ProspectService(engine, clock=clock)
    for i in org["existing"]:
        ma.create({"email": f"p{i}@example.jp", "lastName": f"既存{i}"})
    clock.advance(seconds=1)
    crm = CrmService(engine, clock=clock)
    for n, r in enumerate(org["records"]):
        values = {k: v for k, v in r.items() if k != "object"}
        values["LastName"] = f"人{n}"
        if r["object"] == "Lead":
            values["Company"] = f"会社{n}"
        crm.insert_bulk(r["object"], [values], validate=False)
        clock.advance(seconds=1)
    return clock


def config(org: dict[str, Any], threshold: int) -> c.ConnectorConfig:
    cfg = c.parse(c.DEFAULT_YAML)
    objects = {
        o: c.ObjectSettings(filter="Title != '除外'" if org["filter"] else None) for o in c.CRM_OBJECTS
    }
    return cfg.model_copy(update={"cap": org["cap"], "prefer": org["prefer"], "objects": objects,
                                  "bulk_create_threshold": threshold})  # fmt: skip


def sync(engine: Engine, cfg: c.ConnectorConfig, clock: FixedClock) -> list[dict[str, Any]]:
    outs = []
    for _ in range(4):
        outs.append(SyncService(engine, cfg, clock=clock).run())
        clock.advance(seconds=1)
    return outs


def outcome(engine: Engine) -> dict[str, Any]:
    """Everything the sync decided, with prospect ids replaced by what they stand for."""
    with engine.connect() as conn:
        prospects = [dict(r) for r in conn.execute(sa.select(t.prospect)).mappings()]
        links = {r.prospect_id: r.crm_id for r in conn.execute(sa.select(sync_link))}
        states = {  # the values as read (a bulk-created prospect's refer to its create audit or range)
            pid: (obj, values, sparse)
            for pid, (values, obj, sparse) in service_module.read_states(
                conn, [p["id"] for p in prospects]
            ).items()
        }
        creates = {r.prospect_id: (r.new, r.rule, r.reason) for r in conn.execute(
            sa.select(sync_audit).where(sync_audit.c.action == "create"))}  # fmt: skip
        errors = [dict(r) for r in conn.execute(sa.select(sync_error)).mappings()]
    name = {p["id"]: links.get(p["id"]) or f"pre:{p['email']}" for p in prospects}

    def rename(text: str | None) -> str | None:
        return text and re.sub(r"prospect (\d+)", lambda m: f"prospect {name.get(int(m[1]), m[1])}", text)

    return {
        "prospects": sorted(({**{k: v for k, v in p.items() if k != "id"}, "is": name[p["id"]]} for p in prospects),
                            key=lambda p: str(p["is"])),
        "links": sorted(links.values()),
        "states": {name[pid]: s for pid, s in states.items()},
        "creates": {name[pid]: c_ for pid, c_ in creates.items()},
        "errors": sorted((e["kind"], e["object"], e["record_id"], name.get(e["prospect_id"]), e["code"],
                          rename(e["message"]), e["attempts"], e["resolved_at"]) for e in errors),
    }  # fmt: skip


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])  # fmt: skip
@given(org=orgs)
def test_agreed_values_held_by_ranges_read_as_the_rows_they_stand_for(
    org: dict[str, Any], _templates: _Templates, tmp_path: Path
) -> None:
    """SQLite: the bulk copy with its ranges (sync_state_range) and without them (a row each) ends
    alike — the same agreed values read for every prospect, and everything else the same — and so
    does every later cycle."""
    results = []
    for ranges in (True, False):
        with (
            fresh(_templates, "sqlite", tmp_path) as engine,
            mock.patch.object(bulk_path, "_CHUNK", 3),
            mock.patch.object(bulk_path, "STATE_RANGES", ranges),
        ):
            clock = build(engine, org)
            runs = sync(engine, config(org, 0), clock)
            with engine.connect() as conn:
                held = conn.execute(sa.select(sa.func.count()).select_from(sync_state_range)).scalar_one()
            assert ranges or not held
            results.append((outcome(engine), [r["counts"] for r in runs]))
    assert results[0] == results[1]


def test_a_range_is_written_only_where_its_audit_rows_follow_the_prospects(sqlite_engine: Engine) -> None:
    """``_audit_offset``: the arithmetic from prospect id to create audit id is taken only when the
    rows inserted are one per prospect, at the ids that follow, in prospect order."""
    engine = sqlite_engine
    now = START
    with engine.begin() as conn:
        conn.execute(sync_audit.insert(), [
            {"run_id": 1, "at": now, "direction": "ma", "action": "create", "object": "prospect", "record_id": str(pid),
             "prospect_id": pid} for pid in (11, 12, 13, 15, 14)])  # fmt: skip
        assert bulk_path._audit_offset(conn, 3, 0, 11, 13) is None  # rows past the three: not all ours
        assert bulk_path._audit_offset(conn, 5, 0, 11, 15) is None  # 15 before 14
        assert bulk_path._audit_offset(conn, 4, 0, 11, 15) is None  # a count that is not one per prospect
        conn.execute(sync_audit.delete().where(sync_audit.c.id > 3))
        assert bulk_path._audit_offset(conn, 3, 0, 11, 13) == -10
        assert bulk_path._audit_offset(conn, 3, 0, 12, 14) is None  # another run of prospects


def quiet(out: dict[str, Any]) -> bool:
    counts = out["counts"]
    return not counts["link"] and not any(
        counts[s][k] for s in ("ma", "crm") for k in ("create", "update", "delete")
    )


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])  # fmt: skip
@given(org=orgs)
def test_bulk_and_per_record_paths_end_alike(
    backend: str, org: dict[str, Any], _templates: _Templates, tmp_path: Path
) -> None:
    results = []
    for threshold in (0, 10**9):
        with fresh(_templates, backend, tmp_path) as engine, mock.patch.object(bulk_path, "_CHUNK", 3):
            clock = build(engine, org)  # SQLite: the bulk path's transactions of three pending records
            runs = sync(engine, config(org, threshold), clock)
            assert quiet(runs[-1]) and quiet(runs[-2]), runs
            results.append((outcome(engine), runs[0]["counts"]))
    (bulk, bulk_counts), (per_record, per_record_counts) = results
    assert bulk == per_record
    assert bulk_counts == per_record_counts


def test_the_bulk_path_takes_plain_records_and_leaves_the_rest(engine: Engine) -> None:
    """What the bulk path itself did: the plain cases in one statement, a collision left to the planner."""
    org = {"records": [
        {"object": "Lead", "Email": "a@example.jp", "Title": "課長", "OwnerId": LINKED_OWNER, "Phone": " ",
         "HasOptedOutOfEmail": False},
        {"object": "Contact", "Email": "ｂ＠example.jp ", "Title": None, "OwnerId": UNLINKED_OWNER, "Phone": "03",
         "HasOptedOutOfEmail": True},
        {"object": "Lead", "Email": "B@example.jp", "Title": None, "OwnerId": UNLINKED_OWNER, "Phone": None,
         "HasOptedOutOfEmail": False},
    ], "existing": [], "cap": None, "prefer": "contact", "filter": False}  # fmt: skip
    clock = build(engine, org)
    out = SyncService(engine, config(org, 0), clock=clock).run()
    assert out["counts"]["ma"]["create"] == 2 and out["counts"]["skip"] == 1  # the lead sharing b@ is skipped
    with engine.connect() as conn:
        created = {
            r.prospect_id: r.new
            for r in conn.execute(sa.select(sync_audit).where(sync_audit.c.action == "create"))
        }
        rows = {r.email: r for r in conn.execute(sa.select(t.prospect))}
    lead, contact = rows["a@example.jp"], rows["ｂ＠example.jp "]
    assert (lead.emailKey, lead.phone, lead.assignedToId, lead.source) == ("a@example.jp", None, 1, "CRM")
    assert (contact.emailKey, contact.optedOut, contact.assignedToId) == (
        email_key("ｂ＠example.jp "),
        True,
        None,
    )
    assert {k: created[lead.id][k] for k in ("email", "lastName", "company", "jobTitle", "optedOut", "assignedToId")} == {
        "email": "a@example.jp", "lastName": "人0", "company": "会社0", "jobTitle": "課長", "optedOut": False,
        "assignedToId": 1}  # fmt: skip
    assert "phone" not in created[lead.id] and "firstName" not in created[lead.id]  # blanks are not written
    # the record had no LeadSource: the default the connector gave the prospect is what it wrote
    assert created[lead.id]["source"] == created[contact.id]["source"] == "CRM"


def test_both_paths_agree_on_the_package_fields_a_new_prospect_leaves_empty_in_the_crm(
    engine: Engine, _templates: _Templates, tmp_path: Path
) -> None:
    """With AE's package fields in the CRM (``renkei connector init`` adds them: pi__score__c,
    pi__created_date__c …, empty on every record), a new prospect's agreed values pair its marketing
    values with the records' empty fields alike on both paths — an empty date-time is null, not a
    text — and the cycles after write the same."""
    org = {**plain_leads(4), "package": True, "records": [*plain_leads(4)["records"],
           {"object": "Contact", "Email": "c0@example.jp", "Title": "部長"}]}  # fmt: skip
    backend = engine.dialect.name
    results = []
    for threshold in (0, 10**9):
        with fresh(_templates, "postgresql" if backend == "postgresql" else "sqlite", tmp_path) as db:
            clock = build(db, org)
            runs = sync(db, config(org, threshold), clock)
            assert quiet(runs[-1]), runs[-1]["counts"]
            with db.connect() as conn:  # SQLite's copy: the shared values held once per object
                ranges = conn.execute(sa.select(sync_state_range.c.crm_object)).scalars().all()
            assert sorted(ranges) == (["Contact", "Lead"] if threshold == 0 and backend == "sqlite" else [])
            results.append((outcome(db), [r["counts"] for r in runs]))
    (bulk, bulk_counts), (per_record, per_record_counts) = results
    created_at = [values["createdAt"] for _, values, _ in bulk["states"].values()]
    assert created_at and all(pair[0] is None for pair in created_at), created_at
    assert bulk == per_record
    assert bulk_counts == per_record_counts


@pytest.mark.parametrize("threshold", [0, 10**9], ids=["bulk", "per-record"])
def test_a_create_audits_the_source_the_prospect_got(engine: Engine, threshold: int) -> None:
    """The record's LeadSource when it has one, else the connector's default (``CRM``), which it
    wrote as well: on both paths, so ``sync explain`` names the create as the source's last write."""
    org = plain_leads(4)
    for record, source in zip(org["records"], ["Web", " ", None, "CRM"], strict=True):
        record["LeadSource"] = source
    clock = build(engine, org)
    out = SyncService(engine, config(org, threshold), clock=clock).run()
    assert out["counts"]["ma"]["create"] == 4
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.prospect.c.email, t.prospect.c.source, sync_audit.c.new)
                            .join(sync_audit, sync_audit.c.prospect_id == t.prospect.c.id)
                            .where(sync_audit.c.action == "create")).all()  # fmt: skip
        # the agreed values as stored text (on SQLite the bulk path's refer to the create audit's),
        # and as read (most bulk-created prospects' from their range)
        stored = conn.execute(service_module._state_rows()).all()
        pids = list(conn.execute(sa.select(t.prospect.c.id)).scalars())
        states = [values for values, _, _ in service_module.read_states(conn, pids).values()]
        ranges = conn.execute(sa.select(sync_state_range)).all()
    got = {row.email: (row.source, row.new["source"]) for row in rows}
    assert got == {
        "p0@example.jp": ("Web", "Web"),
        "p1@example.jp": ("CRM", "CRM"),
        "p2@example.jp": ("CRM", "CRM"),
        "p3@example.jp": ("CRM", "CRM"),
    }

    def once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        assert len({k for k, _ in pairs}) == len(pairs), pairs  # no member twice
        return dict(pairs)

    def read(x: Any) -> Any:
        return json.loads(x, object_pairs_hook=once) if isinstance(x, str) else x

    for _, values, _, _, base in stored:  # no member twice in what is stored
        read(values), read(base)
    # alike on both sides (Web, and CRM given by the record), or paired with the record's blank or none
    assert sorted(str(st["source"]) for st in states) == ["CRM", "Web", "[' ', 'CRM']", "[None, 'CRM']"]
    assert sorted(st["email"] for st in states) == sorted(got)
    if engine.dialect.name == "sqlite" and threshold == 0:  # the bulk path: values that refer to the audit
        assert all(base is not None and "email" not in read(values) for _, values, _, _, base in stored)
        # a range stands for the sourced record and the one without a source; the blank source (a
        # pair of its own) and the source that is the default itself (bare, not paired) have rows
        assert len(ranges) == 1 and ranges[0].source_default == "CRM"
        assert [json.loads(values)["source"] for _, values, _, _, _ in stored] == [[" ", "CRM"], "CRM"]
    else:
        assert not ranges and len(stored) == 4


KEYS = ["Sato@Example.JP", "  ｓａｔｏ＠ｅｘａｍｐｌｅ．ｊｐ　", "\tＳＡＴＯ＠example.jp\n", "STRASSE@example.jp",
        "straße@example.jp", "", "　", "山田@例え.jp", "\x1c\x1dMiXeD@Example.COM\x1e\x1f\x0b", " \r\n\x0c ",
        "a\x7fb@EXAMPLE.jp", "\x01Tab\tIn@Middle.jp\x02", "Ｓａｔｏ@example.jp\x85", "sato@example.jp\u3000\t"]  # fmt: skip


def test_the_sql_blank_test_trims_what_python_strips() -> None:
    """``is_blank`` is ``str.strip() == ""``: the bulk path's SQL trims the same characters."""
    import sys

    assert set(bulk_path._STRIPPED) == {chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()}


def test_a_value_of_other_unicode_spaces_is_blank_on_both_paths(engine: Engine) -> None:
    """An em space (U+2003) alone is a blank for the per-record path (``str.strip()``): the bulk path
    does not copy it either."""
    org = {"records": [{"object": "Lead", "Email": "p1@example.jp", "Title": "課長", "OwnerId": LINKED_OWNER,
                        "Phone": "\u2003", "HasOptedOutOfEmail": False, "LeadSource": "\u205f"}],
           "existing": [], "cap": None, "prefer": "contact", "filter": False}  # fmt: skip
    clock = build(engine, org)
    outs = sync(engine, config(org, 0), clock)
    assert outs[0]["counts"]["ma"]["create"] == 1
    prospect = ProspectService(engine, clock=clock).find_by_email("p1@example.jp")[0]
    assert (prospect["phone"], prospect["source"]) == (None, "CRM")


def test_the_sql_email_key_is_email_key(engine: Engine) -> None:
    """The key the bulk path computes in SQL equals ``email_key`` — on PostgreSQL wherever it is
    ASCII (other keys are left to the per-record path, which computes them in Python)."""
    from renkei.connector.bulk import _Sql

    with engine.connect() as conn:
        sql = _Sql(conn)
        got = [tuple(conn.execute(sa.select(sql.email_key(sa.literal(k)), sql.ascii_key(sql.email_key(sa.literal(k))))).one())
               for k in KEYS]  # fmt: skip
    for raw, (key, ascii_) in zip(KEYS, got, strict=True):
        if ascii_ or key is None:
            assert key == email_key(raw), raw
    assert all(a for _, a in got[:5])  # full-width, spaced and mixed-case Latin emails are keyed in SQL


def test_explain_reads_a_bulk_create(engine: Engine) -> None:
    org = {"records": [{"object": "Lead", "Email": "e@example.jp", "Title": "課長", "OwnerId": LINKED_OWNER,
                        "Phone": None, "HasOptedOutOfEmail": False}],
           "existing": [], "cap": None, "prefer": "contact", "filter": False}  # fmt: skip
    clock = build(engine, org)
    svc = SyncService(engine, config(org, 0), clock=clock)
    run = svc.run()
    with engine.connect() as conn:
        pid = conn.execute(sa.select(sync_link.c.prospect_id)).scalar_one()
    [field] = svc.explain(pid, "jobTitle")["fields"]
    assert (field["marketingValue"], field["lastWrite"]["runId"], field["lastWrite"]["to"],
            field["lastWrite"]["writtenTo"], field["nextCycle"]["write"]) == ("課長", run["runId"], "課長", "ma", None)  # fmt: skip
    assert svc.rollback(run["runId"])["restored"] == 0  # a run's creates are not undone (as before)


def plain_leads(n: int) -> dict[str, Any]:
    """An org of ``n`` leads the bulk path takes (p0@… onwards), no filter or cap."""
    return {"records": [{"object": "Lead", "Email": f"p{i}@example.jp", "Title": "課長", "OwnerId": LINKED_OWNER,
                         "Phone": None, "HasOptedOutOfEmail": False} for i in range(n)],
            "existing": [], "cap": None, "prefer": "contact", "filter": False}  # fmt: skip


def built(engine: Engine, org: dict[str, Any]) -> tuple[dict[str, Any], FixedClock]:
    """``org`` built in ``engine`` (``build``), and the clock after it."""
    return org, build(engine, org)


def test_a_chunk_rechecks_its_records_when_another_connection_committed(sqlite_engine: Engine) -> None:
    """SQLite commits the copy a chunk at a time: a prospect someone creates in between with the
    email of a record still to come takes that record (the planner links them), no duplicate."""
    engine = sqlite_engine
    org, clock = built(engine, plain_leads(6))
    commit_chunk = bulk_path._commit_chunk
    chunks: list[int] = []
    theirs: list[int] = []

    def someone_writes_after_the_first(*args: Any) -> tuple[int, int]:
        version, made = commit_chunk(*args)
        if not chunks:  # between the first chunk and the second, from another connection
            theirs.append(ProspectService(engine, clock=clock).create({"email": "P5@example.jp"})["id"])
        chunks.append(made)
        return version, made

    with (
        mock.patch.object(bulk_path, "_CHUNK", 2),
        mock.patch.object(bulk_path, "_commit_chunk", someone_writes_after_the_first),
    ):
        out = SyncService(engine, config(org, 0), clock=clock).run()
    assert chunks == [2, 2, 1] and out["counts"]["ma"]["create"] == 5 and out["counts"]["link"] == 1
    with engine.connect() as conn:
        keys = [r.emailKey for r in conn.execute(sa.select(t.prospect.c.emailKey))]
        linked = conn.execute(sa.select(sync_link.c.prospect_id).join(t.prospect, sync_link.c.prospect_id == t.prospect.c.id)
                              .where(t.prospect.c.emailKey == "p5@example.jp")).scalar_one()  # fmt: skip
    assert sorted(keys) == [f"p{i}@example.jp" for i in range(6)] and [linked] == theirs


@pytest.mark.parametrize("probes", [2, 8], ids=["past-the-probes", "within-the-probes"])
def test_the_mark_stays_below_records_changed_during_the_copy(sqlite_engine: Engine, probes: int) -> None:
    """Records edited in the CRM while the copy runs (after it read them) are passed over by the
    copy's watermark, found by probing the newest records or, past ``_PROBES`` of them, by an
    index; the same cycle then reads their change (which the copy already took) and the next
    writes nothing."""
    engine = sqlite_engine
    contacts = [{"object": "Contact", "Email": f"c{i}@example.jp", "Title": "課長"} for i in range(6)]
    org, clock = built(engine, {**plain_leads(6), "records": [*plain_leads(6)["records"], *contacts]})
    commit_chunk, newest_read = bulk_path._commit_chunk, bulk_path._newest_read
    crm = CrmService(engine, clock=clock)
    ids: dict[str, str] = {}
    with engine.connect() as conn:
        for obj in ("Lead", "Contact"):
            table = t.CRM_TABLES[obj]
            ids.update(conn.execute(sa.select(table.c.Email, table.c.Id)).all())
    # the newest three of each object, after the first chunk (two leads) is in
    edited = {
        obj: [ids[f"{x}{i}@example.jp"] for i in (3, 4, 5)] for obj, x in (("Lead", "p"), ("Contact", "c"))
    }
    marks: dict[str, Any] = {}

    def edits_after_the_first(*args: Any) -> tuple[int, int]:
        out = commit_chunk(*args)
        if not marks.get("edited"):
            marks["edited"] = True
            clock.advance(seconds=60)
            for obj, rids in edited.items():
                for rid in rids:
                    crm.update(obj, rid, {"Title": "部長"})
        return out

    def newest(conn: Connection, sql: Any, table: sa.Table, pending: Any) -> Any:
        marks[table.name] = found = newest_read(conn, sql, table, pending)
        return found

    with (
        mock.patch.object(bulk_path, "_CHUNK", 2),
        mock.patch.object(bulk_path, "_PROBES", probes),
        mock.patch.object(bulk_path, "_commit_chunk", edits_after_the_first),
        mock.patch.object(bulk_path, "_newest_read", newest),
    ):
        first = SyncService(engine, config(org, 0), clock=clock).run()
    assert first["counts"]["ma"]["create"] == 12 and first["counts"]["link"] == 0
    # past the probes both objects build the pending records' index (once)
    assert marks["crm_lead"].id == ids["p2@example.jp"] and marks["crm_contact"].id == ids["c2@example.jp"]
    with engine.connect() as conn:
        titles = sorted(conn.execute(sa.select(t.prospect.c.jobTitle)).scalars())
        mark = dict(conn.execute(sa.select(sync_watermark.c.source, sync_watermark.c.record_id)).all())
    assert titles == ["課長"] * 6 + ["部長"] * 6  # the later chunks copied the records as they are now
    assert mark["crm:Lead"] in edited["Lead"] and mark["crm:Contact"] in edited["Contact"]  # read past since
    clock.advance(seconds=5)
    second = SyncService(engine, config(org, 0), clock=clock).run()
    assert quiet(second), second["counts"]


def test_conversions_and_merges_of_bulk_created_prospects_end_as_on_the_per_record_path(
    engine: Engine, _templates: _Templates, tmp_path: Path
) -> None:
    """After the initial sync (SQLite's bulk copy: values held by ranges), a lead converted to a new
    contact and merges of leads and of contacts move links and agreed values (a row of their own
    now, the range no longer speaking for them) exactly as after the per-record path."""
    contacts = [{"object": "Contact", "Email": f"c{i}@example.jp", "Title": "部長"} for i in range(2)]
    org = {**plain_leads(4), "records": [*plain_leads(4)["records"], *contacts]}
    backend = "postgresql" if engine.dialect.name == "postgresql" else "sqlite"
    results = []
    for threshold in (0, 10**9):
        with fresh(_templates, backend, tmp_path) as db:
            clock = build(db, org)
            first = sync(db, config(org, threshold), clock)
            crm = CrmService(db, clock=clock)
            with db.connect() as conn:
                held = conn.execute(sa.select(sa.func.count()).select_from(sync_state_range)).scalar_one()
                assert held == (2 if threshold == 0 and backend == "sqlite" else 0)
                ids = {}
                for obj in ("Lead", "Contact"):
                    table = t.CRM_TABLES[obj]
                    ids.update(conn.execute(sa.select(table.c.Email, table.c.Id)).all())
            crm.convert_lead(ids["p0@example.jp"], do_not_create_opportunity=True)
            clock.advance(seconds=1)
            crm.merge("Lead", ids["p1@example.jp"], [ids["p2@example.jp"]])
            clock.advance(seconds=1)
            crm.merge("Contact", ids["c0@example.jp"], [ids["c1@example.jp"]])
            clock.advance(seconds=1)
            after = sync(db, config(org, threshold), clock)
            assert quiet(after[-1]) and quiet(after[-2]), after[-1]["counts"]
            results.append((outcome(db), [r["counts"] for r in first + after]))
    (bulk, bulk_counts), (per_record, per_record_counts) = results
    assert bulk == per_record
    assert bulk_counts == per_record_counts
    assert len(bulk["links"]) == 4  # p0's contact, p1 (p2 merged in), p3, c0 (c1 merged in)


def test_a_large_initial_sync_refreshes_its_postgresql_statistics(pg_url: str) -> None:
    """PostgreSQL only (SQLite keeps no planner statistics): after the bulk path has filled the
    prospect, link, agreed-value and audit tables, each is analysed — with autovacuum off (as on
    these machines) or behind, the planner would take them for empty and an idle cycle right after
    an initial sync of a million records took 237 ms instead of tens."""
    engine = make_engine(pg_url)
    clock = FixedClock(START)
    crm = CrmService(engine, clock=clock)
    crm.insert_bulk("Lead", [{"LastName": f"統計{i}", "Company": "統計商事", "Email": f"s{i}@example.jp"}
                             for i in range(1500)], validate=False)  # fmt: skip
    cfg = c.parse(c.DEFAULT_YAML).model_copy(update={"bulk_create_threshold": 1000})
    out = SyncService(engine, cfg, clock=clock).run()
    assert out["counts"]["ma"]["create"] == 1500
    with engine.connect() as conn:
        estimates = dict(
            conn.execute(
                sa.text(
                    "SELECT relname, reltuples FROM pg_class WHERE relname IN "
                    "('prospect', 'sync_link', 'sync_state', 'sync_audit')"
                )
            ).all()  # fmt: skip
        )
    assert estimates == {"prospect": 1500, "sync_link": 1500, "sync_state": 1500, "sync_audit": 1500}
    engine.dispose()


def test_the_cycle_reads_no_bulk_created_prospect_but_an_edit_made_since(sqlite_engine: Engine) -> None:
    """The bulk copy's new prospects are known by their stamp and id ranges: the same cycle's read of
    changed prospects passes over them without reading their rows (a million after an initial sync),
    but a user's edit of one made after the copy (a new ``updatedAt``) is read and synced — and
    another connection's prospect created between two chunks (the copy's stamp, an id between its
    ranges) is read as well."""
    engine = sqlite_engine
    org, clock = built(engine, plain_leads(5))
    commit_chunk = bulk_path._commit_chunk
    theirs: list[int] = []

    def someone_creates_after_the_first(*args: Any) -> tuple[int, int]:
        version, made = commit_chunk(*args)
        if not theirs:  # the copy's own instant (a fixed clock): only its id tells it apart
            theirs.append(ProspectService(engine, clock=clock).create({"email": "x@example.jp"})["id"])
        return version, made

    copy = service_module.create_in_bulk

    def then_a_user_edits(svc: SyncService, run_id: int, started: dt.datetime) -> Any:
        made = copy(svc, run_id, started)
        clock.advance(seconds=1)
        with engine.connect() as conn:
            pid = conn.execute(
                sa.select(t.prospect.c.id).where(t.prospect.c.email == "p3@example.jp")
            ).scalar_one()
        ProspectService(engine, clock=clock).update(pid, {"comments": "展示会で名刺交換"})
        return made

    svc = SyncService(engine, config(org, 0), clock=clock)
    with (
        mock.patch.object(bulk_path, "_CHUNK", 2),
        mock.patch.object(bulk_path, "_commit_chunk", someone_creates_after_the_first),
        mock.patch.object(service_module, "create_in_bulk", then_a_user_edits),
    ):
        out = svc.run()
    assert out["counts"]["ma"]["create"] == 5
    assert svc._bulk_created is not None and len(svc._bulk_created.ranges) == 2  # theirs comes between
    with engine.connect() as conn:
        rows = {r.email: r for r in conn.execute(sa.select(t.prospect))}
        lead = conn.execute(
            sa.text('SELECT "Description" FROM crm_lead WHERE "Email" = \'p3@example.jp\'')
        ).scalar()
    assert set(svc._read_prospects) == {rows["p3@example.jp"].id, *theirs}
    assert lead == "展示会で名刺交換" and out["counts"]["crm"]["update"] == 1


def test_the_pending_records_live_in_memory_during_the_copy_only(sqlite_engine: Engine) -> None:
    """SQLite: the connection's temporary database is in memory while the copy runs (no temporary
    file to write, a quick drop), and the setting is put back for the pooled connection after."""
    engine = sqlite_engine
    org, clock = built(engine, plain_leads(3))
    copy = bulk_path._copy
    seen: list[int] = []
    used: list[Any] = []

    def watched(svc: SyncService, conn: Any, *args: Any) -> int:
        seen.append(int(conn.exec_driver_sql("PRAGMA temp_store").scalar_one()))
        used.append(conn.connection.driver_connection)
        return int(copy(svc, conn, *args))

    with mock.patch.object(bulk_path, "_copy", watched):
        out = SyncService(engine, config(org, 0), clock=clock).run()
    assert out["counts"]["ma"]["create"] == 3 and seen == [2]  # 2: MEMORY
    assert used[0].execute("PRAGMA temp_store").fetchone()[0] == 0  # back to the default (as compiled)


def test_the_copy_finds_each_owner_by_index(sqlite_engine: Engine) -> None:
    """The bulk copy looks up each record's owner among the marketing users by their CRM user id:
    through an index (migration sync_0005), not a read of every user per record (with a hundred
    users, ~10 s of a million-record copy)."""
    with sqlite_engine.connect() as conn:
        plan = conn.exec_driver_sql(
            'EXPLAIN QUERY PLAN SELECT min(id) FROM ma_user WHERE "salesforceId" = ?', ("0055g0000000001AAA",)
        ).all()
    assert any("USING COVERING INDEX ix_ma_user_salesforceid" in str(row) for row in plan), plan


_STAMPS = [dt.datetime(2026, 12, 1, 9, 0, s, tzinfo=dt.UTC) for s in range(4)]


@settings(max_examples=8, deadline=None)
@given(
    stamps=st.lists(st.sampled_from([None, *_STAMPS]), min_size=1, max_size=30),
    made_at=st.sampled_from(_STAMPS),
    cuts=st.lists(st.integers(1, 30), min_size=2, max_size=6),
    top_extra=st.integers(0, 3),
)
@example(
    stamps=[_STAMPS[0], None, None, _STAMPS[1], _STAMPS[2]], made_at=_STAMPS[1], cuts=[2, 3], top_extra=0
)
@example(
    stamps=[_STAMPS[0], None, None, _STAMPS[1], _STAMPS[1]], made_at=_STAMPS[1], cuts=[2, 3], top_extra=0
)
@example(
    stamps=[_STAMPS[2], None, None, _STAMPS[1], _STAMPS[1]], made_at=_STAMPS[1], cuts=[2, 3], top_extra=2
)
@example(stamps=[_STAMPS[1]] * 8, made_at=_STAMPS[1], cuts=[2, 3, 5, 6], top_extra=0)
def test_the_read_past_a_bulk_copy_is_the_read_without_it_in_index_order(
    stamps: list[dt.datetime | None], made_at: dt.datetime, cuts: list[int], top_extra: int
) -> None:
    """``_past_bulk``'s index ranges select exactly the prospects up to the newest but the copy's, in
    the (updatedAt, id) order the single filtered read gave — gaps between ranges, prospects after
    the copy, and a newest prospect older than the copy (the filtered read) included."""
    from renkei.connector.bulk import BulkCreated
    from renkei.connector.service import _past_bulk, _Top
    from renkei.store.db import UTCDateTime

    md = sa.MetaData()
    p = sa.Table(
        "p", md, sa.Column("id", sa.Integer, primary_key=True), sa.Column("updatedAt", UTCDateTime())
    )
    sa.Index("ix_p_updatedat", p.c.updatedAt, p.c.id)
    engine = sa.create_engine("sqlite://")
    md.create_all(engine)
    bounds = sorted(set(cuts))
    ranges = tuple((lo, hi) for lo, hi in zip(bounds[::2], bounds[1::2], strict=False) if lo <= hi)
    if not ranges:
        return
    rows = [{"id": i + 1, "updatedAt": made_at if any(lo <= i + 1 <= hi for lo, hi in ranges) else s}
            for i, s in enumerate(stamps)]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(p.insert(), rows)
        dated = [(r["updatedAt"], r["id"]) for r in rows if r["updatedAt"] is not None]
        if not dated:
            return
        newest = sorted(dated)[-1 - min(top_extra, len(dated) - 1)]  # at the top, or below it
        top = _Top(*newest)
        bulk = BulkCreated(sum(hi - lo + 1 for lo, hi in ranges), made_at, ranges)
        last = sa.literal(top.updatedAt, type_=p.c.updatedAt.type)
        upto = sa.or_(
            p.c.updatedAt < last, sa.and_(p.c.updatedAt == last, p.c.id <= top.id), p.c.updatedAt.is_(None)
        )
        made = sa.literal(made_at, type_=p.c.updatedAt.type)
        copied = sa.and_(p.c.updatedAt == made, sa.or_(*[p.c.id.between(lo, hi) for lo, hi in ranges]))
        order = [p.c.updatedAt, p.c.id]
        expected = list(
            conn.execute(sa.select(p.c.id).where(upto, sa.not_(copied)).order_by(*order)).scalars()
        )
        got = [i for piece in _past_bulk(p, bulk, top, upto)
               for i in conn.execute(sa.select(p.c.id).where(piece).order_by(*order)).scalars()]  # fmt: skip
    assert got == expected


def test_agreed_values_that_refer_to_the_create_audit_read_whole_and_downgrade_whole(db_url: str) -> None:
    """A bulk-created prospect's agreed values refer to its create audit (sync_0006; on SQLite the
    copy writes them so, on PostgreSQL the test refers them by hand): read merged, they are the
    values whole, and the downgrade spells each row out whole in SQL."""
    from alembic import command

    from renkei.store import migrate
    from renkei.store.db import dispose_engines

    engine = make_engine(db_url)
    org, clock = built(engine, {**plain_leads(3), "records": [*plain_leads(3)["records"],
                                {"object": "Contact", "Email": "c0@example.jp", "Title": " "}]})  # fmt: skip
    SyncService(engine, config(org, 0), clock=clock).run()
    with engine.begin() as conn:
        pids = list(conn.execute(sa.select(t.prospect.c.id)).scalars())
        rows = conn.execute(service_module._state_rows()).all()
        whole = {pid: values for pid, (values, _, _) in service_module.read_states(conn, pids).items()}
        assert len(whole) == 4 and all(v["email"] for v in whole.values())
        if engine.dialect.name == "sqlite":
            # the leads' values held by their range (sync_0007), the contact's (a blank title, a pair of
            # its own) by its row, which refers to its create audit
            ranges = conn.execute(sa.select(sync_state_range)).all()
            assert [(r.crm_object, r.last_prospect_id - r.first_prospect_id + 1) for r in ranges] == [
                ("Lead", 3)
            ]
            assert len(rows) == 1 and all(base is not None for *_, base in rows)
        else:  # PostgreSQL's copy writes them whole: refer them as SQLite's copy does
            assert len(rows) == 4 and all(base is None for *_, base in rows)
            for r in conn.execute(sa.select(sync_audit.c.id, sync_audit.c.prospect_id, sync_audit.c.new)
                                  .where(sync_audit.c.action == "create")):  # fmt: skip
                shared = {k: v for k, v in r.new.items() if k != "source"}
                own = {k: v for k, v in whole[r.prospect_id].items() if k not in shared or shared[k] != v}
                conn.execute(sync_state.update().where(sync_state.c.prospect_id == r.prospect_id)
                             .values({"values": own, "base_audit_id": r.id}))  # fmt: skip
        again = {pid: values for pid, (values, _, _) in service_module.read_states(conn, pids).items()}
    assert again == whole
    # the leads' title copied as it is (read from the audit), the contact's blank one paired (its own)
    assert sorted(str(v["jobTitle"]) for v in whole.values()) == ["[' ', None]", "課長", "課長", "課長"]
    engine.dispose()

    def decoded(v: Any) -> Any:
        return json.loads(v) if isinstance(v, str) else v

    # sync_0007's downgrade: a row for each prospect a range stood for, referring to its audit
    command.downgrade(migrate.alembic_config(db_url), "sync_0006")
    dispose_engines()
    engine = make_engine(db_url)
    with engine.connect() as conn:
        referring = conn.execute(sa.text(
            'SELECT s.prospect_id, s."values", a.new, s.sparse FROM sync_state s '
            "LEFT JOIN sync_audit a ON a.id = s.base_audit_id")).all()  # fmt: skip
    assert {
        pid: service_module.state_values(decoded(v), decoded(new)) for pid, v, new, _ in referring
    } == whole
    assert all(sparse for *_, sparse in referring)
    engine.dispose()
    # sync_0006's: each row spelled out whole
    command.downgrade(migrate.alembic_config(db_url), "sync_0005")
    dispose_engines()
    engine = make_engine(db_url)
    state = sa.Table("sync_state", sa.MetaData(), autoload_with=engine)
    with engine.connect() as conn:
        back = {
            r.prospect_id: r.values for r in conn.execute(sa.select(state.c.prospect_id, state.c["values"]))
        }
    back = {pid: decoded(v) for pid, v in back.items()}
    assert "base_audit_id" not in state.c and back == whole
    engine.dispose()
    migrate.upgrade(db_url)
    dispose_engines()


def test_edits_of_bulk_created_prospects_sync_and_store_their_agreed_values_whole(
    sqlite_engine: Engine,
) -> None:
    """After the copy, a CRM edit of one record and a marketing edit of another's prospect each sync
    (judged against the values that refer to the create audit) and leave that prospect's agreed values
    stored whole; the untouched prospects keep the reference; the cycle after writes nothing."""
    engine = sqlite_engine
    org, clock = built(engine, plain_leads(4))
    SyncService(engine, config(org, 0), clock=clock).run()
    with engine.connect() as conn:
        pids = dict(conn.execute(sa.select(t.prospect.c.email, t.prospect.c.id)).all())
        lead1 = conn.execute(
            sa.select(t.CRM_TABLES["Lead"].c.Id).where(t.CRM_TABLES["Lead"].c.Email == "p1@example.jp")
        ).scalar_one()
    clock.advance(seconds=5)
    CrmService(engine, clock=clock).update("Lead", lead1, {"Title": "部長"})
    ProspectService(engine, clock=clock).update(pids["p2@example.jp"], {"comments": "展示会で名刺交換"})
    out = SyncService(engine, config(org, 0), clock=clock).run()
    # the CRM writes: p2's comments, and p1's source (a record without one gave its prospect the CRM
    # default, which crm_wins_unless_blank writes back with the record's first change)
    assert out["counts"]["ma"]["update"] == 1 and out["counts"]["crm"]["update"] == 2, out["counts"]
    assert CrmService(engine, clock=clock).get("Lead", lead1)["LeadSource"] == "CRM"
    with engine.connect() as conn:
        job = conn.execute(
            sa.select(t.prospect.c.jobTitle).where(t.prospect.c.id == pids["p1@example.jp"])
        ).scalar_one()
        description = conn.execute(sa.select(t.CRM_TABLES["Lead"].c.Description)
                                   .where(t.CRM_TABLES["Lead"].c.Email == "p2@example.jp")).scalar_one()  # fmt: skip
        stored = {pid: base for pid, _, _, _, base in conn.execute(service_module._state_rows())}
        states = {
            pid: values
            for pid, (values, _, _) in service_module.read_states(conn, list(pids.values())).items()
        }
    assert job == "部長" and description == "展示会で名刺交換"
    # the edited prospects' values stored whole; the others still stand in their range
    assert stored == {pids["p1@example.jp"]: None, pids["p2@example.jp"]: None}
    assert states[pids["p1@example.jp"]]["jobTitle"] == "部長"
    assert states[pids["p2@example.jp"]]["comments"] == "展示会で名刺交換"
    assert states[pids["p0@example.jp"]]["jobTitle"] == "課長"  # from the create audit
    assert states[pids["p3@example.jp"]]["source"] == [None, "CRM"]  # the range's form
    clock.advance(seconds=5)
    after = SyncService(engine, config(org, 0), clock=clock).run()["counts"]
    assert not any(after[s][k] for s in ("ma", "crm") for k in ("create", "update", "delete")), after
