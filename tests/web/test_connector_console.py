"""The connector console over real HTTP (when the connector feature is installed): a field rule
changed and the config check answering, a filter with live counts, a broken filter refused and
rolled back, the dry run, explain, and the audit trail."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from renkei.clock import FixedClock
from renkei.crm.service import CrmService
from renkei.marketing.service import ProspectService
from renkei.web.auth import AuthService

from .helpers import T0, Browser, live_server, make_user

pytest.importorskip("renkei.connector.settings", reason="the connector feature is not installed")


def test_rules_filters_plan_explain(sqlite_engine: Engine, tmp_path: Path) -> None:
    import yaml

    engine, clock = sqlite_engine, FixedClock(T0)
    make_user(engine, "ops@example.com", "admin")
    crm = CrmService(engine, clock=clock)
    crm.create("Lead", {"LastName": "山田", "Company": "連携株式会社", "Email": "yamada@renkei.example"})
    crm.create("Lead", {"LastName": "佐藤", "Company": "Acme", "Email": "sato@acme.example"})
    prospect = ProspectService(engine, clock=clock).create({"email": "suzuki@example.jp", "lastName": "鈴木"})
    config = tmp_path / "connector.yaml"
    with live_server(engine, clock, connector_config=str(config)) as base:
        web = Browser(base)
        web.sign_in("ops@example.com")
        page = web.get("/app/connector").text
        assert 'id="rule-company"' in page and "CRM を優先" in page
        hx = {"HX-Request": "true", "X-CSRF-Token": web.csrf}
        changed = web.client.post(
            "/app/connector/rule", data={"field": "company", "rule": "ma_wins"}, headers=web._headers(hx)
        )
        assert changed.status_code == 200 and re.search(
            r'id="check-saved">[^<]*company: ma_wins', changed.text
        )
        saved = yaml.safe_load(config.read_text())
        assert [m["rule"] for m in saved["fields"] if m["ma"] == "company"] == ["ma_wins"]

        counted = web.client.post(
            "/app/connector/filter",
            data={"object_name": "Lead", "where": "Company = '連携株式会社'"},
            headers=web._headers(hx),
        )
        counts = dict(re.findall(r'data-count="(\w+)">([^<]*)<', counted.text))
        assert (counts["Lead"], counts["Contact"], counts["wouldSync"]) == ("1", "0", "1")
        broken = web.client.post(
            "/app/connector/filter",
            data={"object_name": "Lead", "where": "Compny != null"},
            headers=web._headers(hx),
        )
        assert broken.status_code == 400 and "Compny" in broken.text
        assert yaml.safe_load(config.read_text())["objects"]["Lead"]["filter"] == "Company = '連携株式会社'"

        plan = web.get("/app/connector/plan", headers={"HX-Request": "true"}).text
        assert "Nothing was written." in plan or "何も書き込んでいません。" in plan
        explained = web.get(
            f"/app/connector/explain?prospect_id={prospect['id']}", headers={"HX-Request": "true"}
        ).text
        assert "<code>lastName</code>" in explained
        assert (
            web.client.post("/app/connector/rule", data={"field": "company", "rule": "ma_wins"}).status_code
            == 403
        )
        web.close()
    actions = [(e["action"], e["after"]) for e in AuthService(engine).audit_log()]
    assert ("connector.fields.company.rule", "ma_wins") in actions
    assert ("connector.objects.Lead.filter", "Company = '連携株式会社'") in actions


def test_connector_operations_over_the_rest_api(sqlite_engine: Engine, tmp_path: Path) -> None:
    import httpx

    engine, clock = sqlite_engine, FixedClock(T0)
    user = make_user(engine, "ops@example.com", "admin")
    auth = AuthService(engine, clock=clock)
    operator = {"Authorization": f"Bearer {auth.create_token(user['id'], 'ops', ['connector']).token}"}
    reader = {"Authorization": f"Bearer {auth.create_token(user['id'], 'read', ['read']).token}"}
    CrmService(engine, clock=clock).create(
        "Lead", {"LastName": "山田", "Company": "連携", "Email": "yamada@renkei.example"}
    )
    with (
        live_server(engine, clock, connector_config=str(tmp_path / "connector.yaml")) as base,
        httpx.Client(base_url=base, timeout=60) as client,
    ):
        assert client.get("/api/v5/connector/queue", headers=reader).json()["code"] == 10003
        assert client.get("/api/v5/connector/queue", headers=operator).json()["pending"] == 0
        plan = client.get("/api/v5/connector/plan", headers=operator).json()
        assert [o["action"] for o in plan["operations"] if o["object"] == "Lead"] == ["create"]
        run = client.post("/api/v5/connector/run", headers=operator).json()
        assert isinstance(run["runId"], int)
        prospects = client.get("/api/v5/connector/errors", headers=operator).json()
        assert prospects == {"values": []}
        explained = client.get("/api/v5/connector/explain/1", headers=operator).json()
        assert explained["linkedTo"]["object"] == "Lead" and explained["prospectId"] == 1
        assert client.get("/api/v5/connector/explain/99", headers=operator).status_code == 404
        assert client.post("/api/v5/connector/retry", headers=operator).json()["retried"] == 0


def test_mapping_editor_reports_a_field_on_one_object_only(sqlite_engine: Engine, tmp_path: Path) -> None:
    import yaml

    engine, clock = sqlite_engine, FixedClock(T0)
    make_user(engine, "ops@example.com", "admin")
    ProspectService(engine, clock=clock).add_field("Budget", "text", length=80)
    CrmService(engine, clock=clock).add_field("Lead", "Budget__c", "text", length=80)
    config = tmp_path / "connector.yaml"
    with live_server(engine, clock, connector_config=str(config)) as base:
        web = Browser(base)
        web.sign_in("ops@example.com")
        web.get("/app/connector")
        hx = web._headers({"HX-Request": "true", "X-CSRF-Token": web.csrf})
        mapped = web.client.post(
            "/app/connector/mapping",
            data={
                "ma": "Budget__c",
                "lead_field": "Budget__c",
                "contact_field": "Budget__c",
                "rule": "ma_wins",
            },
            headers=hx,
        )
        assert mapped.status_code == 200
        assert re.search(
            r"FIELD_ON_ONE_OBJECT_ONLY</strong> Budget__c: Budget__c exists on Lead but not on Contact",
            mapped.text,
        )
        assert {
            "ma": "Budget__c",
            "crm": "Budget__c",
            "rule": "ma_wins",
            "sync_blanks": False,
        } in yaml.safe_load(config.read_text())["fields"]
        bad = web.client.post(
            "/app/connector/mapping",
            data={"ma": "Budget__c", "lead_field": "X", "rule": "sometimes"},
            headers=hx,
        )
        assert bad.status_code == 400
        removed = web.client.post(
            "/app/connector/mapping", data={"ma": "Budget__c", "remove": "1"}, headers=hx
        )
        assert removed.status_code == 200 and "Budget__c" not in config.read_text()
        web.close()
