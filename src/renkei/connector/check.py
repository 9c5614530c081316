"""``renkei config check``: the configuration checked against both sides' describe and data."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from renkei.connector.config import CRM_OBJECTS, TASK_KEY_FIELD, ConnectorConfig
from renkei.core.sync.judge import Rule
from renkei.core.sync.ports import CrmAdapter
from renkei.crm.schema import FieldDef, FieldType
from renkei.errors import RenkeiError
from renkei.store import dynamic
from renkei.store import tables as t
from renkei.store.tables_sync import sync_link

_KIND = {FieldType.BOOLEAN: "boolean", FieldType.DATE: "date", FieldType.DATETIME: "date", FieldType.INT: "number",
         FieldType.DOUBLE: "number", FieldType.CURRENCY: "number", FieldType.PERCENT: "number"}  # fmt: skip


def _kind(f: FieldDef) -> str:
    return _KIND.get(f.type, "text")


def check_config(
    engine: Engine, cfg: ConnectorConfig, now: dt.datetime, adapter: CrmAdapter | None = None
) -> dict[str, Any]:
    """Check ``cfg`` against the marketing schema and the CRM's: the built-in CRM of this database
    (``adapter`` None), or another CRM through its adapter (describe and ``COUNT()`` queries)."""
    errors: list[dict[str, Any]] = []
    warnings: list[dict[str, Any]] = []

    def err(code: str, message: str) -> None:
        errors.append({"level": "error", "code": code, "message": message})

    def warn(code: str, message: str, **extra: Any) -> None:
        warnings.append({"level": "warning", "code": code, "message": message, **extra})

    with engine.connect() as conn:
        if adapter is None:
            crm = dynamic.load_crm_schema(conn)
            crm_fields = {o: {f.name.lower(): f for f in crm.object(o).fields} for o in CRM_OBJECTS}
        else:
            crm_fields = {o: _described(adapter, o) for o in CRM_OBJECTS}
        prospect_fields = dynamic.load_prospect_schema(conn).fields
        for m in cfg.fields:
            pf = prospect_fields.get(m.ma)
            if pf is None:
                err("UNKNOWN_PROSPECT_FIELD", f"prospect field {m.ma!r} does not exist")
            names = {o: m.crm_field(o) for o in CRM_OBJECTS}
            if isinstance(m.crm, dict):
                given = {o: n for o, n in names.items() if n}
                if len(set(given.values())) > 1 and any(n.endswith("__c") for n in given.values()):
                    warn("CUSTOM_FIELD_NAME_DIFFERS", f"{m.ma}: the custom field's API name differs between objects "
                         f"({', '.join(f'{o}.{n}' for o, n in given.items())})")  # fmt: skip
            exists = {}
            for obj, name in names.items():
                if not name:
                    continue
                f = crm_fields[obj].get(name.lower())
                exists[obj] = f is not None
                if f is None:
                    if isinstance(m.crm, str) and name.endswith("__c"):
                        continue  # reported below as "on one object only" or "nowhere"
                    err("UNKNOWN_CRM_FIELD", f"{m.ma}: {obj}.{name} does not exist in the CRM")
                    continue
                if pf is None:
                    continue
                if _kind(f) != _kind(pf):
                    level = err if "boolean" in (_kind(f), _kind(pf)) else warn
                    level(
                        "TYPE_MISMATCH",
                        f"{m.ma} ({pf.type.value}) ↔ {obj}.{name} ({f.type.value}): incompatible types",
                    )
                writes_crm = m.rule not in (Rule.CRM_TO_MA, Rule.CRM_WINS, Rule.NONE)
                if writes_crm and f.is_text and pf.length and f.length and pf.length > f.length and f.type not in (
                        FieldType.PICKLIST, FieldType.MULTIPICKLIST):  # fmt: skip
                    warn("LENGTH_TRUNCATION", f"{m.ma} holds up to {pf.length} characters but {obj}.{name} only "
                         f"{f.length}: longer values are rejected by the CRM")  # fmt: skip
                if writes_crm and f.restricted_picklist:
                    allowed = {v.value for v in f.picklist_values}
                    mine = {v.value for v in pf.picklist_values}
                    missing = sorted(mine - allowed)
                    if missing:
                        warn("PICKLIST_VALUES_MISSING", f"{m.ma}: values {missing} are not allowed by the restricted "
                             f"picklist {obj}.{name}")  # fmt: skip
                    elif not mine:
                        warn("RESTRICTED_PICKLIST", f"{m.ma} is free text but {obj}.{name} is a restricted picklist "
                             f"({', '.join(sorted(allowed))}): other values are rejected")  # fmt: skip
            if isinstance(m.crm, str) and m.crm.endswith("__c"):
                on = [o for o, ok in exists.items() if ok]
                if not on:
                    err("UNKNOWN_CRM_FIELD", f"{m.ma}: {m.crm} exists on neither Lead nor Contact"
                        + (" (run `renkei connector install-package`)" if m.crm.startswith("pi__") else ""))  # fmt: skip
                elif len(on) == 1:
                    missing_on = [o for o in CRM_OBJECTS if o not in on]
                    warn("FIELD_ON_ONE_OBJECT_ONLY", f"{m.ma}: {m.crm} exists on {on[0]} but not on "
                         f"{', '.join(missing_on)}: it syncs for {on[0]} only")  # fmt: skip

        counts: dict[str, Any] = {}
        from renkei.crm.soql_sql import count_where

        total = 0
        for obj in CRM_OBJECTS:
            flt = cfg.filter_for(obj)
            base = "Email != null" + (" AND IsConverted = false" if obj == "Lead" else "")
            where = f"({flt}) AND {base}" if flt else base
            try:
                n = (
                    count_where(conn, crm, obj, where, now=now)
                    if adapter is None
                    else adapter.count(obj, where)
                )
            except RenkeiError as exc:
                err("INVALID_FILTER", f"objects.{obj}.filter: {exc}")
                continue
            counts[obj] = n
            total += n
        synced = int(conn.execute(sa.select(sa.func.count()).select_from(sync_link)).scalar_one())
        counts["wouldSync"] = total
        counts["syncedNow"] = synced
        counts["cap"] = cfg.cap
        if cfg.auto_create_prospects and cfg.cap is not None and total > cfg.cap:
            warn("MASS_SYNC_OVER_CAP", f"{total} CRM records pass the filters but the cap is {cfg.cap}: "
                 f"{total - cfg.cap} would fail with cap_reached", wouldSync=total, cap=cfg.cap)  # fmt: skip
        if cfg.auto_create_prospects and total - synced > max(synced, 5):
            warn("MASS_SYNC", f"{total} CRM records would sync ({synced} synced now): check the filters before "
                 "the next cycle", wouldSync=total, syncedNow=synced)  # fmt: skip
        linked_users = int(conn.execute(sa.select(sa.func.count()).select_from(t.ma_user)
                                        .where(t.ma_user.c.salesforceId.is_not(None))).scalar_one())  # fmt: skip
    if not cfg.auto_create_prospects and cfg.create_in_crm == "never":
        warn("NOTHING_CREATED", "auto_create_prospects is off and create_in_crm is never: no record is ever "
             "created on either side, only existing matches link")  # fmt: skip
    if cfg.create_in_crm == "on_assignment" and linked_users == 0:
        warn("ASSIGNMENT_BLOCKED", "create_in_crm is on_assignment but no marketing user is linked to a CRM user: "
             "assigned prospects create leads owned by the connector user")  # fmt: skip
    if cfg.paused:
        warn("PAUSED", "the connector is paused: nothing syncs")
    if cfg.activity_tasks.enabled and crm.object("Task").field(TASK_KEY_FIELD) is None:
        err("UNKNOWN_CRM_FIELD", f"activity_tasks: Task.{TASK_KEY_FIELD} does not exist, so no task is exported "
            "(run `renkei connector install-package`)")  # fmt: skip
    return {"ok": not errors, "errors": errors, "warnings": warnings, "counts": counts}


def _described(adapter: CrmAdapter, object_name: str) -> dict[str, FieldDef]:
    return {
        str(d["name"]).lower(): FieldDef.from_describe(d) for d in adapter.describe(object_name)["fields"]
    }
