"""Custom fields sync like standard ones after an update too: their agreed values are kept (no
echo, field-level evidence) and `sync explain` shows both sides."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.engine import Engine

from renkei.clock import FixedClock
from renkei.connector import config as c
from renkei.connector.service import SyncService, _pairs, read_states
from renkei.crm.service import CrmService
from renkei.marketing.service import ProspectService

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)


def test_custom_field_agreed_value_after_an_update(engine: Engine) -> None:
    clock = FixedClock(T0)
    crm, ma = CrmService(engine, clock=clock), ProspectService(engine, clock=clock)
    crm.add_field("Lead", "Segment__c", "text", length=40)
    ma.add_field("Segment", "text")
    cfg = c.parse(c.DEFAULT_YAML)
    cfg = cfg.model_copy(update={"fields": [*cfg.fields, c.FieldMapping(ma="Segment__c", crm="Segment__c",
                                                                           rule="most_recent")]})  # fmt: skip
    sync = SyncService(engine, cfg, clock=clock)
    lead = crm.create("Lead", {"LastName": "高橋", "Company": "高橋工業", "Email": "takahashi@example.jp",
                               "Segment__c": "SMB"})  # fmt: skip
    sync.run()
    [prospect] = ma.find_by_email("takahashi@example.jp")
    clock.advance(seconds=5)
    ma.update(prospect["id"], {"Segment__c": "Enterprise"})  # edited in marketing …
    clock.advance(seconds=5)
    first = sync.run()
    assert first["counts"]["crm"]["update"] == 1
    assert crm.get("Lead", lead)["Segment__c"] == "Enterprise"

    def agreed() -> list[object]:
        with engine.connect() as conn:
            values, _, _ = read_states(conn, [prospect["id"]])[prospect["id"]]
        return list(_pairs(values)["Segment__c"])  # as the judge reads them (alike sides are stored bare)

    assert agreed() == ["Enterprise", "Enterprise"]
    clock.advance(seconds=5)
    echo = sync.run()  # our own CRM write comes back: nothing to do
    assert echo["counts"]["crm"]["update"] == 0 and echo["counts"]["ma"]["update"] == 0
    why = sync.explain(prospect["id"], "Segment__c")["fields"][0]
    assert (why["marketingValue"], why["crmValue"]) == ("Enterprise", "Enterprise")
    # … then in the CRM: most_recent takes the CRM's newer value
    clock.advance(seconds=5)
    crm.update("Lead", lead, {"Segment__c": "Mid"})
    clock.advance(seconds=5)
    sync.run()
    assert ma.get(prospect["id"])["Segment__c"] == "Mid"
    assert agreed() == ["Mid", "Mid"]
