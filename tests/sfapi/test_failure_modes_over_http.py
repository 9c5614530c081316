"""Seed 001's five failure modes again, with the connector talking to the CRM through the
Salesforce adapter over HTTPS (`crm: type: salesforce` in connector.yaml, `renkei serve` on
127.0.0.1 serving the same database the CLI's `renkei crm …` commands write to)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.connector.test_failure_modes import (  # noqa: F401  (collected here with this module's org)
    test_1_prospects_not_syncing_are_explained,
    test_2_mass_sync_is_predicted_before_it_happens,
    test_3_duplicates_are_prevented,
    test_4_values_not_syncing_are_explained,
    test_5_values_do_not_revert_and_a_bad_run_is_undone,
)

from .conftest import Server, connector_for


@pytest.fixture
def db_url(pg_url: str) -> str:
    """PostgreSQL only here: the org (`renkei serve`) and the connector's CLI share this one database,
    and two SQLite writers in one file (the CLI's open transaction and the server's write it waits
    for) would only measure SQLite's lock; real orgs have their own database (tests/sfapi/
    test_cli_salesforce_crm.py covers that on SQLite)."""
    return pg_url


@pytest.fixture
def org(cli_env: str, server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return connector_for(server, tmp_path, monkeypatch)
