"""The connector through the Salesforce adapter over HTTPS, under the fault-injecting transport:
every record ends synced or in the typed error queue, and a retry after the faults stop converges
(the in-process variant is tests/connector/test_sync_under_faults.py)."""

from __future__ import annotations

import ssl

import httpx
import pytest
from sqlalchemy.engine import Engine

from renkei.connector import config as connector_config
from renkei.connector.adapters.salesforce import SalesforceAdapter
from renkei.connector.service import SyncService
from renkei.marketing.demo import load_demo
from renkei.testing.faults import Fault, FaultInjectingTransport, FaultKind
from tests.connector.fault_scenario import run_scenario

from .conftest import Server
from .test_contract import salesforce_client


def faults() -> list[Fault]:
    """With two attempts per call: the first cycle's change read fails twice (500, then a timeout)
    and the cycle fails as a whole; one 503, 429, daily-limit refusal and lock error each are
    absorbed by the client's retries; every second record of every collection call (and of its
    resend) fails with UNABLE_TO_LOCK_ROW, so a quarter of the written records stay failed."""
    return [
        Fault(FaultKind.SERVER_ERROR, "/composite", at=frozenset({1})),
        Fault(FaultKind.TIMEOUT, "/composite", at=frozenset({2})),
        Fault(FaultKind.UNAVAILABLE, "/composite", at=frozenset({3})),
        Fault(FaultKind.TOO_MANY_REQUESTS, "/composite", at=frozenset({7})),
        Fault(FaultKind.REQUEST_LIMIT, "/composite", at=frozenset({5})),
        Fault(FaultKind.LOCK, "composite/sobjects", at=frozenset({1})),
        Fault(FaultKind.PARTIAL_COLLECTION, "composite/sobjects", every=1, stride=2),
    ]


def test_every_record_ends_synced_or_queued_and_a_retry_converges_over_http(
    marketing_engine: Engine,
    sqlite_server: Server,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    org, ma, clock = sqlite_server.engine, marketing_engine, sqlite_server.clock
    load_demo(org, "small", clock=clock)
    load_demo(ma, "small", clock=clock)
    inner = httpx.HTTPTransport(verify=ssl.create_default_context(cafile=sqlite_server.ca))
    transport = FaultInjectingTransport(inner, faults(), enabled=False)
    client = salesforce_client(sqlite_server, monkeypatch, transport)
    client.config = client.config.model_copy(update={"max_attempts": 2})
    config = connector_config.parse(connector_config.DEFAULT_YAML)
    sync = SyncService(ma, config, clock=clock, adapter=SalesforceAdapter(client))
    figures = run_scenario(
        sync, org, ma, clock, switch=transport, advance=lambda: clock.advance(seconds=5) and None
    )
    client.close()
    assert figures["failed_cycles"] == 1, figures
    assert {kind for kind, _, _ in transport.injected} == set(FaultKind), transport.injected
