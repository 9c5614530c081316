"""The built-in CRM as a connector adapter (over ``CrmService``), counting its calls."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from renkei.core.sync.ports import MAX_BATCH, BulkSource, ChangeBatch, Cursor, WriteResult
from renkei.crm.service import CrmService, SaveResult, Watermark


def _result(r: SaveResult) -> WriteResult:
    return WriteResult(r.id, r.success, tuple((e.code, e.message, e.fields) for e in r.errors))


#: records ``BuiltinCrmAdapter`` keeps as read, to hand to the update that follows (a bound, not a size)
_AS_READ_LIMIT = 50_000


class BuiltinCrmAdapter:
    def __init__(self, crm: CrmService) -> None:
        self.crm = crm
        self.calls = {"read": 0, "write": 0}
        # the records ``read`` returned, by object and id: a cycle reads the records it judges and
        # then updates some of them; the update checks each is still as read (``update_many``'s
        # ``as_read``) instead of reading it again. Kept from the cycle's reads to its update (the
        # update and the next ``changes`` let them go), at most ``_AS_READ_LIMIT`` an object
        self._as_read: dict[str, dict[str, Mapping[str, Any]]] = {}

    def changes(self, object_name: str, cursor: Cursor | None, limit: int = 2000) -> ChangeBatch:
        """The object's records changed after ``cursor`` (a cycle starts here: the records kept as
        read by an earlier cycle are let go)."""
        self.calls["read"] += 1
        self._as_read.pop(object_name, None)
        mark = Watermark(cursor.modstamp, cursor.id) if cursor else None
        page = self.crm.changes_since(object_name, mark, limit=limit)
        out = Cursor(page.watermark.modstamp, page.watermark.id) if page.watermark else None
        return ChangeBatch(page.records, out, page.done)

    def read(self, object_name: str, ids: Sequence[str]) -> list[Mapping[str, Any]]:
        self.calls["read"] += 1
        rows = self.crm.get_many(object_name, ids, include_deleted=True)
        kept = self._as_read.setdefault(object_name, {})
        if len(kept) + len(rows) > _AS_READ_LIMIT:
            kept.clear()
        if len(rows) <= _AS_READ_LIMIT:
            kept.update((str(r["Id"]), r) for r in rows)
        return list(rows)

    def create(self, object_name: str, records: Sequence[Mapping[str, Any]]) -> list[WriteResult]:
        return self._in_batches(self.crm.create_many, object_name, records)

    def update(self, object_name: str, records: Sequence[Mapping[str, Any]]) -> list[WriteResult]:
        kept = self._as_read.pop(object_name, None)

        def update_many(obj: str, rows: Sequence[Mapping[str, Any]]) -> list[SaveResult]:
            return self.crm.update_many(obj, rows, as_read=kept)

        return self._in_batches(update_many, object_name, records)

    def _in_batches(self, write: Callable[[str, Sequence[Mapping[str, Any]]], list[SaveResult]], object_name: str,
                    records: Sequence[Mapping[str, Any]]) -> list[WriteResult]:  # fmt: skip
        """One counted call per 200 records, as the API takes them; one commit for them all
        (``CrmService.together``)."""
        out: list[WriteResult] = []
        with self.crm.together():
            for start in range(0, len(records), MAX_BATCH):
                self.calls["write"] += 1
                out += [_result(r) for r in write(object_name, records[start : start + MAX_BATCH])]
        return out

    def describe(self, object_name: str) -> Mapping[str, Any]:
        return self.crm.describe(object_name)

    def count(self, object_name: str, where: str | None) -> int:
        soql = f"SELECT COUNT() FROM {object_name}" + (f" WHERE {where}" if where else "")
        return int(self.crm.query(soql)["totalSize"])

    def query(self, soql: str) -> list[Mapping[str, Any]]:
        self.calls["read"] += 1
        return list(self.crm.query(soql)["records"])

    def bulk_source(
        self, conn: Any, object_name: str, where: str | None, now: dt.datetime
    ) -> BulkSource | None:
        """The object's table in this database and its filter compiled to SQL (``BulkCopyCapable``)."""
        from renkei.crm.soql_sql import compile_where
        from renkei.store import dynamic

        if str(conn.engine.url) != str(self.crm.engine.url):
            return None
        schema = dynamic.load_crm_schema(conn)
        condition = compile_where(schema, object_name, where, now=now) if where else None
        return BulkSource(schema.table(object_name), condition)
