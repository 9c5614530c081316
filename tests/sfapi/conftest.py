"""Fixtures for the Salesforce-compatible API: a CRM user with a token, and a real TLS server."""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import uvicorn
from sqlalchemy.engine import Engine

from renkei.cli.cmd_devcert import write_dev_cert
from renkei.clock import SystemClock
from renkei.ids import make_id
from renkei.sfapi.auth import TokenService
from renkei.store.tables import CRM_TABLES
from renkei.web.app import create_app

T0 = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def add_user(engine: Engine, username: str, email: str, *, number: int = 900, active: bool = True) -> str:
    """A CRM User row (the OAuth/token layer only reads Users; CRM writes go through CrmService)."""
    user_id = make_id("005", number)
    row = {
        "Id": user_id, "IsDeleted": False, "CreatedDate": T0, "CreatedById": user_id, "LastModifiedDate": T0,
        "LastModifiedById": user_id, "SystemModstamp": T0, "Username": username, "LastName": "Tester",
        "Alias": "tester", "Email": email, "IsActive": active, "TimeZoneSidKey": "Asia/Tokyo",
        "LocaleSidKey": "ja_JP", "EmailEncodingKey": "UTF-8", "LanguageLocaleKey": "ja",
    }  # fmt: skip
    with engine.begin() as conn:
        conn.execute(CRM_TABLES["User"].insert().values(row))
    return user_id


@pytest.fixture(scope="session")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tls")
    write_dev_cert(d)
    return d


@dataclass
class Server:
    base: str
    port: int
    ca: str
    token: str
    user_id: str
    engine: Engine

    def session(self) -> requests.Session:
        s = requests.Session()
        s.verify = self.ca
        s.headers["Authorization"] = f"Bearer {self.token}"
        return s


def run_server(app: object, port: int, tls: Path | None) -> Iterator[None]:
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ssl_certfile=str(tls / "server.pem") if tls else None,
        ssl_keyfile=str(tls / "server-key.pem") if tls else None,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("server did not start")
        time.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        server.force_exit = True  # do not wait for clients' keep-alive connections
        thread.join(10)


def crm_module_setting() -> dict[str, object]:
    """The real CRM service when it exists, else the stand-in in fake_crm.py."""
    try:
        import renkei.crm.service  # noqa: F401
    except ImportError:
        from . import fake_crm_module

        return {"crm_module": fake_crm_module}
    return {}


@pytest.fixture
def api_limit() -> int:
    return 15_000


@pytest.fixture
def server(
    engine: Engine, tls_dir: Path, api_limit: int, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Server]:
    """``renkei serve`` with TLS (the dev cert) on a free loopback port, and a user's token (both backends)."""
    yield from _serve(engine, tls_dir, api_limit, monkeypatch)


@pytest.fixture
def sqlite_server(
    sqlite_engine: Engine, tls_dir: Path, api_limit: int, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Server]:
    """The same on SQLite only, for HTTP-level behaviour that does not depend on the database."""
    yield from _serve(sqlite_engine, tls_dir, api_limit, monkeypatch)


def _serve(
    engine: Engine, tls_dir: Path, api_limit: int, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Server]:
    # requests lets these variables override a session's own ``verify``; clients here pin ca.pem.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    user_id = add_user(engine, "api@example.jp", "API.User@example.jp")
    token = TokenService(engine).issue(TokenService(engine).find_user("api@example.jp")).access_token
    port = free_port()
    app = create_app(engine, SystemClock(), api_daily_limit=api_limit, **crm_module_setting())
    for _ in run_server(app, port, tls_dir):
        yield Server(f"https://127.0.0.1:{port}", port, str(tls_dir / "ca.pem"), token, user_id, engine)
