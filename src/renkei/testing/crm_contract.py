"""The contract every CRM adapter (``renkei.core.sync.ports.CrmAdapter``) passes.

Use it by subclassing in a test module and providing an ``adapter`` fixture on a fresh, empty
CRM::

    from renkei.testing.crm_contract import CrmAdapterContract

    class TestMyAdapter(CrmAdapterContract):
        @pytest.fixture
        def adapter(self, engine): return MyAdapter(...)

renkei runs it for the built-in CRM in process, for the Salesforce adapter over HTTP against
``renkei serve``, and for the Salesforce adapter under injected faults (``renkei.testing.faults``).
Everything goes through the adapter; assertions are on whole values where the CRM fixes them.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from renkei.core.sync.ports import CrmAdapter, Cursor

_tags = itertools.count(1)


def _leads(tag: str, names: Sequence[str]) -> list[dict[str, Any]]:
    return [{"LastName": n, "Company": tag, "Email": f"{n.lower()}@{tag.lower()}.example.jp"} for n in names]


def _by_id(records: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {str(r["Id"]): r for r in records}


class CrmAdapterContract:
    """Test methods only; pytest collects them through a ``Test…`` subclass."""

    def tag(self) -> str:
        return f"Contract{next(_tags)}"

    def test_create_returns_one_result_per_record_in_order(self, adapter: CrmAdapter) -> None:
        tag = self.tag()
        rows = _leads(tag, ["Aoki", "Baba", "Chiba", "Doi"])
        del rows[2]["Company"]
        results = adapter.create("Lead", rows)
        assert [r.success for r in results] == [True, True, False, True]
        assert results[2].id is None
        assert [(code, fields) for code, _msg, fields in results[2].errors] == [
            ("REQUIRED_FIELD_MISSING", ("Company",))
        ]
        ids = [r.id for r in results if r.success]
        assert len(set(ids)) == 3 and all(i is not None and len(i) == 18 and i.startswith("00Q") for i in ids)

    def test_read_returns_the_records_as_python_values(self, adapter: CrmAdapter) -> None:
        tag = self.tag()
        ids = [r.id for r in adapter.create("Lead", _leads(tag, ["Endo", "Fujii"]))]
        records = adapter.read("Lead", [*(i for i in ids if i), "00Q5g00000zzzzzAAA"])
        assert sorted((r["LastName"], r["Company"], r["IsDeleted"], r["Status"]) for r in records) == [
            ("Endo", tag, False, "Open - Not Contacted"),
            ("Fujii", tag, False, "Open - Not Contacted"),
        ]
        for r in records:
            assert isinstance(r["SystemModstamp"], dt.datetime) and r["SystemModstamp"].tzinfo is not None
            assert "attributes" not in r

    def test_update_changes_only_the_sent_fields_and_reports_failures(self, adapter: CrmAdapter) -> None:
        tag = self.tag()
        [a, b] = [r.id for r in adapter.create("Lead", _leads(tag, ["Goto", "Hara"]))]
        assert a is not None and b is not None
        results = adapter.update("Lead", [{"Id": a, "Title": "部長"}, {"Id": b, "LastName": None, "Title": "x"},
                                          {"Id": "00Q5g00000zzzzzAAA", "Title": "x"}])  # fmt: skip
        assert [(r.success, [(code, fields) for code, _m, fields in r.errors]) for r in results] == [
            (True, []),
            (False, [("REQUIRED_FIELD_MISSING", ("LastName",))]),
            (False, [("NOT_FOUND", ("Id",))]),
        ]
        after = _by_id(adapter.read("Lead", [a, b]))
        assert (after[a]["Title"], after[a]["LastName"], after[a]["Company"]) == ("部長", "Goto", tag)
        assert after[b]["Title"] is None

    def test_writes_of_more_than_200_records_all_land(self, adapter: CrmAdapter) -> None:
        tag = self.tag()
        results = adapter.create("Lead", _leads(tag, [f"N{i:03d}" for i in range(250)]))
        assert [r.success for r in results] == [True] * 250
        assert adapter.count("Lead", f"Company = '{tag}'") == 250
        updates = [{"Id": r.id, "Rating": "Hot"} for r in results]
        assert all(r.success for r in adapter.update("Lead", updates))
        assert adapter.count("Lead", f"Company = '{tag}' AND Rating = 'Hot'") == 250

    def test_changes_page_through_everything_and_resume_after_a_cursor(self, adapter: CrmAdapter) -> None:
        tag = self.tag()
        ids = [r.id for r in adapter.create("Lead", _leads(tag, [f"P{i:03d}" for i in range(250)]))]
        seen: dict[str, Mapping[str, Any]] = {}
        cursor: Cursor | None = None
        for _ in range(20):
            batch = adapter.changes("Lead", cursor, limit=100)
            # A batch may run past the limit only to finish records sharing its last SystemModstamp.
            assert len({r["SystemModstamp"] for r in batch.records[99:]}) <= 1
            seen.update(_by_id(batch.records))
            cursor = batch.cursor
            if batch.done:
                break
        assert set(ids) <= set(seen) and cursor is not None
        changed = [i for i in ids[:5] if i]
        assert all(
            r.success for r in adapter.update("Lead", [{"Id": i, "Title": "Changed"} for i in changed])
        )
        again = adapter.changes("Lead", cursor, limit=2000)
        fresh = _by_id(again.records)
        assert {i: fresh[i]["Title"] for i in changed if i in fresh} == {i: "Changed" for i in changed}
        assert all(r["SystemModstamp"] >= cursor.modstamp for r in again.records)
        assert again.cursor is not None and (again.cursor.modstamp, again.cursor.id) >= (
            cursor.modstamp,
            cursor.id,
        )

    def test_describe_count_and_query(self, adapter: CrmAdapter) -> None:
        tag = self.tag()
        adapter.create("Lead", _leads(tag, ["Ito", "Kato", "Mori"]))
        describe = adapter.describe("Lead")
        types = {f["name"]: f["type"] for f in describe["fields"]}
        assert describe["name"] == "Lead"
        assert (types["Id"], types["SystemModstamp"], types["Email"], types["Status"]) == (
            "id",
            "datetime",
            "email",
            "picklist",
        )
        assert adapter.count("Lead", f"Company = '{tag}'") == 3
        assert adapter.count("Lead", f"Company = '{tag}' AND LastName = 'Kato'") == 1
        rows = adapter.query(f"SELECT LastName FROM Lead WHERE Company = '{tag}' ORDER BY LastName DESC")
        assert [(r["attributes"]["type"], r["LastName"]) for r in rows] == [
            ("Lead", "Mori"),
            ("Lead", "Kato"),
            ("Lead", "Ito"),
        ]
