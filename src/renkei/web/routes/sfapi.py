"""Routes of the Salesforce-compatible REST API and the OAuth 2.0 token endpoint (thin: parse, call
``renkei.sfapi``, render). Every response under ``/services/`` is in Salesforce's shapes, errors
included (``[{"message","errorCode","fields"}]``); counted requests carry ``Sforce-Limit-Info``."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Body, Depends, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.routing import Match

from renkei.crm.service import CrmService
from renkei.errors import RenkeiError
from renkei.sfapi import SUPPORTED_VERSIONS
from renkei.sfapi.auth import CrmUser, InvalidSessionError, OAuthError, TokenService
from renkei.sfapi.bulk import BulkJobs, JobState, JobType
from renkei.sfapi.composite import CompositeRunner
from renkei.sfapi.cursors import QueryCursors, batch_size
from renkei.sfapi.resources import SalesforceApi
from renkei.sfapi.usage import ApiUsage, daily_limit_from_env

_METHODS = ["GET", "POST", "PATCH", "PUT", "DELETE", "HEAD"]


def _usage(request: Request) -> ApiUsage:
    settings = getattr(request.app.state, "settings", {}) or {}
    limit = settings.get("api_daily_limit") or daily_limit_from_env()
    return ApiUsage(request.app.state.engine, clock=request.app.state.clock, daily_limit=int(limit))


def _error(status: int, errors: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse(errors, status_code=status)


def error_response(exc: RenkeiError) -> JSONResponse:
    if isinstance(exc, OAuthError):
        return JSONResponse(exc.to_oauth(), status_code=exc.http_status)
    status = 400 if exc.http_status == 409 else exc.http_status
    return _error(status, exc.to_salesforce())


class SalesforceRoute(APIRoute):
    """Renders renkei's errors the Salesforce way, and logs and counts authenticated calls."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                response = await handler(request)
            except RenkeiError as exc:
                response = error_response(exc)
            except RequestValidationError:
                response = _error(400, [{"message": "The request body is not valid JSON", "errorCode": "JSON_PARSER_ERROR"}])  # fmt: skip
            user: CrmUser | None = getattr(request.state, "sf_user", None)
            if user is not None:
                usage = _usage(request)
                used = await run_in_threadpool(
                    usage.record,
                    method=request.method,
                    path=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
                    status=response.status_code,
                    records=int(getattr(request.state, "sf_records", 0)),
                    user_id=user.id,
                )
                response.headers["Sforce-Limit-Info"] = usage.header(used)
            return response

        return route


router = APIRouter(route_class=SalesforceRoute, tags=["salesforce"])


def authenticated(
    request: Request, version: str, authorization: Annotated[str | None, Header()] = None
) -> CrmUser:
    if version not in SUPPORTED_VERSIONS:
        from renkei.errors import NotFoundError

        raise NotFoundError("The requested resource does not exist")
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() not in ("bearer", "oauth"):
        raise InvalidSessionError("Session expired or invalid")
    user = TokenService(request.app.state.engine, clock=request.app.state.clock).authenticate(token.strip())
    request.state.sf_user = user
    _usage(request).check()
    return user


User = Annotated[CrmUser, Depends(authenticated)]


def _api(request: Request, user: CrmUser, version: str) -> SalesforceApi:
    engine, clock = request.app.state.engine, request.app.state.clock
    base = f"/services/data/v{version}"
    crm = CrmService(engine, clock=clock, user_id=user.id)
    return SalesforceApi(crm, QueryCursors(engine, clock=clock, base_path=base), base_path=base)


def _count(request: Request, n: int) -> None:
    request.state.sf_records = n


V = "/services/data/v{version}"


@router.get("/services/data", include_in_schema=False)
@router.get("/services/data/")
def versions() -> list[dict[str, str]]:
    return [{"label": f"v{v}", "url": f"/services/data/v{v}", "version": v} for v in SUPPORTED_VERSIONS]


@router.get(V)
@router.get(V + "/", include_in_schema=False)
def resources(version: str, user: User) -> dict[str, str]:
    base = f"/services/data/v{version}"
    names = ("sobjects", "query", "queryAll", "limits", "composite", "jobs")
    return {n: f"{base}/{n}" for n in names}


@router.get(V + "/limits")
@router.get(V + "/limits/", include_in_schema=False)
def limits(request: Request, version: str, user: User) -> dict[str, Any]:
    return _usage(request).limits()


@router.get(V + "/sobjects")
@router.get(V + "/sobjects/", include_in_schema=False)
def describe_global(request: Request, version: str, user: User) -> dict[str, Any]:
    return _api(request, user, version).describe_global()


@router.get(V + "/sobjects/{obj}/describe")
@router.get(V + "/sobjects/{obj}/describe/", include_in_schema=False)
def describe(request: Request, version: str, obj: str, user: User) -> dict[str, Any]:
    return _api(request, user, version).describe(obj)


@router.get(V + "/sobjects/{obj}")
@router.get(V + "/sobjects/{obj}/", include_in_schema=False)
def sobject_info(request: Request, version: str, obj: str, user: User) -> dict[str, Any]:
    return _api(request, user, version).sobject_info(obj)


@router.post(V + "/sobjects/{obj}", status_code=201)
@router.post(V + "/sobjects/{obj}/", status_code=201, include_in_schema=False)
def create(request: Request, version: str, obj: str, user: User, body: Annotated[Any, Body()] = None) -> Any:
    _count(request, 1)
    return JSONResponse(_api(request, user, version).create(obj, body), status_code=201)


@router.get(V + "/sobjects/{obj}/updated")
@router.get(V + "/sobjects/{obj}/updated/", include_in_schema=False)
def updated(
    request: Request, version: str, obj: str, user: User, start: str | None = None, end: str | None = None
) -> dict[str, Any]:
    result = _api(request, user, version).updated(obj, start, end)
    _count(request, len(result.get("ids", [])))
    return result


@router.get(V + "/sobjects/{obj}/deleted")
@router.get(V + "/sobjects/{obj}/deleted/", include_in_schema=False)
def deleted(
    request: Request, version: str, obj: str, user: User, start: str | None = None, end: str | None = None
) -> dict[str, Any]:
    result = _api(request, user, version).deleted(obj, start, end)
    _count(request, len(result.get("deletedRecords", [])))
    return result


@router.get(V + "/sobjects/{obj}/{record_id}")
def get_record(
    request: Request, version: str, obj: str, record_id: str, user: User, fields: str | None = None
) -> dict[str, Any]:
    _count(request, 1)
    return _api(request, user, version).get(obj, record_id, fields)


@router.patch(V + "/sobjects/{obj}/{record_id}", status_code=204)
def update_record(
    request: Request, version: str, obj: str, record_id: str, user: User, body: Annotated[Any, Body()] = None
) -> Response:
    _count(request, 1)
    _api(request, user, version).update(obj, record_id, body)
    return Response(status_code=204)


@router.delete(V + "/sobjects/{obj}/{record_id}", status_code=204)
def delete_record(request: Request, version: str, obj: str, record_id: str, user: User) -> Response:
    _count(request, 1)
    _api(request, user, version).delete(obj, record_id)
    return Response(status_code=204)


def _query(
    request: Request, version: str, user: User, q: str | None, options: str | None, include_deleted: bool
) -> dict[str, Any]:  # noqa: E501
    result = _api(request, user, version).query(
        q, include_deleted=include_deleted, batch_size=batch_size(options)
    )
    _count(request, len(result["records"]))
    return result


QueryOptions = Annotated[str | None, Header(alias="Sforce-Query-Options")]


@router.get(V + "/query")
@router.get(V + "/query/", include_in_schema=False)
def query(
    request: Request, version: str, user: User, q: str | None = None, options: QueryOptions = None
) -> dict[str, Any]:  # noqa: E501
    return _query(request, version, user, q, options, include_deleted=False)


@router.get(V + "/queryAll")
@router.get(V + "/queryAll/", include_in_schema=False)
def query_all(
    request: Request, version: str, user: User, q: str | None = None, options: QueryOptions = None
) -> dict[str, Any]:  # noqa: E501
    return _query(request, version, user, q, options, include_deleted=True)


@router.get(V + "/query/{locator}")
@router.get(V + "/queryAll/{locator}", include_in_schema=False)
def query_more(request: Request, version: str, locator: str, user: User) -> dict[str, Any]:
    result = _api(request, user, version).query_more(locator)
    _count(request, len(result["records"]))
    return result


def _collection(request: Request, version: str, user: CrmUser, body: Any, op: str) -> list[dict[str, Any]]:
    records = body.get("records") if isinstance(body, dict) else None
    _count(request, len(records) if isinstance(records, list) else 0)
    api = _api(request, user, version)
    return api.collection_create(body) if op == "create" else api.collection_update(body)


@router.post(V + "/composite")
@router.post(V + "/composite/", include_in_schema=False)
def composite(
    request: Request, version: str, user: User, body: Annotated[Any, Body()] = None
) -> dict[str, Any]:
    """Up to 25 subrequests; one call against the allocation and one row of the request log."""
    result, records = CompositeRunner(_api(request, user, version)).run(body)
    _count(request, records)
    return result


@router.post(V + "/composite/sobjects")
@router.post(V + "/composite/sobjects/", include_in_schema=False)
def collection_create(
    request: Request, version: str, user: User, body: Annotated[Any, Body()] = None
) -> list[dict[str, Any]]:
    return _collection(request, version, user, body, "create")


@router.patch(V + "/composite/sobjects")
@router.patch(V + "/composite/sobjects/", include_in_schema=False)
def collection_update(
    request: Request, version: str, user: User, body: Annotated[Any, Body()] = None
) -> list[dict[str, Any]]:
    return _collection(request, version, user, body, "update")


@router.delete(V + "/composite/sobjects")
@router.delete(V + "/composite/sobjects/", include_in_schema=False)
def collection_delete(
    request: Request,
    version: str,
    user: User,
    ids: str | None = None,
    allOrNone: str | None = None,  # noqa: N803
) -> list[dict[str, Any]]:
    result = _api(request, user, version).collection_delete(ids, (allOrNone or "").lower() == "true")
    _count(request, len(result))
    return result


# -- Bulk API 2.0 --------------------------------------------------------------------------------

_JOB_TYPES = {"ingest": JobType.INGEST, "query": JobType.QUERY}
_INGEST_RESULTS = ("successfulResults", "failedResults", "unprocessedrecords")


def _bulk(request: Request, version: str) -> BulkJobs:
    return BulkJobs(request.app.state.engine, clock=request.app.state.clock, api_version=version)


def _job_type(kind: str) -> JobType:
    if kind not in _JOB_TYPES:
        from renkei.errors import NotFoundError

        raise NotFoundError("The requested resource does not exist")
    return _JOB_TYPES[kind]


@router.post(V + "/jobs/{kind}")
@router.post(V + "/jobs/{kind}/", include_in_schema=False)
def bulk_create(
    request: Request, version: str, kind: str, user: User, body: Annotated[Any, Body()] = None
) -> dict[str, Any]:
    jobs = _bulk(request, version)
    if _job_type(kind) is JobType.INGEST:
        return jobs.create_ingest(user.id, body)
    return jobs.create_query(user.id, body)


@router.get(V + "/jobs/{kind}")
@router.get(V + "/jobs/{kind}/", include_in_schema=False)
def bulk_list(request: Request, version: str, kind: str, user: User) -> dict[str, Any]:
    return _bulk(request, version).list_jobs(_job_type(kind))


@router.get(V + "/jobs/{kind}/{job_id}")
@router.get(V + "/jobs/{kind}/{job_id}/", include_in_schema=False)
def bulk_info(
    request: Request, version: str, kind: str, job_id: str, user: User, background: BackgroundTasks
) -> dict[str, Any]:
    jobs = _bulk(request, version)
    if jobs.needs_processing(job_id, _job_type(kind)):  # e.g. the server restarted before processing
        background.add_task(jobs.process, job_id)
    return jobs.info(job_id, _job_type(kind))


@router.patch(V + "/jobs/{kind}/{job_id}")
@router.patch(V + "/jobs/{kind}/{job_id}/", include_in_schema=False)
def bulk_set_state(
    request: Request, version: str, kind: str, job_id: str, user: User, background: BackgroundTasks,
    body: Annotated[Any, Body()] = None,
) -> dict[str, Any]:  # fmt: skip
    jobs = _bulk(request, version)
    info = jobs.set_state(job_id, _job_type(kind), body)
    if info["state"] == JobState.UPLOAD_COMPLETE.value:
        background.add_task(jobs.process, job_id)  # after the response: the client sees UploadComplete
    return info


@router.delete(V + "/jobs/{kind}/{job_id}", status_code=204)
@router.delete(V + "/jobs/{kind}/{job_id}/", status_code=204, include_in_schema=False)
def bulk_delete(request: Request, version: str, kind: str, job_id: str, user: User) -> Response:
    _bulk(request, version).delete(job_id, _job_type(kind))
    return Response(status_code=204)


@router.put(V + "/jobs/ingest/{job_id}/batches", status_code=201)
@router.put(V + "/jobs/ingest/{job_id}/batches/", status_code=201, include_in_schema=False)
async def bulk_upload(request: Request, version: str, job_id: str, user: User) -> Response:
    content = await request.body()
    rows = await run_in_threadpool(_bulk(request, version).upload, job_id, content)
    _count(request, rows)
    return Response(status_code=201)


def _csv(text: str, headers: dict[str, str] | None = None) -> Response:
    return Response(text, media_type="text/csv", headers=headers)


@router.get(V + "/jobs/ingest/{job_id}/{result}")
@router.get(V + "/jobs/ingest/{job_id}/{result}/", include_in_schema=False)
def bulk_ingest_results(request: Request, version: str, job_id: str, result: str, user: User) -> Response:
    if result not in _INGEST_RESULTS:
        from renkei.errors import NotFoundError

        raise NotFoundError("The requested resource does not exist")
    text, rows = _bulk(request, version).results(job_id, result)
    _count(request, rows)
    return _csv(text)


@router.get(V + "/jobs/query/{job_id}/results")
@router.get(V + "/jobs/query/{job_id}/results/", include_in_schema=False)
def bulk_query_results(
    request: Request, version: str, job_id: str, user: User, locator: str | None = None,
    maxRecords: int | None = None,  # noqa: N803
) -> Response:  # fmt: skip
    page = _bulk(request, version).query_results(job_id, locator, maxRecords)
    _count(request, page.records)
    headers = {"Sforce-Locator": page.locator or "null", "Sforce-NumberOfRecords": str(page.records)}
    return _csv(page.csv, headers)


@router.post("/services/oauth2/token")
async def oauth_token(request: Request) -> dict[str, Any]:
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    service = TokenService(request.app.state.engine, clock=request.app.state.clock)
    instance_url = f"{request.url.scheme}://{request.url.netloc}"
    return await run_in_threadpool(service.oauth_token, fields, instance_url=instance_url)


@router.api_route("/services/{rest:path}", methods=_METHODS, include_in_schema=False)
def not_found(request: Request, rest: str) -> Response:
    """Anything else under /services/: 405 when the path exists for another method, else 404."""
    allowed: set[str] = set()
    for route in router.routes:
        if isinstance(route, APIRoute) and route.path != "/services/{rest:path}":
            match, _ = route.matches(request.scope)
            if match is Match.PARTIAL:
                allowed |= route.methods or set()
    if allowed:
        message = f"HTTP Method '{request.method}' not allowed. Allowed are {', '.join(sorted(allowed))}"
        return _error(405, [{"message": message, "errorCode": "METHOD_NOT_ALLOWED"}])
    return _error(404, [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}])
