"""Loading the connector for a command, and changing its settings with an audit trail."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.engine import Engine

from renkei.clock import Clock
from renkei.connector import config as c
from renkei.connector.service import SyncService
from renkei.core.sync.ports import CrmAdapter
from renkei.errors import ConfigError
from renkei.store.tables_sync import sync_setting_change

SCALAR_KEYS = {"paused", "auto_create_prospects", "create_in_crm", "prefer", "on_filter_mismatch", "on_crm_delete",
               "partial_writes", "cap", "queue_threshold", "bulk_create_threshold", "rate_per_hour", "daily_api_budget", "placeholder"}  # fmt: skip


#: One Salesforce client per org settings and credentials in this process: the daemon builds a
#: service per cycle, and the client keeps its token, connections and describe cache between them
#: (describes cost one Composite call per process, not one per cycle).
_CLIENTS: dict[tuple[Any, ...], Any] = {}


def adapter_for(config: c.ConnectorConfig, clock: Clock) -> CrmAdapter | None:
    """The CRM adapter ``crm:`` in connector.yaml names (None: the built-in CRM of this database)."""
    if config.crm.type == "salesforce":
        from renkei.connector.adapters.salesforce import SalesforceAdapter, SalesforceClient
        from renkei.errors import ConfigError

        org = config.crm.salesforce
        assert org is not None  # the config's validator insists
        try:  # the secrets' current values (hashed) are part of the key: a rotated token is a new client
            secrets = "\0".join(s.reveal() if s else "" for s in (org.token, org.client_secret, org.password))
            key = (org, hashlib.sha256(secrets.encode()).hexdigest())
        except ConfigError:
            return SalesforceAdapter(SalesforceClient(org, clock=clock))  # reports the missing secret on use
        if key not in _CLIENTS:
            _CLIENTS[key] = SalesforceClient(org, clock=clock)
        return SalesforceAdapter(_CLIENTS[key])
    return None


def service(engine: Engine, clock: Clock, path: Path | None = None) -> SyncService:
    config = c.load(path)
    return SyncService(engine, config, clock=clock, adapter=adapter_for(config, clock))


def set_value(
    engine: Engine, clock: Clock, key: str, raw: str, *, actor: str, path: Path | None = None
) -> dict[str, Any]:
    """Change one setting in connector.yaml (validated before it is saved) and record who and when.

    Keys: the top-level settings, ``objects.Lead.filter``, ``fields.<prospect field>.rule``,
    ``fields.<prospect field>.sync_blanks`` and ``activity_tasks.<key>`` (enabled, types, …)."""
    path = path or c.config_path()
    text = path.read_text(encoding="utf-8") if path.exists() else c.DEFAULT_YAML
    data = yaml.safe_load(text) or {}
    value = yaml.safe_load(raw) if raw != "" else None
    parts = key.split(".")
    if parts[0] in SCALAR_KEYS and len(parts) == 1:
        old = data.get(key)
        data[key] = value
    elif parts[0] == "objects" and len(parts) == 3 and parts[2] == "filter":
        objects = data.setdefault("objects", {})
        old = (objects.get(parts[1]) or {}).get("filter")
        objects.setdefault(parts[1], {})["filter"] = value
    elif parts[0] == "activity_tasks" and len(parts) == 2:
        section = data.get("activity_tasks") or {}
        old = section.get(parts[1])
        data["activity_tasks"] = section | {parts[1]: value}
    elif parts[0] == "fields" and len(parts) == 3 and parts[2] in ("rule", "sync_blanks"):
        mapping = next((m for m in data.get("fields", []) if m.get("ma") == parts[1]), None)
        if mapping is None:
            raise ConfigError(f"no mapping for prospect field {parts[1]!r} in {path}")
        old = mapping.get(parts[2])
        mapping[parts[2]] = value
    else:
        raise ConfigError(f"unknown setting {key!r} (use one of {', '.join(sorted(SCALAR_KEYS))}, "
                          "objects.<Object>.filter, fields.<field>.rule, fields.<field>.sync_blanks, activity_tasks.<key>)")  # fmt: skip
    new_text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    c.parse(new_text, str(path))  # refuse an invalid result before anything is saved
    path.write_text(new_text, encoding="utf-8")
    with engine.begin() as conn:
        conn.execute(
            sync_setting_change.insert().values(at=clock.now(), actor=actor, key=key, old=old, new=value)
        )
    return {"key": key, "old": old, "new": value, "path": str(path)}
