"""Fixtures for the Salesforce-compatible API: a CRM user with a token, and a real TLS server."""

from __future__ import annotations

import datetime as dt
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import uvicorn
from sqlalchemy.engine import Engine

from renkei.cli.cmd_devcert import write_dev_cert
from renkei.clock import Clock, FixedClock, SystemClock
from renkei.crm.service import CrmService
from renkei.sfapi.auth import TokenService
from renkei.store.db import make_engine
from renkei.web.app import create_app

T0 = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def add_user(engine: Engine, username: str, email: str, *, active: bool = True) -> str:
    """A CRM User (tokens belong to Users)."""
    values = {
        "Username": username,
        "LastName": "Tester",
        "Alias": "tester",
        "Email": email,
        "IsActive": active,
    }
    return CrmService(engine).create("User", values)


@pytest.fixture(scope="session")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tls")
    write_dev_cert(d)
    return d


class MillisecondTicks:
    """Like ``TickingClock`` but a millisecond apart (the API's SystemModstamp precision)."""

    def __init__(self, inner: Clock) -> None:
        self.inner = inner
        self.last: dt.datetime | None = None

    def now(self) -> dt.datetime:
        now = self.inner.now()
        if self.last is not None and now < self.last + dt.timedelta(milliseconds=1):
            now = self.last + dt.timedelta(milliseconds=1)
        self.last = now
        return now


@dataclass
class Server:
    base: str
    port: int
    ca: str
    token: str
    user_id: str
    engine: Engine
    clock: FixedClock

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
    port = free_port()
    # The server's clock stands still unless a test moves it (``server.clock.advance``); each
    # reading is a millisecond after the last, so writes are ordered as the API shows them.
    fixed = FixedClock(SystemClock().now())
    clock = MillisecondTicks(fixed)
    tokens = TokenService(engine, clock=clock)
    token = tokens.issue(tokens.find_user("api@example.jp")).access_token
    app = create_app(engine, clock, api_daily_limit=api_limit)
    for _ in run_server(app, port, tls_dir):
        yield Server(
            f"https://127.0.0.1:{port}", port, str(tls_dir / "ca.pem"), token, user_id, engine, fixed
        )


@pytest.fixture
def marketing_engine(_templates: Any, tmp_path: Path) -> Iterator[Engine]:
    """The connector's own database, apart from the org's (as with a real Salesforce org)."""
    path = tmp_path / "marketing.db"
    shutil.copyfile(_templates.sqlite(), path)
    engine = make_engine(f"sqlite:///{path}")
    yield engine
    engine.dispose()


def connector_for(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`renkei connector init` in tmp_path, then `crm:` pointed at ``server`` (token flow, its CA):
    the connector.yaml a user with a Salesforce org writes."""
    import yaml

    from tests.cli_helpers import cli

    path = tmp_path / "connector.yaml"
    monkeypatch.setenv("RENKEI_CONNECTOR_CONFIG", str(path))
    monkeypatch.setenv("SF_TOKEN", server.token)
    cli("connector", "init")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["crm"] = {"type": "salesforce", "salesforce": {"instance_url": server.base, "flow": "token",
                                                        "token": {"env": "SF_TOKEN"}, "ca_file": server.ca,
                                                        "backoff_seconds": 0}}  # fmt: skip
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path
