"""OAuth token endpoint, bearer tokens, errors in Salesforce's shape, limits and the request log."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import pytest
import requests
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from renkei.cli import app
from renkei.sfapi.auth import TokenService, token_hash
from renkei.sfapi.usage import ApiUsage
from renkei.store.tables_sfapi import sfapi_token

from .conftest import Server, add_user

INVALID_SESSION = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID", "fields": []}]


def test_version_list_needs_no_token_and_carries_no_limit_header(sqlite_server: Server) -> None:
    r = requests.get(sqlite_server.base + "/services/data/", verify=sqlite_server.ca, timeout=10)
    assert r.status_code == 200
    assert {"label": "v60.0", "url": "/services/data/v60.0", "version": "60.0"} in r.json()
    assert "Sforce-Limit-Info" not in r.headers


def test_bad_missing_and_revoked_tokens_are_invalid_session(sqlite_server: Server) -> None:
    url = sqlite_server.base + "/services/data/v60.0/limits"
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        r = requests.get(url, headers=headers, verify=sqlite_server.ca, timeout=10)
        assert (r.status_code, r.json()) == (401, INVALID_SESSION)
    assert TokenService(sqlite_server.engine).revoke(sqlite_server.token)
    r = sqlite_server.session().get(url, timeout=10)
    assert (r.status_code, r.json()) == (401, INVALID_SESSION)


def test_limits_and_limit_header_count_each_call(sqlite_server: Server) -> None:
    s = sqlite_server.session()
    first = s.get(sqlite_server.base + "/services/data/v60.0/limits", timeout=10)
    second = s.get(sqlite_server.base + "/services/data/v60.0/limits/", timeout=10)
    assert first.headers["Sforce-Limit-Info"] == "api-usage=1/15000"
    assert second.headers["Sforce-Limit-Info"] == "api-usage=2/15000"
    # The body counts the call itself, like the header.
    assert second.json() == {"DailyApiRequests": {"Max": 15000, "Remaining": 14998}}
    log = ApiUsage(sqlite_server.engine).log()
    assert [(e.method, e.path, e.status, e.records, e.user_id) for e in log] == [
        ("GET", "/services/data/v60.0/limits", 200, 0, sqlite_server.user_id),
        ("GET", "/services/data/v60.0/limits/", 200, 0, sqlite_server.user_id),
    ]


@pytest.mark.parametrize("api_limit", [2])
def test_exhausted_allocation_is_request_limit_exceeded(api_limit: int, sqlite_server: Server) -> None:
    s = sqlite_server.session()
    url = sqlite_server.base + "/services/data/v60.0/limits"
    assert [s.get(url, timeout=10).status_code for _ in range(2)] == [200, 200]
    r = s.get(url, timeout=10)
    assert r.status_code == 403
    assert r.json() == [
        {
            "message": "TotalRequests Limit exceeded. (2 per 24 hours)",
            "errorCode": "REQUEST_LIMIT_EXCEEDED",
            "fields": [],
        }
    ]
    assert r.headers["Sforce-Limit-Info"] == "api-usage=3/2"


def test_unknown_paths_404_and_wrong_methods_405(sqlite_server: Server) -> None:
    s = sqlite_server.session()
    r = s.get(sqlite_server.base + "/services/data/v60.0/nothing/here", timeout=10)
    assert (r.status_code, r.json()) == (
        404,
        [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}],
    )
    r = s.put(sqlite_server.base + "/services/data/v60.0/limits", timeout=10)
    assert r.status_code == 405
    assert r.json()[0]["errorCode"] == "METHOD_NOT_ALLOWED"
    r = s.get(sqlite_server.base + "/services/data/v12.0/limits", timeout=10)
    assert r.status_code == 404


def test_client_credentials_and_password_flows(sqlite_server: Server, tmp_path: Path) -> None:
    service = TokenService(sqlite_server.engine)
    user = service.find_user("api.user@EXAMPLE.jp")
    client_id, secret = service.create_client(user, "sync")
    token_url = sqlite_server.base + "/services/oauth2/token"
    r = requests.post(
        token_url,
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        verify=sqlite_server.ca,
        timeout=10,
    )
    assert r.status_code == 200
    body = r.json()
    assert (body["token_type"], body["instance_url"]) == ("Bearer", sqlite_server.base)
    ok = requests.get(
        sqlite_server.base + "/services/data/v60.0/limits",
        headers={"Authorization": f"Bearer {body['access_token']}"},
        verify=sqlite_server.ca,
        timeout=10,
    )
    assert ok.status_code == 200

    wrong = requests.post(
        token_url,
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": "x"},
        verify=sqlite_server.ca,
        timeout=10,
    )
    assert (wrong.status_code, wrong.json()) == (
        400,
        {"error": "invalid_client", "error_description": "invalid client credentials"},
    )
    service.set_password(user, "correct horse")
    form = {
        "grant_type": "password",
        "client_id": client_id,
        "client_secret": secret,
        "username": "api@example.jp",
    }
    bad = requests.post(
        token_url, data={**form, "password": "wrong pass"}, verify=sqlite_server.ca, timeout=10
    )
    assert (bad.status_code, bad.json()["error"]) == (400, "invalid_grant")
    good = requests.post(
        token_url, data={**form, "password": "correct horse"}, verify=sqlite_server.ca, timeout=10
    )
    assert good.status_code == 200
    assert service.authenticate(good.json()["access_token"]).id == user.id


def test_plain_http_client_is_refused_by_tls_server(sqlite_server: Server) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(
            sqlite_server.base + "/services/data/", timeout=10
        )  # no CA given: the cert is not trusted
    assert isinstance(ssl.create_default_context(cafile=sqlite_server.ca), ssl.SSLContext)


def test_token_cli_prints_a_working_token_stored_hashed(cli_env: str) -> None:
    from renkei.store.db import get_engine

    engine: Engine = get_engine()
    add_user(engine, "owner@example.jp", "Owner@Example.jp")
    runner = CliRunner()
    result = runner.invoke(app, ["token", "create", "owner@example.jp", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["username"] == "owner@example.jp"
    assert TokenService(engine).authenticate(data["access_token"]).username == "owner@example.jp"
    with engine.connect() as conn:
        stored = [r.token_hash for r in conn.execute(sfapi_token.select())]
    assert stored == [token_hash(data["access_token"])]
    plain = runner.invoke(app, ["token", "create", "OWNER@example.jp"])
    assert plain.exit_code == 0 and plain.output.startswith("00D5g000000RNKEI!")
    missing = runner.invoke(app, ["token", "create", "nobody@example.jp"])
    assert missing.exit_code == 1


def test_dev_cert_cli_writes_the_three_files(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["dev-cert", str(tmp_path / "tls"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert sorted(Path(p).name for k, p in data.items() if k != "hosts") == [
        "ca.pem",
        "server-key.pem",
        "server.pem",
    ]
    assert data["hosts"] == ["127.0.0.1", "localhost", "::1"]
    ctx = ssl.create_default_context(cafile=data["ca"])
    ctx.load_cert_chain(data["cert"], data["key"])
