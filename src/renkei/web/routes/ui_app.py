"""The web app under ``/app``: sign-in, the dashboard, AE's sections, the marketing calendar and
settings (server-rendered Jinja2 pages with htmx). Thin: parse, check the role, call a service
or a read model (``renkei.web.ui.views``), render.

Every unsafe request must carry the session's CSRF token (``check_csrf``, 403 otherwise).
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from renkei.errors import InputError, RenkeiError
from renkei.web import auth as a
from renkei.web.auth import Principal
from renkei.web.permissions import SECTIONS, Level
from renkei.web.ui import views
from renkei.web.ui.render import render

STATIC = Path(__file__).resolve().parents[1] / "static"

router = APIRouter(prefix="/app", include_in_schema=False, dependencies=[Depends(a.check_csrf)])
root = APIRouter(include_in_schema=False)


def need(section: str, level: Level = Level.VIEW) -> Callable[[Request], Principal]:
    def dependency(request: Request) -> Principal:
        principal = a.current_principal(request)
        principal.require(section, level)
        return principal

    return dependency


def _now(request: Request) -> dt.datetime:
    return request.app.state.clock.now()  # type: ignore[no-any-return]


def _engine(request: Request) -> Any:
    return request.app.state.engine


def _cookie_secure(request: Request) -> bool:
    return bool(request.app.state.settings.get("cookie_secure", True))


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


# ---------------------------------------------------------------------------------------------
# Sign-in


@root.get("/")
def home() -> RedirectResponse:
    return _see_other("/app")


def _login_form(request: Request, status_code: int = 200, **context: Any) -> Response:
    """The sign-in page with a fresh double-submit CSRF token (cookie and hidden field)."""
    token = secrets.token_urlsafe(32)
    context.setdefault("error", "")
    context["next"] = _safe_next(str(context.get("next", "/app")))
    response = render(request, "login.html", context, principal=None, status_code=status_code, csrf=token)
    response.set_cookie(
        a.LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        secure=_cookie_secure(request),
        samesite="strict",
        path="/app",
    )
    return response


@router.get("/login")
def login_page(request: Request, next: str = "/app") -> Response:
    return _login_form(request, next=next)


def _safe_next(target: str) -> str:
    return target if target.startswith("/app") and not target.startswith("//") else "/app"


@router.post("/login")
def login(
    request: Request,
    email: Annotated[str, Form()],
    password: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/app",
) -> Response:
    service = a.auth_service(request)
    try:
        user = service.authenticate(email, password, ip=a.client_ip(request))
    except (a.LoginRefused, a.TooManyAttempts) as exc:
        response = _login_form(request, exc.http_status, next=next, error=exc.code, email=email)
        if isinstance(exc, a.TooManyAttempts):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    raw = service.start_session(
        user["id"], ip=a.client_ip(request), user_agent=request.headers.get("user-agent")
    )
    done = _see_other(_safe_next(next))
    done.set_cookie(
        a.SESSION_COOKIE, raw, httponly=True, secure=_cookie_secure(request), samesite="lax", path="/"
    )
    done.delete_cookie(a.LOGIN_CSRF_COOKIE, path="/app")
    return done


@router.post("/logout")
def logout(request: Request) -> Response:
    a.auth_service(request).end_session(request.cookies.get(a.SESSION_COOKIE, ""))
    response = _see_other("/app/login")
    response.delete_cookie(a.SESSION_COOKIE, path="/")
    return response


@router.post("/language")
def language(
    request: Request, language: Annotated[str, Form()], back: Annotated[str, Form()] = "/app"
) -> Response:
    me = a.current_principal(request)
    a.auth_service(request).set_language(me.user_id, language)
    return _see_other(_safe_next(back))


# ---------------------------------------------------------------------------------------------
# Dashboard and marketing sections


@router.get("")
def dashboard(request: Request, me: Annotated[Principal, Depends(need("dashboard"))]) -> Response:
    from renkei.email.service import EmailService

    data = views.dashboard(_engine(request), _now(request))
    queue = EmailService(_engine(request), clock=request.app.state.clock).queue_status()
    funnel = _report(request, me, "funnel") if views.landed("renkei.segments.reports") else None
    return render(
        request,
        "dashboard.html",
        {"d": data, "queue": queue, "connector": _connector_status(request), "funnel": funnel},
        principal=me,
    )


def _report(request: Request, me: Principal, name: str) -> dict[str, Any]:
    from renkei.segments.reports import ReportService

    service = ReportService(_engine(request), clock=request.app.state.clock, tz=me.timezone)
    return service.run(name).to_dict()


def _connector_status(request: Request | None = None) -> dict[str, Any] | None:
    """The connector's health (queue, open errors, last run) when the connector is installed."""
    if not views.connector_installed():
        return None
    if request is None:
        return {"available": True}
    from renkei.web.routes.ui_connector import sync_service

    try:
        service = sync_service(request)
        runs = views.sync_runs(_engine(request), 1)
        return {
            "available": True,
            "queue": service.queue(),
            "errors": len(service.errors()),
            "lastRun": runs[0] if runs else None,
        }
    except RenkeiError as exc:  # e.g. an invalid connector.yaml: the console says what is wrong
        return {"available": True, "problem": exc.message}


@router.get("/prospects")
def prospects(
    request: Request,
    me: Annotated[Principal, Depends(need("prospects"))],
    q: str = "",
    grade: str = "",
    min_score: Annotated[str, Query()] = "",
    crm: str = "",
    rule: Annotated[str, Query(max_length=4000)] = "",
    page: int = 1,
) -> Response:
    score = int(min_score) if min_score.strip().lstrip("-").isdigit() else None
    rules = views.landed("renkei.segments.lists")
    error = ""
    try:
        found = views.prospect_search(
            _engine(request),
            q=q,
            grade=grade,
            min_score=score,
            crm=crm,
            rule=rule if rules else "",
            now=_now(request),
            page=page,
        )
    except InputError as exc:  # a rule that does not parse or names unknown fields
        error = exc.message
        found = {"rows": [], "total": 0, "page": 1, "pages": 1}
    context = {
        "found": found,
        "q": q,
        "grade": grade,
        "min_score": min_score,
        "crm": crm,
        "rule": rule,
        "rules": rules,
        "rule_error": error,
        "error": "",
    }
    template = "_prospect_rows.html" if request.headers.get("hx-request") else "prospects.html"
    return render(request, template, context, principal=me)


@router.post("/prospects")
def create_prospect(
    request: Request,
    me: Annotated[Principal, Depends(need("prospects", Level.EDIT))],
    email: Annotated[str, Form()],
    first_name: Annotated[str, Form()] = "",
    last_name: Annotated[str, Form()] = "",
    company: Annotated[str, Form()] = "",
) -> Response:
    from renkei.marketing.service import ProspectService

    values = {
        "email": email,
        "firstName": first_name or None,
        "lastName": last_name or None,
        "company": company or None,
    }
    try:
        created = ProspectService(
            _engine(request), clock=request.app.state.clock, actor=me.email, user_id=me.user_id
        ).create(values)
    except InputError as exc:
        found = views.prospect_search(_engine(request))
        context = {
            "found": found,
            "q": "",
            "grade": "",
            "min_score": "",
            "crm": "",
            "rule": "",
            "rules": views.landed("renkei.segments.lists"),
            "rule_error": "",
            "error": exc.message,
        }
        return render(request, "prospects.html", context, principal=me, status_code=400)
    return _see_other(f"/app/prospects/{created['id']}")


@router.get("/prospects/{prospect_id}")
def prospect(
    request: Request, prospect_id: int, me: Annotated[Principal, Depends(need("prospects"))]
) -> Response:
    from renkei.email.service import EmailService
    from renkei.marketing.activity_service import ActivityService
    from renkei.marketing.scoring_service import GradingService, ScoringService
    from renkei.marketing.service import ProspectService

    engine, clock = _engine(request), request.app.state.clock
    record = ProspectService(engine, clock=clock).get(prospect_id, include_deleted=True)
    context = {
        "p": record,
        "timeline": ActivityService(engine, clock=clock).timeline(prospect_id, limit=100),
        "score": ScoringService(engine, clock=clock).explain(prospect_id),
        "grade": GradingService(engine, clock=clock).explain(prospect_id),
        "extras": views.prospect_extras(engine, prospect_id),
        "templates": EmailService(engine, clock=clock).list_templates()
        if me.can("email", Level.EDIT)
        else [],
        "fields": [k for k in record if k not in ("id", "emailKey")],
        "sync": _sync_status(request, prospect_id),
        "message": request.query_params.get("message", ""),
    }
    return render(request, "prospect.html", context, principal=me)


def _sync_status(request: Request, prospect_id: int) -> dict[str, Any]:
    """Per-field sync status from the connector's explain view, when the connector is installed."""
    if not views.connector_installed():
        return {"available": False, "fields": {}, "linkedTo": None}
    from renkei.web.routes.ui_connector import sync_service

    try:
        explained = sync_service(request).explain(prospect_id)
    except RenkeiError as exc:
        return {"available": True, "fields": {}, "linkedTo": None, "problem": exc.message}
    return {
        "available": True,
        "fields": {f["field"]: f for f in explained["fields"]},
        "linkedTo": explained["linkedTo"],
    }


@router.post("/prospects/{prospect_id}")
def edit_prospect(
    request: Request,
    prospect_id: int,
    me: Annotated[Principal, Depends(need("prospects", Level.EDIT))],
    first_name: Annotated[str, Form()] = "",
    last_name: Annotated[str, Form()] = "",
    company: Annotated[str, Form()] = "",
    job_title: Annotated[str, Form()] = "",
) -> Response:
    from renkei.marketing.service import ProspectService

    values = {
        "firstName": first_name or None,
        "lastName": last_name or None,
        "company": company or None,
        "jobTitle": job_title or None,
    }
    ProspectService(
        _engine(request), clock=request.app.state.clock, actor=me.email, user_id=me.user_id
    ).update(prospect_id, values)
    return _see_other(f"/app/prospects/{prospect_id}?message=saved")


@router.post("/prospects/{prospect_id}/email")
def send_one_to_one(
    request: Request,
    prospect_id: int,
    me: Annotated[Principal, Depends(need("email", Level.EDIT))],
    template_id: Annotated[int, Form()],
) -> Response:
    from renkei.email.service import EmailService

    EmailService(_engine(request), clock=request.app.state.clock).send_one_to_one(prospect_id, template_id)
    return _see_other(f"/app/prospects/{prospect_id}?message=queued")


@router.get("/campaigns")
def campaigns(request: Request, me: Annotated[Principal, Depends(need("campaigns"))]) -> Response:
    return render(request, "campaigns.html", {"rows": views.campaigns(_engine(request))}, principal=me)


@router.get("/automation")
def automation(request: Request, me: Annotated[Principal, Depends(need("automation"))]) -> Response:
    lists = None
    if views.landed("renkei.segments.lists"):
        from renkei.segments.lists import SegmentService

        lists = SegmentService(_engine(request), clock=request.app.state.clock).lists()
    context = {
        "d": views.automation(_engine(request)),
        "lists": lists,
        "message": request.query_params.get("message", ""),
        "error": request.query_params.get("error", ""),
    }
    return render(request, "automation.html", context, principal=me)


@router.post("/automation/lists")
def create_segment_list(
    request: Request,
    me: Annotated[Principal, Depends(need("automation", Level.EDIT))],
    name: Annotated[str, Form()],
    rule: Annotated[str, Form()],
    kind: Annotated[str, Form()] = "dynamic",
) -> Response:
    """A list kept by a segmentation rule (dynamic), or filled once by it (static)."""
    from renkei.segments.lists import SegmentService

    service = SegmentService(_engine(request), clock=request.app.state.clock, tz=me.timezone)
    try:
        made = service.create(name, rule=rule, static=kind == "static", suppression=kind == "suppression")
    except RenkeiError as exc:
        return _see_other("/app/automation?error=" + quote(exc.message) + "#lists")
    return _see_other(f"/app/automation?message={quote(made['name'])}#lists")


@router.get("/email")
def email(request: Request, me: Annotated[Principal, Depends(need("email"))]) -> Response:
    from renkei.email.service import EmailService
    from renkei.marketing.service import ListService

    queue = EmailService(_engine(request), clock=request.app.state.clock).queue_status()
    context = {
        "d": views.email(_engine(request)),
        "queue": queue,
        "lists": ListService(_engine(request)).list(limit=1000),
        "message": request.query_params.get("message", ""),
        "error": request.query_params.get("error", ""),
    }
    return render(request, "email.html", context, principal=me)


@router.post("/email/send")
async def send_list_email(
    request: Request, me: Annotated[Principal, Depends(need("email", Level.EDIT))]
) -> Response:
    """Send a list email now, or schedule it (a local date and time in the user's time zone)."""
    from zoneinfo import ZoneInfo

    from renkei.email.service import EmailService

    form = await request.form()
    try:
        template_id = int(str(form.get("template_id", "")))
        lists = [int(str(v)) for v in form.getlist("list_ids")]
        suppression = [int(str(v)) for v in form.getlist("suppression_ids")]
        raw_at = str(form.get("at", "")).strip()
        at = dt.datetime.fromisoformat(raw_at).replace(tzinfo=ZoneInfo(me.timezone)) if raw_at else None
    except ValueError:
        return _see_other(
            "/app/email?error=" + quote("choose a template and lists; the time is YYYY-MM-DDTHH:MM")
        )
    service = EmailService(_engine(request), clock=request.app.state.clock)
    try:
        summary = service.send_list_email(lists, template_id, suppression_ids=suppression, at=at).to_dict()
    except RenkeiError as exc:
        return _see_other("/app/email?error=" + quote(exc.message))
    return _see_other("/app/email?message=" + quote(json.dumps(summary, default=str, ensure_ascii=False)))


@router.get("/content")
def content(request: Request, me: Annotated[Principal, Depends(need("content"))]) -> Response:
    return render(request, "content.html", {"d": views.content(_engine(request))}, principal=me)


@router.get("/reports")
def reports(request: Request, me: Annotated[Principal, Depends(need("reports"))], name: str = "") -> Response:
    context: dict[str, Any] = {
        "d": views.reports(_engine(request), _now(request)),
        "catalogue": None,
        "report": None,
    }
    if views.landed("renkei.segments.reports"):
        from renkei.segments.reports import ReportService

        service = ReportService(_engine(request), clock=request.app.state.clock, tz=me.timezone)
        context["catalogue"] = service.reports()
        if name:
            context["report"] = service.run(name).to_dict()
    return render(request, "reports.html", context, principal=me)


@router.get("/reports/{name}.csv")
def report_csv(request: Request, name: str, me: Annotated[Principal, Depends(need("reports"))]) -> Response:
    from renkei.segments.reports import ReportService

    report = ReportService(_engine(request), clock=request.app.state.clock, tz=me.timezone).run(name)
    return Response(
        report.to_csv(bom=True),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{quote(name)}.csv"'},
    )


@router.get("/calendar")
def calendar(
    request: Request, me: Annotated[Principal, Depends(need("calendar"))], year: int = 0, month: int = 0
) -> Response:
    now = _now(request)
    if not (1 <= month <= 12 and 2000 <= year <= 2100):
        year, month = now.year, now.month
    c = views.calendar(_engine(request), year, month, me.timezone)
    return render(request, "calendar.html", {"c": c}, principal=me)


# ---------------------------------------------------------------------------------------------
# Settings (users, roles, API tokens, custom fields, scoring, grading, tracking, connector, audit)


@router.get("/settings")
def settings(request: Request, me: Annotated[Principal, Depends(need("settings"))]) -> Response:
    from renkei.marketing.scoring_service import GradingService, ScoringService
    from renkei.marketing.service import ProspectService

    engine, clock = _engine(request), request.app.state.clock
    service = a.auth_service(request)
    schema = ProspectService(engine, clock=clock).schema()
    context = {
        "users": service.users(),
        "roles": service.roles(),
        "all_sections": SECTIONS,
        "tokens": service.tokens(None if me.can("settings", Level.EDIT) else me.user_id),
        "new_token": request.query_params.get("token", ""),
        "custom_fields": list(schema.custom_fields),
        "scoring": ScoringService(engine, clock=clock).model().to_dict(),
        "grading": GradingService(engine, clock=clock).profiles(),
        "snippet": views.tracking_snippet(str(request.base_url)),
        "audit": service.audit_log(50),
        "scopes": a.SCOPES,
        "connector": _connector_status(),
        "error": request.query_params.get("error", ""),
    }
    return render(request, "settings.html", context, principal=me)


def _back_to_settings(anchor: str, **params: str) -> RedirectResponse:
    query = "&".join(f"{k}={quote(v)}" for k, v in params.items())
    return _see_other(f"/app/settings{'?' + query if query else ''}#{anchor}")


@router.post("/settings/users")
def add_user(
    request: Request,
    me: Annotated[Principal, Depends(need("settings", Level.EDIT))],
    email: Annotated[str, Form()],
    role: Annotated[str, Form()],
    password: Annotated[str, Form()],
) -> Response:
    try:
        a.auth_service(request).create_user(email, role=role, password=password, actor=me)
    except RenkeiError as exc:
        return _back_to_settings("users", error=exc.message)
    return _back_to_settings("users")


@router.post("/settings/users/{user_id}")
def change_user(
    request: Request,
    user_id: int,
    me: Annotated[Principal, Depends(need("settings", Level.EDIT))],
    role: Annotated[str, Form()],
    active: Annotated[str, Form()] = "",
) -> Response:
    if user_id == me.user_id and (role != me.role.name or not active):
        return _back_to_settings("users", error="you cannot demote or deactivate yourself")
    a.auth_service(request).set_user(user_id, {"role": role, "isActive": bool(active)}, actor=me)
    return _back_to_settings("users")


@router.post("/settings/roles/{name}")
async def change_role(
    request: Request, name: str, me: Annotated[Principal, Depends(need("settings", Level.EDIT))]
) -> Response:
    form = await request.form()
    permissions = {s: str(form.get(f"perm_{s}", "none")) for s in SECTIONS}
    if name == "admin" and permissions.get("settings") != "edit":
        return _back_to_settings("roles", error="the admin role keeps edit rights on settings")
    a.auth_service(request).set_role_permissions(name, permissions, actor=me)
    return _back_to_settings("roles")


@router.post("/settings/tokens")
async def add_token(request: Request, me: Annotated[Principal, Depends(need("settings"))]) -> Response:
    form = await request.form()
    scopes = [str(s) for s in form.getlist("scope")]
    try:
        token = a.auth_service(request).create_token(me.user_id, str(form.get("name", "")), scopes, actor=me)
    except RenkeiError as exc:
        return _back_to_settings("tokens", error=exc.message)
    return _back_to_settings("tokens", token=token.token)


@router.post("/settings/tokens/{token_id}/revoke")
def revoke_token(
    request: Request, token_id: int, me: Annotated[Principal, Depends(need("settings"))]
) -> Response:
    a.auth_service(request).revoke_token(token_id, actor=me)
    return _back_to_settings("tokens")


@router.post("/settings/scoring")
async def change_scoring(
    request: Request, me: Annotated[Principal, Depends(need("settings", Level.EDIT))]
) -> Response:
    """New points per activity type and per page view; the model becomes current and everyone is
    rescored (as AE's baseline edits are retroactive)."""
    from renkei.core.scoring import ScoreModel
    from renkei.marketing.scoring_service import ScoringService

    form = await request.form()
    service = ScoringService(_engine(request), clock=request.app.state.clock, actor=me.email)
    before = service.model().to_dict()
    after = dict(before)
    try:
        after["activities"] = {k: int(str(form.get(f"act_{k}", v))) for k, v in before["activities"].items()}
        after["page_view"] = int(str(form.get("page_view", before["page_view"])))
        model = ScoreModel.from_dict(after)
    except (ValueError, RenkeiError) as exc:
        return _back_to_settings("scoring", error=str(exc))
    if model.to_dict() != before:
        result = service.set_model(model)
        a.auth_service(request).audit(
            "scoring.model", f"version {result['version']}", before, model.to_dict(), actor=me
        )
    return _back_to_settings("scoring")


@router.post("/settings/grading")
def change_grading(
    request: Request,
    me: Annotated[Principal, Depends(need("settings", Level.EDIT))],
    name: Annotated[str, Form()],
    criteria: Annotated[str, Form()],
) -> Response:
    """Replace a grading profile's criteria (JSON list of {field, operator, value, weight, label});
    the profile's prospects are regraded."""
    from renkei.marketing.scoring_service import GradingService

    service = GradingService(_engine(request), clock=request.app.state.clock)
    before = next((p["criteria"] for p in service.profiles() if p["name"] == name), None)
    try:
        parsed = json.loads(criteria)
        if not isinstance(parsed, list):
            raise ValueError("a JSON list of criteria")
        saved = service.save_profile(name, parsed)
    except (ValueError, RenkeiError) as exc:
        return _back_to_settings("grading", error=f"{name}: {exc}")
    a.auth_service(request).audit("grading.profile", name, before, saved["criteria"], actor=me)
    return _back_to_settings("grading")


@router.post("/settings/fields")
def add_custom_field(
    request: Request,
    me: Annotated[Principal, Depends(need("settings", Level.EDIT))],
    name: Annotated[str, Form()],
    type: Annotated[str, Form()],
    label: Annotated[str, Form()] = "",
) -> Response:
    from renkei.marketing.service import ProspectService

    try:
        field = ProspectService(_engine(request), clock=request.app.state.clock, actor=me.email).add_field(
            name, type, label=label or None
        )
    except RenkeiError as exc:
        return _back_to_settings("fields", error=exc.message)
    a.auth_service(request).audit(
        "prospect.field.add", field.name, None, {"type": type, "label": label}, actor=me
    )
    return _back_to_settings("fields")


# ---------------------------------------------------------------------------------------------
# Errors: sign-in redirects and HTML error pages for /app; everything else keeps its handler


def setup(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(root)
    previous: Callable[[Request, Exception], Awaitable[Response]] | None = app.exception_handlers.get(
        RenkeiError
    )  # type: ignore[assignment]

    async def renkei_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RenkeiError)
        if not request.url.path.startswith("/app"):
            if previous is not None:
                return await previous(request, exc)
            raise exc
        if isinstance(exc, a.NotSignedIn):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            if request.method != "GET":
                target = "/app"
            return _see_other(f"/app/login?next={quote(target)}")
        principal = getattr(request.state, "principal", None)
        return render(
            request,
            "_error.html" if request.headers.get("hx-request") else "error.html",
            {"status": exc.http_status, "code": exc.code, "message": exc.message},
            principal=principal,
            status_code=exc.http_status,
        )

    app.add_exception_handler(RenkeiError, renkei_error)
