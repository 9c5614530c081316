"""``renkei user …`` in-process, with JSON output and exit codes, on both backends."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner

from renkei.cli import app
from renkei.store.db import get_engine
from renkei.web.auth import AuthService

runner = CliRunner()


def run(*args: str, code: int = 0, stdin: str | None = None) -> Any:
    result = runner.invoke(app, list(args), input=stdin)
    assert result.exit_code == code, (result.stdout, result.stderr)
    return json.loads(result.stdout) if code == 0 and "--json" in args else result


def test_users_passwords_roles_and_tokens(cli_env: str) -> None:
    created = run(
        "user", "create", "boss@example.com", "--role", "admin", "--password", "long enough pw", "--json"
    )
    assert {k: created[k] for k in ("id", "email", "role", "isActive", "language")} == {
        "id": 1, "email": "boss@example.com", "role": "admin", "isActive": True, "language": "ja",
    }  # fmt: skip
    # no --password: prompted twice, hidden
    run(
        "user",
        "create",
        "rep@example.com",
        "--role",
        "sales",
        "--json",
        stdin="another password\nanother password\n",
    )
    assert AuthService(get_engine()).authenticate("rep@example.com", "another password")["role"] == "sales"
    assert (
        "already exists"
        in run("user", "create", "boss@example.com", "--password", "long enough pw", code=1).stderr
    )
    assert "at least 10" in run("user", "create", "x@example.com", "--password", "short", code=1).stderr
    assert (
        "unknown role"
        in run(
            "user", "create", "x@example.com", "--role", "owner", "--password", "long enough pw", code=1
        ).stderr
    )
    listed = run("user", "list", "--json")
    assert [(u["email"], u["role"], u["canSignIn"]) for u in listed] == [
        ("boss@example.com", "admin", True),
        ("rep@example.com", "sales", True),
    ]
    assert run("user", "password", "rep@example.com", "--password", "a third password", "--json") == {
        "id": 2, "email": "rep@example.com", "passwordSet": True,
    }  # fmt: skip
    changed = run("user", "set", "rep@example.com", "--role", "read-only", "--inactive", "--json")
    assert (changed["role"], changed["isActive"]) == ("read-only", False)

    token = run(
        "user",
        "token",
        "create",
        "boss@example.com",
        "--name",
        "ci",
        "--scope",
        "read",
        "--scope",
        "write",
        "--json",
    )
    assert token["token"].startswith("rk_") and token["scopes"] == ["read", "write"]
    listed_tokens = run("user", "token", "list", "--json")
    assert [(t["id"], t["name"], t["prefix"], t["revokedAt"]) for t in listed_tokens] == [
        (1, "ci", token["token"][:10], None)
    ]
    assert "token" not in listed_tokens[0]
    assert run("user", "token", "revoke", "1", "--json") == {"id": 1, "revoked": True}
    assert run("user", "token", "list", "boss@example.com", "--json")[0]["revokedAt"] is not None
    assert run("user", "token", "revoke", "9", code=1).exit_code == 1
