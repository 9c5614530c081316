"""``renkei prospect …`` in-process, with JSON output and exit codes, on both backends."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner

from renkei.cli import app

runner = CliRunner()


def run(*args: str, code: int = 0) -> Any:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, (result.stdout, result.stderr)
    return json.loads(result.stdout) if code == 0 and "--json" in args else result


def test_create_get_update_list(cli_env: str) -> None:
    created = run("prospect", "create", "--set", "email=yamada@example.co.jp", "--set", "lastName=山田",
                  "--set", "isDoNotEmail=true", "--json")  # fmt: skip
    assert {k: created[k] for k in ("id", "email", "lastName", "isDoNotEmail", "score", "grade", "isDeleted")} == {
        "id": 1, "email": "yamada@example.co.jp", "lastName": "山田", "isDoNotEmail": True, "score": 0,
        "grade": None, "isDeleted": False,
    }  # fmt: skip
    assert created["createdAt"].endswith("+00:00")
    assert run("prospect", "get", "YAMADA@example.co.jp", "--json") == created
    assert run("prospect", "get", "1", "--json") == created
    updated = run("prospect", "update", "1", "--set", "company=山田商店", "--set", "lastName=", "--json")
    assert (updated["company"], updated["lastName"]) == ("山田商店", None)
    listed = run("prospect", "list", "--limit", "5", "--json")
    assert [(p["id"], p["company"]) for p in listed] == [(1, "山田商店")]


def test_delete_and_undelete(cli_env: str) -> None:
    run("prospect", "create", "--set", "email=a@example.jp", "--json")
    assert run("prospect", "delete", "1", "--json") == {"id": 1, "isDeleted": True}
    assert run("prospect", "list", "--json") == []
    assert [p["id"] for p in run("prospect", "list", "--deleted", "--json")] == [1]
    result = run("prospect", "get", "1", "--json", code=1)
    assert result.stderr.strip() == "error: NOT_FOUND: prospect 1 not found (it is in the recycle bin)"
    assert run("prospect", "undelete", "1", "--json")["isDeleted"] is False


def test_field_add_and_use(cli_env: str) -> None:
    field = run("prospect", "field", "add", "Seminar", "--type", "picklist", "--values", "東京,大阪",
                "--restricted", "--label", "セミナー", "--json")  # fmt: skip
    assert {k: field[k] for k in ("name", "type", "label", "restrictedPicklist")} == {
        "name": "Seminar__c", "type": "picklist", "label": "セミナー", "restrictedPicklist": True
    }  # fmt: skip
    assert [v["value"] for v in field["picklistValues"]] == ["東京", "大阪"]
    created = run("prospect", "create", "--set", "email=s@example.jp", "--set", "Seminar__c=大阪", "--json")
    assert created["Seminar__c"] == "大阪"
    result = run("prospect", "update", "1", "--set", "Seminar__c=福岡", "--json", code=1)
    assert result.stderr.strip() == (
        "error: INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST: Seminar__c: bad value for restricted picklist: '福岡'"
    )


def test_bad_input_exits_1_with_one_line(cli_env: str) -> None:
    cases = [
        (("prospect", "create", "--set", "firstName=x"), "error: REQUIRED_FIELD_MISSING: email: required field missing"),
        (("prospect", "create", "--set", "email"), "error: INVALID_ARGUMENT: --set expects Field=Value, got 'email'"),
        (("prospect", "update", "abc", "--set", "company=x"), "error: MALFORMED_ID: not a prospect id: 'abc'"),
        (("prospect", "get", "nobody@example.jp"), "error: NOT_FOUND: no prospect with email 'nobody@example.jp'"),
        (("prospect", "list", "--order-by", "nope"), "error: INVALID_FIELD: cannot order by unknown field 'nope'"),
        (("prospect", "field", "add", "X", "--type", "colour"),
         "error: INVALID_TYPE: unknown field type 'colour' (use text, textarea, longtextarea, email, phone, url, "
         "number, currency, percent, checkbox, date, datetime, picklist, multipicklist)"),
    ]  # fmt: skip
    for args, line in cases:
        result = run(*args, "--json", code=1)
        assert (result.stdout, result.stderr.replace("\n", "")) == ("", line)
    run("prospect", "create", "--set", "email=dup@example.jp", "--json")
    result = run("prospect", "create", "--set", "email=Dup@Example.jp", "--json", code=1)
    assert result.stderr.startswith("error: DUPLICATE_VALUE: email: another prospect (id 1)")
