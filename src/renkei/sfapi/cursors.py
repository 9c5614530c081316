"""Server-side query locators: a query's result is cut into pages when it runs, and each page
is kept (``sfapi_query_page``) until it expires, so ``nextRecordsUrl`` reads a stable snapshot
(``/services/data/v60.0/query/<locator>-<offset>``) whichever worker serves it."""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from renkei.clock import Clock, SystemClock
from renkei.errors import InputError
from renkei.store.tables_sfapi import sfapi_query_page

MAX_BATCH = 2000
MIN_BATCH = 200
#: Salesforce keeps an idle locator about 15 minutes; renkei keeps pages for an hour.
LIFETIME = dt.timedelta(hours=1)
_LOCATOR = re.compile(r"^(01g[0-9A-Za-z]{12,29})-(\d+)$")


def batch_size(header: str | None) -> int:
    """``Sforce-Query-Options: batchSize=n`` (200..2000; Salesforce treats it as a hint)."""
    if not header:
        return MAX_BATCH
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "batchsize":
            try:
                n = int(value.strip())
            except ValueError:
                raise InputError(f"invalid batchSize: {value!r}", code="INVALID_QUERY_LOCATOR") from None
            return min(max(n, MIN_BATCH), MAX_BATCH)
    return MAX_BATCH


class QueryCursors:
    def __init__(self, engine: Engine, *, clock: Clock | None = None, base_path: str) -> None:
        self.engine = engine
        self.clock = clock or SystemClock()
        self.base_path = base_path

    def first_page(self, result: Mapping[str, Any], size: int) -> dict[str, Any]:
        """The response for a fresh query result; later pages are stored when there are any."""
        records: Sequence[Any] = result["records"]
        total = int(result["totalSize"])
        if len(records) <= size:
            return {"totalSize": total, "done": True, "records": list(records)}
        locator = "01g5g" + secrets.token_hex(6)
        now = self.clock.now()
        offsets = list(range(size, len(records), size))
        rows = [
            {
                "locator": locator,
                "offset": off,
                "total_size": total,
                "next_offset": off + size if off + size < len(records) else None,
                "records": list(records[off : off + size]),
                "expires_at": now + LIFETIME,
            }
            for off in offsets
        ]
        with self.engine.begin() as conn:
            conn.execute(sfapi_query_page.delete().where(sfapi_query_page.c.expires_at < now))
            conn.execute(sfapi_query_page.insert(), rows)
        return {
            "totalSize": total,
            "done": False,
            "nextRecordsUrl": f"{self.base_path}/query/{locator}-{size}",
            "records": list(records[:size]),
        }

    def page(self, locator_and_offset: str) -> dict[str, Any]:
        match = _LOCATOR.match(locator_and_offset)
        if not match:
            raise InputError(f"invalid query locator: {locator_and_offset}", code="INVALID_QUERY_LOCATOR")
        locator, offset = match.group(1), int(match.group(2))
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(sfapi_query_page).where(
                    sfapi_query_page.c.locator == locator,
                    sfapi_query_page.c.offset == offset,
                    sfapi_query_page.c.expires_at >= self.clock.now(),
                )
            ).first()
        if row is None:
            raise InputError("invalid query locator", code="INVALID_QUERY_LOCATOR")
        out: dict[str, Any] = {"totalSize": row.total_size, "done": row.next_offset is None}
        if row.next_offset is not None:
            out["nextRecordsUrl"] = f"{self.base_path}/query/{locator}-{row.next_offset}"
        out["records"] = row.records
        return out
