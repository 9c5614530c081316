"""The CRM adapter port: what the sync engine needs from a CRM (built-in or Salesforce REST).

An adapter reads changes since a watermark, reads records by id, writes in batches of at most
200 records with one result per record, and describes objects. It never writes the engine's own
state: outcomes come back as values and the engine persists them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

MAX_BATCH = 200


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the last read of an object's changes stopped: (SystemModstamp, Id)."""

    modstamp: dt.datetime
    id: str


@dataclass(frozen=True, slots=True)
class ChangeBatch:
    records: tuple[Mapping[str, Any], ...]  # full records, deleted ones included (IsDeleted)
    cursor: Cursor | None
    done: bool


@dataclass(frozen=True, slots=True)
class WriteResult:
    id: str | None
    success: bool
    errors: tuple[tuple[str, str, tuple[str, ...]], ...] = ()  # (code, message, fields)

    @property
    def retriable(self) -> bool:
        return any(code in RETRIABLE_CODES for code, _, _ in self.errors)


RETRIABLE_CODES = frozenset(
    {"UNABLE_TO_LOCK_ROW", "REQUEST_LIMIT_EXCEEDED", "SERVER_UNAVAILABLE", "UNAVAILABLE"}
)


class CrmAdapter(Protocol):
    def changes(self, object_name: str, cursor: Cursor | None, limit: int = 2000) -> ChangeBatch: ...

    def read(self, object_name: str, ids: Sequence[str]) -> list[Mapping[str, Any]]: ...

    def create(self, object_name: str, records: Sequence[Mapping[str, Any]]) -> list[WriteResult]: ...

    def update(self, object_name: str, records: Sequence[Mapping[str, Any]]) -> list[WriteResult]: ...

    def describe(self, object_name: str) -> Mapping[str, Any]: ...

    def count(self, object_name: str, where: str | None) -> int: ...

    def query(self, soql: str) -> list[Mapping[str, Any]]: ...


@runtime_checkable
class ReadsManyChanges(Protocol):
    """Optional: an adapter that reads one batch of changes of several objects at once (the
    Salesforce adapter: one Composite call), so an idle cycle costs one call, not one per object."""

    def changes_many(
        self, cursors: Mapping[str, Cursor | None], limit: int = 2000
    ) -> dict[str, ChangeBatch]: ...


@runtime_checkable
class BulkCopyCapable(Protocol):
    """Optional: a CRM whose records live in the marketing database itself (the built-in CRM), so a
    cycle meeting many records without a prospect can copy them with set-based statements instead
    of one planned create each (see ``renkei.core.sync.bulk``). The adapter only names its relation;
    the engine writes its own state.

    ``bulk_source`` returns, inside the engine's transaction ``conn``, the object's table and the
    compiled "who syncs" filter over it (None without a filter) — or None when the records are not
    in that database."""

    def bulk_source(
        self, conn: Any, object_name: str, where: str | None, now: dt.datetime
    ) -> BulkSource | None: ...


@dataclass(frozen=True, slots=True)
class BulkSource:
    table: Any  # the object's table (a SQLAlchemy Table: the edge's type, not the core's)
    condition: Any  # the filter as a boolean SQL expression over it, or None


@runtime_checkable
class ReadsManyRecords(Protocol):
    """Optional: records of several objects by id at once (the Salesforce adapter: one Composite
    call for up to five queries of 200 ids), deleted ones included, like ``read``."""

    def read_many(self, wanted: Mapping[str, Sequence[str]]) -> dict[str, list[Mapping[str, Any]]]: ...


@runtime_checkable
class QueriesMany(Protocol):
    """Optional: several SOQL queries at once (the Salesforce adapter: five to a Composite call), each
    answered like ``query`` — so a cycle's email look-ups and filter checks cost one call per five
    queries, not one each."""

    def query_many(self, soqls: Sequence[str]) -> list[list[Mapping[str, Any]]]: ...
