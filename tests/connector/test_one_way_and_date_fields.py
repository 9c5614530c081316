"""Through the CLI: a prospect created from a CRM record sends its marketing fields (AE's package
fields, which ``connector init`` adds) to the CRM with the pair's next change, not in the creating
cycle (docs/cli.md, Connector); a date-time field's edit is judged by whether that field changed,
not reverted by a later edit of another field of the other side's record (seed 001, failure 5)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.cli_helpers import cli


def crm_counts(run: dict[str, object]) -> dict[str, int]:
    counts = run["counts"]
    assert isinstance(counts, dict)
    return dict(counts["crm"])


def test_marketing_fields_go_to_the_crm_with_the_next_change(org: Path) -> None:
    lead = str(cli("crm", "create", "Lead", "--set", "LastName=佐藤", "--set", "Company=佐藤商事",
                   "--set", "Email=sato@example.jp")["id"])  # fmt: skip
    created = cli("sync", "run")
    assert created["counts"]["ma"]["create"] == 1
    assert crm_counts(created) == {"create": 0, "update": 0, "delete": 0}  # no CRM write for a create
    record = cli("crm", "get", "Lead", lead)
    assert (record["pi__created_date__c"], record["pi__score__c"]) == (None, None)
    quiet = cli("sync", "run")  # nothing changed on either side: still nothing written
    assert crm_counts(quiet) == {"create": 0, "update": 0, "delete": 0}
    [prospect] = [p for p in cli("prospect", "list") if p["email"] == "sato@example.jp"]
    cli("prospect", "update", str(prospect["id"]), "--set", "comments=資料請求")
    changed = cli("sync", "run")
    assert crm_counts(changed)["update"] == 1
    record = cli("crm", "get", "Lead", lead)
    assert record["pi__score__c"] == prospect["score"] == 0  # a value the CRM side never had
    assert record["pi__created_date__c"] is not None
    assert record["pi__created_date__c"][:19].replace("T", " ") == prospect["createdAt"][:19].replace(
        "T", " "
    )
    explained = cli("sync", "explain", "prospect", str(prospect["id"]), "--field", "createdAt")
    assert "ma_to_crm" in str(explained)
    assert crm_counts(cli("sync", "run")) == {"create": 0, "update": 0, "delete": 0}  # and no echo


def meeting_field(org: Path) -> tuple[str, dict[str, Any]]:
    """A date-time custom field on both sides, mapped most_recent; a lead with one, synced."""
    for obj in ("Lead", "Contact"):
        cli("crm", "field", "add", obj, "Meeting__c", "--type", "datetime")
    cli("prospect", "field", "add", "Meeting__c", "--type", "datetime")
    with org.open("a", encoding="utf-8") as f:  # connector init's file ends with the field mappings
        f.write("  - {ma: Meeting__c, crm: Meeting__c, rule: most_recent}\n")
    assert cli("config", "check")["ok"]
    lead = str(cli("crm", "create", "Lead", "--set", "LastName=鈴木", "--set", "Company=鈴木工業",
                   "--set", "Email=suzuki@example.jp", "--set", "Meeting__c=2026-12-01T10:00:00Z")["id"])  # fmt: skip
    cli("sync", "run")
    [prospect] = [p for p in cli("prospect", "list") if p["email"] == "suzuki@example.jp"]
    return lead, prospect


def test_a_date_time_edit_is_not_reverted_by_a_later_edit_of_another_field(org: Path) -> None:
    lead, prospect = meeting_field(org)
    assert prospect["Meeting__c"].startswith("2026-12-01T10:00:00")
    settled = cli("sync", "run")
    assert settled["counts"]["ma"]["update"] == 0  # the CRM's date-time and its agreed text are in step
    cli(
        "prospect", "update", str(prospect["id"]), "--set", "Meeting__c=2026-12-10T15:00:00Z"
    )  # marketing moves it
    cli(
        "crm", "update", "Lead", lead, "--set", "Title=部長"
    )  # then sales edits another field: a newer record
    cli("sync", "run")
    assert cli("prospect", "get", str(prospect["id"]))["Meeting__c"].startswith("2026-12-10T15:00:00")
    assert cli("crm", "get", "Lead", lead)["Meeting__c"].startswith("2026-12-10T15:00:00")
    explained = cli("sync", "explain", "prospect", str(prospect["id"]), "--field", "Meeting__c")
    assert "only_one_side_changed" in str(explained)
    quiet = cli("sync", "run")
    assert (quiet["counts"]["crm"]["update"], quiet["counts"]["ma"]["update"]) == (0, 0)


def test_a_date_time_edit_survives_the_conversion_of_its_lead(org: Path) -> None:
    """The contact a converted lead becomes inherits the lead's date-time: the pair's agreement on it
    carries over (compared as the CRM returns it with the text it was agreed as), so the marketing
    edit not yet synced still wins over the newer contact."""
    lead, prospect = meeting_field(org)
    cli("prospect", "update", str(prospect["id"]), "--set", "Meeting__c=2026-12-10T15:00:00Z")
    contact = cli("crm", "convert-lead", lead)["contactId"]
    assert cli("crm", "get", "Contact", contact)["Meeting__c"].startswith("2026-12-01T10:00:00")
    cli("sync", "run")
    assert cli("prospect", "get", str(prospect["id"]))["salesforceContactId"] == contact
    assert cli("prospect", "get", str(prospect["id"]))["Meeting__c"].startswith("2026-12-10T15:00:00")
    assert cli("crm", "get", "Contact", contact)["Meeting__c"].startswith("2026-12-10T15:00:00")
