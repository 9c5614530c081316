"""`renkei sync explain`'s ``nextCycle`` is what the next cycle does to the pair: the planner's own
decision on the pair's pending changes, the same as `renkei sync plan` and `renkei sync run`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.cli_helpers import cli


def next_cycle(pid: int, field: str) -> dict[str, Any]:
    fields = cli("sync", "explain", "prospect", str(pid), "--field", field)["fields"]
    return dict(fields[0]["nextCycle"])


def test_next_cycle_follows_the_planner_on_each_side(org: Path) -> None:
    lid = cli("crm", "create", "Lead", "--set", "LastName=中村", "--set", "Company=連携商事",
              "--set", "Email=nakamura@example.jp", "--set", "Title=課長")["id"]  # fmt: skip
    cli("sync", "run")
    (p,) = cli("prospect", "list")
    assert next_cycle(p["id"], "jobTitle") == {"write": None, "reason": "in step"}

    # a CRM edit: crm_wins, the next cycle writes the prospect — and sync plan says the same
    cli("crm", "update", "Lead", lid, "--set", "Title=部長")
    nxt = next_cycle(p["id"], "jobTitle")
    assert (nxt["write"], nxt["value"], nxt["rule"]) == ("ma", "部長", "crm_wins")
    planned = [
        f
        for o in cli("sync", "plan")["operations"]
        if o["prospectId"] == p["id"]
        for f in o.get("fields", [])
    ]
    assert [(f["to"], f["field"], f["value"]) for f in planned if f["field"] == "jobTitle"] == [
        ("ma", "jobTitle", "部長")
    ]
    # an email that differs only in case and width is the same address: no write, as the planner decides
    cli("crm", "update", "Lead", lid, "--set", "Email=NAKAMURA@example.jp")
    assert next_cycle(p["id"], "email")["write"] is None
    run = cli("sync", "run")
    assert run["counts"]["ma"]["update"] == 1
    assert next_cycle(p["id"], "jobTitle") == {"write": None, "reason": "in step"}

    # a marketing edit under crm_wins: explain warns the next cycle puts the CRM value back (seed 001's
    # "values revert after an edit"), and the run does exactly that
    cli("prospect", "update", str(p["id"]), "--set", "jobTitle=本部長")
    nxt = next_cycle(p["id"], "jobTitle")
    assert (nxt["write"], nxt["value"], nxt["rule"]) == ("ma", "部長", "crm_wins"), nxt
    assert cli("sync", "run")["counts"]["ma"]["update"] == 1
    assert cli("prospect", "get", str(p["id"]))["jobTitle"] == "部長"
    assert next_cycle(p["id"], "jobTitle") == {"write": None, "reason": "in step"}

    # ma_to_crm (one way): a CRM edit is not taken, and explain says why
    cli("connector", "set", "fields.jobTitle.rule", "ma_to_crm")
    cli("crm", "update", "Lead", lid, "--set", "Title=係長")
    nxt = next_cycle(p["id"], "jobTitle")
    assert nxt == {"write": None, "reason": "no write under this rule (blank or one-way)"}
    assert cli("sync", "run")["counts"]["ma"]["update"] == 0


def test_next_cycle_names_a_recycle_of_the_pair(org: Path) -> None:
    lid = cli("crm", "create", "Lead", "--set", "LastName=小林", "--set", "Company=連携商事",
              "--set", "Email=kobayashi@example.jp")["id"]  # fmt: skip
    cli("sync", "run")
    (p,) = cli("prospect", "list")
    cli("crm", "delete", "Lead", lid)
    nxt = next_cycle(p["id"], "lastName")
    assert (
        nxt["write"] is None
        and nxt["reason"].startswith("recycle: Lead ")
        and "deleted in the CRM" in nxt["reason"]
    )


def test_the_table_says_which_side_the_next_cycle_writes(org: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from renkei.cli import app

    lid = cli("crm", "create", "Lead", "--set", "LastName=加藤", "--set", "Company=連携商事",
              "--set", "Email=kato@example.jp", "--set", "Title=課長")["id"]  # fmt: skip
    cli("sync", "run")
    (p,) = cli("prospect", "list")
    cli("crm", "update", "Lead", lid, "--set", "Title=部長")
    from renkei.cli import _common

    monkeypatch.setattr(_common.console, "width", 300)  # one line per row, whatever the terminal
    text = (
        CliRunner().invoke(app, ["sync", "explain", "prospect", str(p["id"]), "--field", "jobTitle"]).output
    )
    assert "→ marketing: '部長' (the CRM's value wins)" in text
    assert "→ marketing: created with '課長' (new Lead with email kato@example.jp)" in text
