from __future__ import annotations

import json

from typer.testing import CliRunner

from renkei.cli import app

runner = CliRunner()


def run(*args: str) -> tuple[int, dict | list | None, str]:  # type: ignore[type-arg]
    result = runner.invoke(app, [*args, "--json"])
    out = json.loads(result.stdout) if result.stdout.strip().startswith(("{", "[")) else None
    return result.exit_code, out, result.stderr


def test_crm_commands_end_to_end(cli_env: str) -> None:
    code, out, _ = run("crm", "create", "Lead", "--set", "LastName=高橋", "--set", "Company=高橋商店",
                       "--set", "Email=takahashi@example.jp")  # fmt: skip
    assert code == 0 and out is not None and out["success"] is True and out["errors"] == []
    lead = out["id"]
    code, out, _ = run("crm", "get", "Lead", lead[:15], "--fields", "Name,Status")
    assert code == 0 and out == {
        "attributes": {"type": "Lead", "url": f"/services/data/v60.0/sobjects/Lead/{lead}"},
        "Id": lead, "Name": "高橋", "Status": "Open - Not Contacted"}  # fmt: skip
    assert run("crm", "update", "Lead", lead, "--set", "Title=店長")[0] == 0
    code, out, _ = run("crm", "query", "SELECT Title FROM Lead WHERE Email = 'TAKAHASHI@example.jp'")
    assert code == 0 and out is not None and out["totalSize"] == 1 and out["records"][0]["Title"] == "店長"
    code, out, _ = run("crm", "field", "add", "Lead", "Recruiting__c", "--type", "checkbox")
    assert (
        code == 0
        and out is not None
        and (out["name"], out["type"], out["custom"]) == ("Recruiting__c", "boolean", True)
    )
    code, out, _ = run("crm", "describe", "Lead")
    assert code == 0 and out is not None and "Recruiting__c" in [f["name"] for f in out["fields"]]
    code, out, _ = run("crm", "convert-lead", lead, "--opportunity-name", "高橋商店 案件")
    assert code == 0 and out is not None and out["success"] and out["opportunityId"].startswith("006")
    contact = out["contactId"]
    assert run("crm", "delete", "Contact", contact)[0] == 0
    assert run("crm", "get", "Contact", contact)[0] == 1
    assert run("crm", "undelete", "Contact", contact)[0] == 0
    code, out, _ = run("crm", "changes", "Contact")
    assert code == 0 and out is not None and [r["Id"] for r in out["records"]] == [contact]


def test_bad_input_exits_1_with_the_salesforce_code(cli_env: str) -> None:
    code, out, err = run("crm", "create", "Lead", "--set", "FirstName=名無し")
    assert code == 1 and "REQUIRED_FIELD_MISSING" in err
    assert out == {"id": None, "success": False, "errors": [
        {"statusCode": "REQUIRED_FIELD_MISSING", "message": "Required fields are missing: [LastName, Company]",
         "fields": ["LastName", "Company"]}]}  # fmt: skip
    code, out, _ = run("crm", "create", "Lead", "--set", "LastName=x", "--set", "Company=y")
    assert code == 0 and out is not None
    lead = out["id"]
    assert run("crm", "delete", "Lead", lead[:15]) == (0, {"id": lead, "success": True, "errors": []}, "")
    code, out, err = run("crm", "update", "Lead", lead, "--set", "Title=x")
    assert (code, out) == (1, {"id": lead, "success": False, "errors": [
        {"statusCode": "ENTITY_IS_DELETED", "message": "entity is deleted", "fields": []}]})  # fmt: skip
    assert err == "error: ENTITY_IS_DELETED: entity is deleted\n"
    code, out, err = run("crm", "delete", "Lead", "00Q000000000009AAA")
    assert (
        code == 1 and out is not None and out["errors"][0]["statusCode"] == "NOT_FOUND" and "NOT_FOUND" in err
    )
    code, _, err = run("crm", "query", "SELECT Nope FROM Lead")
    assert code == 1 and "INVALID_FIELD" in err
    code, _, err = run("crm", "get", "Lead", "not-an-id")
    assert code == 1 and "MALFORMED_ID" in err
    code, _, err = run("crm", "create", "Widget", "--set", "Name=x")
    assert code == 1 and "INVALID_TYPE" in err
    code, _, err = run("crm", "create", "Lead", "--set", "novalue")
    assert code == 1 and "Field=Value" in err
    assert runner.invoke(app, ["crm", "get"]).exit_code == 2
