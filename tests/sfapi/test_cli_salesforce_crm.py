"""A user whose CRM is a Salesforce org (here another renkei's `renkei serve`, over TLS) configures
`crm:` in connector.yaml and drives the connector with the same commands: `connector test`,
`config check` (describe and counts asked of the org), `sync run` both ways, and the "who syncs"
filter evaluated by the org, not by this database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from renkei.cli.cmd_sync import _install
from renkei.crm.service import CrmService
from tests.cli_helpers import cli

from .conftest import Server, connector_for


@pytest.fixture
def connector_yaml(
    cli_env: str, sqlite_server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    return connector_for(sqlite_server, tmp_path, monkeypatch)


def test_sync_with_a_salesforce_org_from_the_cli(connector_yaml: Path, sqlite_server: Server) -> None:
    org = CrmService(sqlite_server.engine)
    _install(sqlite_server.engine)  # the org has the package's pi__ fields
    org.add_field("Lead", "Partner__c", "checkbox")
    tanaka = org.create("Lead", {"LastName": "田中", "Company": "田中商事", "Email": "tanaka@example.jp",
                                 "Title": "課長", "Partner__c": False})  # fmt: skip
    org.create(
        "Lead", {"LastName": "鈴木", "Company": "鈴木販売", "Email": "suzuki@example.jp", "Partner__c": True}
    )
    org.create("Contact", {"LastName": "佐藤", "Email": "sato@example.jp"})

    tested = cli("connector", "test")
    assert tested["ok"] is True, tested
    assert sqlite_server.token not in json.dumps(tested)
    # A field the org lacks is found by asking the org's describe, not this database's.
    assert cli("connector", "set", "objects.Lead.filter", "Partner__c = false")["new"] == "Partner__c = false"
    checked = cli("config", "check")
    assert checked["ok"] is True, checked
    assert (checked["counts"]["Lead"], checked["counts"]["Contact"]) == (1, 1)
    refused = cli("connector", "install-package", ok=False)
    assert refused.exit_code == 1 and "install the Account Engagement package" in refused.stderr

    first = cli("sync", "run")
    assert first["counts"]["ma"]["create"] == 2 and first["errors"] == []
    prospects = {p["email"]: p for p in cli("prospect", "list")}
    assert sorted(prospects) == ["sato@example.jp", "tanaka@example.jp"]  # the partner lead stays out
    assert prospects["tanaka@example.jp"]["salesforceLeadId"] == tanaka

    org.update("Lead", tanaka, {"Title": "部長"})
    sqlite_server.clock.advance(seconds=1)
    cli("sync", "run")
    assert cli("prospect", "get", "tanaka@example.jp")["jobTitle"] == "部長"

    pid = str(prospects["tanaka@example.jp"]["id"])
    cli("prospect", "update", pid, "--set", "comments=資料請求: 料金表")
    cli("sync", "run")
    assert org.get("Lead", tanaka)["Description"] == "資料請求: 料金表"

    # The lead becomes a partner: the org's filter no longer matches, the prospect is recycled.
    org.update("Lead", tanaka, {"Partner__c": True})
    sqlite_server.clock.advance(seconds=1)
    cli("sync", "run")
    assert cli("prospect", "get", pid, ok=False).exit_code == 1
    assert cli("sync", "run")["counts"]["crm"] == {"create": 0, "update": 0, "delete": 0}


def test_connector_test_without_an_org_says_what_to_configure(
    cli_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RENKEI_CONNECTOR_CONFIG", str(tmp_path / "connector.yaml"))
    result = cli("connector", "test", ok=False)
    assert result.exit_code == 1
    assert "set crm.type: salesforce" in result.stderr
    bad = tmp_path / "connector.yaml"
    bad.write_text("crm:\n  type: salesforce\n", encoding="utf-8")
    result = cli("sync", "run", ok=False)
    assert result.exit_code == 1 and "crm.salesforce" in result.stderr
