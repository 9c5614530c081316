"""connector.yaml: AE's defaults, validation, the query methods the engine asks, and settings
changed with who and when."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from renkei.clock import FixedClock
from renkei.connector import config as c
from renkei.connector import settings
from renkei.core.sync.judge import Rule
from renkei.errors import ConfigError
from renkei.store.tables_sync import sync_setting_change


def test_the_default_file_has_aes_mappings_and_settings() -> None:
    cfg = c.parse(c.DEFAULT_YAML)
    assert (cfg.auto_create_prospects, cfg.create_in_crm, cfg.prefer, cfg.on_filter_mismatch, cfg.on_crm_delete,
            cfg.queue_threshold, cfg.cap) == (True, "on_assignment", "contact", "recycle", "recycle", 400, None)  # fmt: skip
    lead = {m.ma: f for m, f in cfg.mappings("Lead")}
    contact = {m.ma: f for m, f in cfg.mappings("Contact")}
    assert (lead["email"], lead["addressOne"], contact["addressOne"], lead["score"], lead["grade"]) == (
        "Email", "Street", "MailingStreet", "pi__score__c", "pi__grade__c")  # fmt: skip
    assert "company" not in contact  # Contact has no Company field: the pair is left out there
    marketing_only = {m.ma for m in cfg.fields if m.rule is Rule.MA_TO_CRM}
    assert {"score", "grade", "createdAt", "lastActivityAt"} <= marketing_only
    assert all(f.startswith("pi__") for m, f in cfg.mappings("Lead") if m.ma in marketing_only)


def test_query_methods() -> None:
    cfg = c.parse(c.DEFAULT_YAML)
    pulled = {m.ma for m, _ in cfg.fields_to_pull("Lead")}
    created = {m.ma for m, _ in cfg.fields_to_create_in_crm("Lead")}
    assert "score" not in pulled and "comments" not in pulled and "email" in pulled  # ma_to_crm, ma_wins
    assert {"score", "email", "company"} <= created
    assert (cfg.rule_for("jobTitle"), cfg.rule_for("nope"), cfg.filter_for("Lead")) == (
        Rule.CRM_WINS,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("create_in_crm: sometimes", "create_in_crm"),
        ("fields: [{ma: email, crm: Email, rule: newest}]", "fields.0.rule"),
        ("fields: [{ma: email, crm: Email}, {ma: email, crm: Email}]", "mapped twice"),
        ("cap: [1", "not valid YAML"),
        ("colour: blue", "colour"),
    ],
)
def test_invalid_files_are_refused_with_where(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        c.parse(text)
    assert message in str(err.value)


def test_settings_are_validated_and_recorded_with_who_and_when(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "connector.yaml"
    path.write_text(c.DEFAULT_YAML, encoding="utf-8")
    clock = FixedClock(dt.datetime(2026, 5, 1, 9, tzinfo=dt.UTC))
    assert settings.set_value(engine, clock, "cap", "10000", actor="sato", path=path)["new"] == 10000
    clock.advance(minutes=5)
    settings.set_value(engine, clock, "fields.company.rule", "most_recent", actor="suzuki", path=path)
    with pytest.raises(ConfigError):
        settings.set_value(engine, clock, "fields.company.rule", "newest", actor="suzuki", path=path)
    with pytest.raises(ConfigError):
        settings.set_value(engine, clock, "colour", "blue", actor="suzuki", path=path)
    cfg = c.load(path)
    assert (cfg.cap, cfg.rule_for("company")) == (10000, Rule.MOST_RECENT)
    with engine.connect() as conn:
        rows = (
            conn.execute(sa.select(sync_setting_change).order_by(sync_setting_change.c.id)).mappings().all()
        )
    assert [(r["actor"], r["key"], r["old"], r["new"], r["at"]) for r in rows] == [
        ("sato", "cap", None, 10000, dt.datetime(2026, 5, 1, 9, tzinfo=dt.UTC)),
        (
            "suzuki",
            "fields.company.rule",
            "crm_wins",
            "most_recent",
            dt.datetime(2026, 5, 1, 9, 5, tzinfo=dt.UTC),
        ),
    ]
