"""``GET /api/calendar?start=YYYY-MM-DD&end=YYYY-MM-DD``: the marketing calendar for the web app
(scheduled list emails, campaign starts and ends, by date). Signed-in users with the calendar
section; an API token works too."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request

from renkei.segments.reports import marketing_calendar
from renkei.web import auth as a
from renkei.web.permissions import Level

router = APIRouter(tags=["calendar"])


@router.get("/api/calendar")
def calendar(
    request: Request,
    start: Annotated[dt.date, Query()],
    end: Annotated[dt.date, Query()],
    authorization: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    principal = a.optional_principal(request) or a.bearer_principal(request, authorization)
    principal.require("calendar", Level.VIEW)
    items = marketing_calendar(request.app.state.engine, start, end)
    for item in items:
        if item["at"] is not None:
            item["at"] = item["at"].isoformat()
    return {"start": start.isoformat(), "end": end.isoformat(), "items": items}
