"""The connector under injected faults with the built-in CRM in process (both backends): every
record ends synced or in the typed error queue, and a retry after the faults stop converges."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.engine import Engine

from renkei.clock import FixedClock, TickingClock
from renkei.connector import config as connector_config
from renkei.connector.adapters.builtin import BuiltinCrmAdapter
from renkei.connector.service import SyncService
from renkei.crm.service import CrmService
from renkei.marketing.demo import load_demo
from renkei.testing.faults import Fault, FaultKind, FaultyAdapter

from .fault_scenario import run_scenario

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)


def faults() -> list[Fault]:
    """Four cycles fail as a whole (a 500 reading Lead changes, a timeout reading Contact changes,
    a 503 reading Opportunity changes, a 429 on the first record read); the cycle that completes
    meets a daily-limit refusal of the lead update call, a lock error on the lead creates, and a
    lock error on every third record of the contact updates."""
    return [
        Fault(FaultKind.SERVER_ERROR, "adapter/changes/Lead", at=frozenset({1})),
        Fault(FaultKind.TIMEOUT, "adapter/changes/Contact", at=frozenset({1})),
        Fault(FaultKind.UNAVAILABLE, "adapter/changes/Opportunity", at=frozenset({1})),
        Fault(FaultKind.TOO_MANY_REQUESTS, "adapter/read/", at=frozenset({1})),
        Fault(FaultKind.REQUEST_LIMIT, "adapter/update/Lead", at=frozenset({1})),
        Fault(FaultKind.LOCK, "adapter/create/Lead", at=frozenset({1})),
        Fault(FaultKind.PARTIAL_COLLECTION, "adapter/update/", every=1, stride=3),
    ]


def test_every_record_ends_synced_or_queued_and_a_retry_converges(engine: Engine) -> None:
    fixed = FixedClock(T0)
    clock = TickingClock(fixed)
    load_demo(engine, "small", clock=clock)
    adapter = FaultyAdapter(BuiltinCrmAdapter(CrmService(engine, clock=clock)), faults(), enabled=False)
    config = connector_config.parse(connector_config.DEFAULT_YAML)
    sync = SyncService(engine, config, clock=clock, adapter=adapter)
    figures = run_scenario(
        sync, engine, engine, clock, switch=adapter, advance=lambda: fixed.advance(seconds=5) and None
    )
    assert figures["failed_cycles"] == 4, figures
    assert {kind for kind, _, _ in adapter.injected} == set(FaultKind), adapter.injected
