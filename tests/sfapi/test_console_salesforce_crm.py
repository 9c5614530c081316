"""The web app's connector console with `crm: type: salesforce` builds the same connector as the CLI:
its config check counts who would sync by asking the org, not this database's (empty) CRM."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from renkei.clock import FixedClock
from renkei.crm.service import CrmService
from renkei.store.db import dispose_engines
from tests.web.helpers import T0, Browser, live_server, make_user

from .conftest import Server, connector_for


def test_console_checks_and_plans_against_the_org(
    marketing_engine: Engine,
    sqlite_server: Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RENKEI_DATABASE_URL", str(marketing_engine.url))
    dispose_engines()
    org = CrmService(sqlite_server.engine)
    for i in range(3):
        org.create("Lead", {"LastName": f"組織{i}", "Company": "オルグ商事", "Email": f"org{i}@example.jp"})
    config = connector_for(sqlite_server, tmp_path, monkeypatch)
    engine = marketing_engine  # the marketing side: its own database, with no CRM records of its own
    make_user(engine, "ops@example.com", "admin")
    with live_server(engine, FixedClock(T0), connector_config=str(config)) as base:
        web = Browser(base)
        web.sign_in("ops@example.com")
        page = web.get("/app/connector").text
        counts = dict(re.findall(r'data-count="(\w+)">([^<]*)<', page))
        assert (counts["Lead"], counts["Contact"], counts["wouldSync"]) == ("3", "0", "3"), counts
