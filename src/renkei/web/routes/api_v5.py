"""The marketing REST API in Account Engagement v5's shape, under ``/api/v5/objects/``.

Bearer API tokens (``renkei user token create``; scopes ``read`` for GET, ``write`` for POST,
PATCH, DELETE). Responses: ``{"values": [...], "nextPageToken", "nextPageUrl"}`` for queries,
the record for reads and writes; errors ``{"code": <int>, "message"}`` (codes: docs/web.md).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from renkei.errors import ConflictError, InputError, NotFoundError, RenkeiError, ValidationError
from renkei.web import auth as a
from renkei.web import v5objects as v5
from renkei.web.auth import Principal
from renkei.web.permissions import Level
from renkei.web.v5objects import ObjectName, V5Error, V5Reader


class V5ErrorBody(BaseModel):
    code: int
    message: str


class UpsertBody(BaseModel):
    matchEmail: str = Field(min_length=1, max_length=255)
    prospect: dict[str, Any] = Field(default_factory=dict)
    fields: list[str] | None = None
    secondaryDeletedSearch: bool = True


class MembershipBody(BaseModel):
    listId: int
    prospectId: int


class V5Page(BaseModel):
    model_config = ConfigDict(extra="allow")
    values: list[dict[str, Any]]
    nextPageToken: str | None
    nextPageUrl: str | None


def _v5_error(exc: RenkeiError) -> JSONResponse:
    if isinstance(exc, V5Error):
        code, status = exc.v5_code, exc.http_status
    elif isinstance(exc, a.NotSignedIn):
        code, status = v5.INVALID_TOKEN_AUTH, 401
    elif isinstance(exc, a.Forbidden):
        code, status = v5.INSUFFICIENT_SCOPE, 403
    elif isinstance(exc, NotFoundError):
        code, status = v5.NO_SUCH_RECORD, 404
    elif isinstance(exc, ValidationError):
        code, status = v5.INVALID_VALUE, 400
    elif isinstance(exc, (ConflictError, InputError)):
        code, status = (v5.CONFLICT if exc.code == "DUPLICATE_VALUE" else v5.INVALID_VALUE), 400
    else:
        code, status = 10000, exc.http_status
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"code": code, "message": exc.message}, status_code=status, headers=headers)


class V5Route(APIRoute):
    """Renders every failure in v5's ``{"code","message"}`` shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RenkeiError as exc:
                return _v5_error(exc)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                where = ".".join(str(p) for p in first.get("loc", ()))
                return JSONResponse(
                    {
                        "code": v5.INVALID_PARAMETER,
                        "message": f"Invalid request: {where} {first.get('msg', '')}".strip(),
                    },
                    status_code=400,
                )

        return route


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": V5ErrorBody, "description": "Invalid request"},
    401: {"model": V5ErrorBody, "description": "Missing, invalid, expired or revoked API token"},
    403: {"model": V5ErrorBody, "description": "The token lacks the scope"},
    404: {"model": V5ErrorBody, "description": "No such record"},
}

router = APIRouter(prefix="/api/v5/objects", route_class=V5Route, tags=["api v5"], responses=_ERRORS)


#: The app section whose permission an API path needs (the token's owner's role decides too).
_SECTIONS = {
    "prospects": "prospects",
    "visitor-activities": "prospects",
    "lists": "prospects",
    "list-memberships": "prospects",
    "campaigns": "campaigns",
    "users": "settings",
}


def _section(path: str) -> str:
    rest = path.removeprefix("/api/v5/")
    if rest.startswith("connector"):
        return "connector"
    name = rest.removeprefix("objects/").split("/", 1)[0]
    return _SECTIONS.get(name, "settings")


def _scoped(scope: str) -> Callable[..., Principal]:
    """A token with ``scope`` whose owner's role may view (GET) or edit (other methods) the
    section the path belongs to."""

    def dependency(
        request: Request, principal: Annotated[Principal, Depends(a.bearer_principal)]
    ) -> Principal:
        if scope not in principal.scopes:
            raise a.Forbidden(f"this API token lacks the {scope!r} scope")
        level = Level.VIEW if request.method in ("GET", "HEAD") else Level.EDIT
        principal.require(_section(request.url.path), level)
        return principal

    return dependency


Reader = Annotated[Principal, Depends(_scoped("read"))]
Writer = Annotated[Principal, Depends(_scoped("write"))]
FieldsParam = Annotated[
    str | None, Query(description="Comma-separated field names (required, as in AE v5).", max_length=4000)
]


def _reader(request: Request) -> V5Reader:
    return V5Reader(request.app.state.engine, a.auth_service(request).secret("v5-page-token"))


@router.get("/{object_name}", response_model=V5Page, summary="Query records")
async def query(
    request: Request,
    object_name: ObjectName,
    _who: Reader,
    fields: FieldsParam = None,
    limit: Annotated[int, Query(ge=1, le=v5.MAX_LIMIT)] = v5.DEFAULT_LIMIT,
    orderBy: Annotated[str, Query(max_length=1000)] = "",
    deleted: Annotated[str, Query(pattern="^(true|false|all)$")] = "false",
    nextPageToken: Annotated[str | None, Query(max_length=4000)] = None,
) -> dict[str, Any]:
    """Records of one object. Filters: `<field><Operator>=value` with Operator one of
    GreaterThan, GreaterThanOrEqualTo, LessThan, LessThanOrEqualTo, After, AfterOrEqualTo,
    Before, BeforeOrEqualTo (at most three fields). Follow `nextPageUrl` for the next page."""
    reader = _reader(request)
    if nextPageToken:
        q = reader.decode(nextPageToken)
        if q.object != object_name:
            raise V5Error(v5.PAGE_TOKEN_INVALID, "The nextPageToken belongs to another object.")
    else:
        reserved = ("fields", "limit", "orderBy", "deleted", "nextPageToken")
        filters = v5.split_filters(dict(request.query_params), reserved)
        q = v5.Query(object_name, v5.parse_fields(fields), limit, orderBy, deleted, filters)
    values, token = await run_in_threadpool(reader.page, q)
    url = None
    if token:
        url = (
            str(request.url_for("query", object_name=object_name.value))
            + "?"
            + urlencode({"nextPageToken": token, "fields": ",".join(q.fields)})
        )
    return {"values": values, "nextPageToken": token, "nextPageUrl": url}


@router.get("/{object_name}/{record_id}", summary="Read one record")
async def read(
    request: Request, object_name: ObjectName, record_id: int, _who: Reader, fields: FieldsParam = None
) -> dict[str, Any]:
    return await run_in_threadpool(_reader(request).read, object_name, record_id, v5.parse_fields(fields))


def _fields_or_all(fields: str | None) -> tuple[str, ...] | None:
    return v5.parse_fields(fields) if fields else None


def _shape(record: dict[str, Any], fields: tuple[str, ...] | None) -> dict[str, Any]:
    from renkei.marketing.service import to_json

    out = to_json({k: v for k, v in record.items() if k != "emailKey"})
    if fields is None:
        return out
    unknown = [f for f in fields if f not in out]
    if unknown:
        raise V5Error(v5.INVALID_PARAMETER, f"Unknown fields: {', '.join(unknown)}")
    return {f: out[f] for f in fields}


ProspectBody = Annotated[
    dict[str, Any], Body(description="Prospect fields by v5 name; email is required on create.")
]


def _prospects(request: Request, who: Principal) -> Any:
    from renkei.marketing.service import ProspectService

    return ProspectService(
        request.app.state.engine, clock=request.app.state.clock, actor=who.email, user_id=who.user_id
    )


def _check_writable(values: dict[str, Any]) -> None:
    from renkei.marketing.schema import PROSPECT_WRITABLE

    writable = {f.name for f in PROSPECT_WRITABLE}
    bad = [k for k in values if k not in writable and not k.endswith("__c")]
    if bad:
        raise V5Error(v5.NOT_WRITABLE, f"Fields are not writable: {', '.join(sorted(bad))}")


@router.post("/prospects", status_code=201, summary="Create a prospect")
async def create_prospect(
    request: Request, who: Writer, values: ProspectBody, fields: FieldsParam = None
) -> dict[str, Any]:
    _check_writable(values)
    wanted = _fields_or_all(fields)
    created = await run_in_threadpool(_prospects(request, who).create, values)
    return _shape(created, wanted)


@router.patch("/prospects/{record_id}", summary="Update a prospect (omitted fields are kept)")
async def update_prospect(
    request: Request, record_id: int, who: Writer, values: ProspectBody, fields: FieldsParam = None
) -> dict[str, Any]:
    _check_writable(values)
    wanted = _fields_or_all(fields)
    service = _prospects(request, who)
    current = await run_in_threadpool(_get_live_prospect, service, record_id)
    updated = await run_in_threadpool(service.update, current["id"], values)
    return _shape(updated, wanted)


def _get_live_prospect(service: Any, record_id: int) -> dict[str, Any]:
    if abs(record_id) > 2**62:
        raise V5Error(v5.NO_SUCH_RECORD, f"No prospect with id {record_id}", http_status=404)
    record: dict[str, Any] = service.get(record_id, include_deleted=True)
    if record.get("isDeleted"):
        raise V5Error(v5.RECYCLED, f"Prospect {record_id} is in the recycle bin")
    return record


@router.delete("/prospects/{record_id}", status_code=204, summary="Move a prospect to the recycle bin")
async def delete_prospect(request: Request, record_id: int, who: Writer) -> Response:
    service = _prospects(request, who)
    await run_in_threadpool(_get_live_prospect, service, record_id)
    await run_in_threadpool(service.delete, record_id)
    return Response(status_code=204)


@router.post(
    "/prospects/do/upsertLatestByEmail", summary="Update the latest prospect with this email, else create one"
)
async def upsert_latest_by_email(
    request: Request, who: Writer, body: Annotated[UpsertBody, Body()]
) -> dict[str, Any]:
    _check_writable(body.prospect)
    service = _prospects(request, who)

    def upsert() -> dict[str, Any]:
        found = service.find_by_email(body.matchEmail, include_deleted=body.secondaryDeletedSearch)
        live = [p for p in found if not p.get("isDeleted")]
        pool = live or found
        if not pool:
            return dict(service.create({"email": body.matchEmail, **body.prospect}))
        latest = max(pool, key=lambda p: (p["updatedAt"], p["id"]))
        if latest.get("isDeleted"):
            service.undelete(latest["id"])
        return dict(service.update(latest["id"], body.prospect))

    record = await run_in_threadpool(upsert)
    return _shape(record, tuple(body.fields) if body.fields else None)


@router.post("/prospects/{record_id}/do/undelete", summary="Restore a prospect from the recycle bin")
async def undelete_prospect(
    request: Request, record_id: int, who: Writer, fields: FieldsParam = None
) -> dict[str, Any]:
    wanted = _fields_or_all(fields)
    service = _prospects(request, who)
    if abs(record_id) > 2**62:
        raise V5Error(v5.NO_SUCH_RECORD, f"No prospect with id {record_id}", http_status=404)
    return _shape(await run_in_threadpool(service.undelete, record_id), wanted)


# -- lists, campaigns, list memberships --------------------------------------------------------

_LIST_WRITABLE = ("name", "title", "description", "isPublic", "isCrmVisible", "folderId", "campaignId")
_CAMPAIGN_WRITABLE = ("name", "cost", "folderId", "parentCampaignId", "isActive", "startDate", "endDate")
RecordBody = Annotated[dict[str, Any], Body(description="Fields by v5 name.")]


def _table_service(request: Request, who: Principal, kind: str) -> Any:
    from renkei.marketing.service import CampaignService, ListService

    cls = ListService if kind == "lists" else CampaignService
    return cls(request.app.state.engine, clock=request.app.state.clock, actor=who.email)


def _write_values(kind: str, values: dict[str, Any]) -> dict[str, Any]:
    from renkei.store import tables as t

    table, writable = (t.list_, _LIST_WRITABLE) if kind == "lists" else (t.campaign, _CAMPAIGN_WRITABLE)
    return v5.checked_values(table, values, writable)


def _check_id(record_id: int) -> None:
    if abs(record_id) > 2**62:
        raise V5Error(v5.NO_SUCH_RECORD, f"No record with id {record_id}", http_status=404)


@router.post("/lists", status_code=201, summary="Create a static list")
async def create_list(
    request: Request, who: Writer, values: RecordBody, fields: FieldsParam = None
) -> dict[str, Any]:
    row = _write_values("lists", values)
    return _shape(
        await run_in_threadpool(_table_service(request, who, "lists").create, row), _fields_or_all(fields)
    )


@router.patch("/lists/{record_id}", summary="Update a list")
async def update_list(
    request: Request, record_id: int, who: Writer, values: RecordBody, fields: FieldsParam = None
) -> dict[str, Any]:
    _check_id(record_id)
    row = _write_values("lists", values)
    updated = await run_in_threadpool(_table_service(request, who, "lists").update, record_id, row)
    return _shape(updated, _fields_or_all(fields))


@router.delete("/lists/{record_id}", status_code=204, summary="Delete a list and its memberships")
async def delete_list(request: Request, record_id: int, who: Writer) -> Response:
    _check_id(record_id)
    await run_in_threadpool(_table_service(request, who, "lists").delete, record_id)
    return Response(status_code=204)


@router.post("/campaigns", status_code=201, summary="Create a campaign")
async def create_campaign(
    request: Request, who: Writer, values: RecordBody, fields: FieldsParam = None
) -> dict[str, Any]:
    row = _write_values("campaigns", values)
    created = await run_in_threadpool(_table_service(request, who, "campaigns").create, row)
    return _shape(created, _fields_or_all(fields))


@router.patch("/campaigns/{record_id}", summary="Update a campaign")
async def update_campaign(
    request: Request, record_id: int, who: Writer, values: RecordBody, fields: FieldsParam = None
) -> dict[str, Any]:
    _check_id(record_id)
    row = _write_values("campaigns", values)
    updated = await run_in_threadpool(_table_service(request, who, "campaigns").update, record_id, row)
    return _shape(updated, _fields_or_all(fields))


@router.post("/list-memberships", status_code=201, summary="Add a prospect to a static list")
async def create_membership(
    request: Request, who: Writer, body: Annotated[MembershipBody, Body()]
) -> dict[str, Any]:
    from renkei.marketing.service import ListService

    _check_id(body.listId)
    _check_id(body.prospectId)
    engine = request.app.state.engine
    lists = ListService(engine, clock=request.app.state.clock, actor=who.email)
    await run_in_threadpool(lists.add_prospects, body.listId, [body.prospectId])
    membership = await run_in_threadpool(v5.membership_id, engine, body.listId, body.prospectId)
    reader = _reader(request)
    fields = ("id", "listId", "prospectId", "optedOut", "createdAt", "updatedAt")
    return await run_in_threadpool(reader.read, ObjectName.LIST_MEMBERSHIPS, membership, fields)


@router.delete(
    "/list-memberships/{record_id}", status_code=204, summary="Remove a prospect from a static list"
)
async def delete_membership(request: Request, record_id: int, who: Writer) -> Response:
    from renkei.marketing.service import ListService

    _check_id(record_id)
    row = await run_in_threadpool(
        _reader(request).read, ObjectName.LIST_MEMBERSHIPS, record_id, ("listId", "prospectId")
    )
    lists = ListService(request.app.state.engine, clock=request.app.state.clock, actor=who.email)
    await run_in_threadpool(lists.remove_prospects, row["listId"], [row["prospectId"]])
    return Response(status_code=204)


# -- connector operations ----------------------------------------------------------------------

connector_router = APIRouter(
    prefix="/api/v5/connector", route_class=V5Route, tags=["connector"], responses=_ERRORS
)
Operator = Annotated[Principal, Depends(_scoped("connector"))]


def _sync(request: Request) -> Any:
    from renkei.web.ui import views

    if not views.connector_installed():
        raise V5Error(v5.NO_SUCH_RECORD, "the connector is not installed", http_status=404)
    from renkei.web.routes.ui_connector import sync_service

    return sync_service(request)


@connector_router.post("/run", summary="Run one sync cycle now")
async def connector_run(request: Request, _who: Operator) -> dict[str, Any]:
    return dict(await run_in_threadpool(lambda: _sync(request).run()))


@connector_router.get("/plan", summary="Dry run: what the next cycle would do (writes nothing)")
async def connector_plan(request: Request, _who: Operator) -> dict[str, Any]:
    return dict(await run_in_threadpool(lambda: _sync(request).plan()))


@connector_router.get("/explain/{prospect_id}", summary="Why each synced field of a prospect has its value")
async def connector_explain(
    request: Request,
    prospect_id: int,
    _who: Operator,
    field: Annotated[str | None, Query(max_length=80)] = None,
) -> dict[str, Any]:
    _check_id(prospect_id)
    return dict(await run_in_threadpool(lambda: _sync(request).explain(prospect_id, field)))


@connector_router.get("/errors", summary="Sync errors (open ones unless includeResolved)")
async def connector_errors(request: Request, _who: Operator, includeResolved: bool = False) -> dict[str, Any]:
    errors = await run_in_threadpool(lambda: _sync(request).errors(include_resolved=includeResolved))
    return {"values": errors}


@connector_router.post("/retry", summary="Queue the records of open errors (one, or all) and run a cycle")
async def connector_retry(request: Request, _who: Operator, errorId: int | None = None) -> dict[str, Any]:
    if errorId is not None:
        _check_id(errorId)
    return dict(await run_in_threadpool(lambda: _sync(request).retry(errorId)))


@connector_router.get("/queue", summary="Pending queued changes, rate and ETA")
async def connector_queue(request: Request, _who: Operator) -> dict[str, Any]:
    return dict(await run_in_threadpool(lambda: _sync(request).queue()))


def setup(app: FastAPI) -> None:
    app.include_router(connector_router)
