"""The CRM adapter contract (renkei.testing.crm_contract) for every adapter: the built-in CRM in
process (both backends), the Salesforce adapter over HTTP against ``renkei serve``, and the
Salesforce adapter under injected faults."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy.engine import Engine

from renkei.connector.adapters.builtin import BuiltinCrmAdapter
from renkei.connector.adapters.salesforce import SalesforceAdapter, SalesforceClient, SalesforceConfig
from renkei.crm.service import CrmService
from renkei.testing.crm_contract import CrmAdapterContract
from renkei.testing.faults import Fault, FaultInjectingTransport, FaultKind

from .conftest import Server


def salesforce_client(
    server: Server, monkeypatch: pytest.MonkeyPatch, transport: httpx.BaseTransport | None = None
) -> SalesforceClient:
    monkeypatch.setenv("RENKEI_TEST_TOKEN", server.token)
    config = SalesforceConfig.model_validate(
        {
            "instance_url": server.base,
            "token": {"env": "RENKEI_TEST_TOKEN"},
            "ca_file": server.ca,
            "backoff_seconds": 0,
        }
    )
    return SalesforceClient(config, transport=transport, sleep=lambda _s: None)


class TestBuiltinAdapter(CrmAdapterContract):
    @pytest.fixture
    def adapter(self, engine: Engine) -> BuiltinCrmAdapter:
        return BuiltinCrmAdapter(CrmService(engine))


class TestSalesforceAdapterOverHttp(CrmAdapterContract):
    @pytest.fixture
    def adapter(self, sqlite_server: Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[SalesforceAdapter]:
        client = salesforce_client(sqlite_server, monkeypatch)
        yield SalesforceAdapter(client)
        client.close()


FAULTS = [
    FaultKind.UNAVAILABLE,
    FaultKind.SERVER_ERROR,
    FaultKind.TIMEOUT,
    FaultKind.TOO_MANY_REQUESTS,
    FaultKind.LOCK,
    FaultKind.REQUEST_LIMIT,
]


class TestSalesforceAdapterUnderFaults(CrmAdapterContract):
    """Each kind of fault once, on every other request from the first, plus a partial failure in
    every second collection call; each request is retried at most once per fault in a row."""

    @pytest.fixture
    def adapter(self, sqlite_server: Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[SalesforceAdapter]:
        inner = httpx.HTTPTransport(verify=ssl.create_default_context(cafile=sqlite_server.ca))
        faults = [Fault(kind, at=frozenset({1 + 2 * i})) for i, kind in enumerate(FAULTS)]
        faults.append(Fault(FaultKind.PARTIAL_COLLECTION, "composite/sobjects", every=2, stride=3))
        transport = FaultInjectingTransport(inner, faults)
        client = salesforce_client(sqlite_server, monkeypatch, transport)
        yield SalesforceAdapter(client)
        client.close()
        assert transport.injected, "no fault was injected"
