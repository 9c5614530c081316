"""The demo org, as a new user meets it: after the initial sync, the next cycle writes only what
changed in marketing since (scores recomputed, created dates of the new prospects), and the cycle
after it writes nothing — the connector's own writes never come back as changes (requirement 9)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.cli_helpers import cli


def writes(run: dict[str, Any]) -> int:
    counts = run["counts"]
    return sum(counts[side][k] for side in ("crm", "ma") for k in ("create", "update", "delete"))


def test_the_demo_org_settles_after_the_initial_sync(
    cli_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RENKEI_CONNECTOR_CONFIG", str(tmp_path / "connector.yaml"))
    cli("demo", "load", "--size", "small")
    cli("connector", "init")
    first = cli("sync", "run")
    assert first["errors"] == [] and first["counts"]["ma"]["create"] > 0, first
    second = cli("sync", "run")
    # only marketing-computed fields (MA → CRM) changed since: nothing goes to marketing
    assert second["counts"]["ma"] == {"create": 0, "update": 0, "delete": 0}, second
    plan = cli("sync", "plan")  # predicts the quiet cycle
    assert plan["operations"] == [], plan["operations"][:5]
    third = cli("sync", "run")
    assert writes(third) == 0, third
    assert writes(cli("sync", "run")) == 0
    # explain covers the assigned user ↔ OwnerId too: in step, or left apart by a blank (said so)
    reasons = set()
    for p in cli("prospect", "list", "--limit", "80"):
        if not p.get("salesforceId"):
            continue
        (owner,) = cli("sync", "explain", "prospect", str(p["id"]), "--field", "assignedToId")["fields"]
        assert (owner["crmField"], owner["rule"], owner["nextCycle"]["write"]) == (
            "OwnerId",
            "most_recent",
            None,
        )
        reasons.add(owner["nextCycle"]["reason"].split(" (")[0])
    assert reasons == {"in step", "the sides were left different at the last sync"}, reasons
