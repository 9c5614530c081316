"""The connector console (``/app/connector``): the per-field rule table with the recommended
rules, ``config check`` results inline after every change, filters with the live count of records
that would sync and the cap, the queue with its ETA, sync errors with retry, the dry-run plan, the
per-prospect explain view and the run history with rollback.

Thin over ``renkei.connector`` (the sync service, its settings and its config check); every
change goes through ``renkei.connector.settings.set_value`` (validated, recorded in the
connector's own change log) and is also written to the web audit log. When the connector feature
is not installed, the page shows the recommendations and says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from renkei.errors import RenkeiError
from renkei.web import auth as a
from renkei.web.auth import Principal
from renkei.web.permissions import Level
from renkei.web.routes.ui_app import need
from renkei.web.ui import views
from renkei.web.ui.render import render

router = APIRouter(prefix="/app/connector", include_in_schema=False, dependencies=[Depends(a.check_csrf)])

Viewer = Annotated[Principal, Depends(need("connector"))]
Editor = Annotated[Principal, Depends(need("connector", Level.EDIT))]

RULES = ("crm_wins", "ma_wins", "most_recent", "crm_wins_unless_blank", "ma_wins_unless_blank",
         "crm_to_ma", "ma_to_crm", "none")  # fmt: skip


def _config_path(request: Request) -> Path:
    from renkei.connector import config as c

    configured = request.app.state.settings.get("connector_config")
    return Path(configured) if configured else c.config_path()


def sync_service(request: Request) -> Any:
    """The connector as connector.yaml configures it (its ``crm:``: this CRM or a Salesforce org)."""
    from renkei.connector import settings as cs

    return cs.service(request.app.state.engine, request.app.state.clock, _config_path(request))


def _check(request: Request) -> dict[str, Any]:
    from renkei.connector import config as c
    from renkei.connector.check import check_config

    try:
        config = c.load(_config_path(request))
    except RenkeiError as exc:
        return {
            "errors": [{"level": "error", "code": exc.code, "message": exc.message}],
            "warnings": [],
            "counts": {},
        }
    from renkei.connector.settings import adapter_for

    clock = request.app.state.clock
    try:
        return check_config(request.app.state.engine, config, clock.now(), adapter_for(config, clock))
    except RenkeiError as exc:  # the org cannot be reached or refuses: say so on the page
        return {"errors": [{"level": "error", "code": exc.code, "message": exc.message}], "warnings": [],
                "counts": {}}  # fmt: skip


def _console(request: Request, me: Principal, message: str = "") -> dict[str, Any]:
    from renkei.connector import config as c

    service = sync_service(request)
    config = c.load(_config_path(request))
    return {
        "connector": True,
        "config": config.model_dump(mode="json"),
        "rules": RULES,
        "recommended": {m.ma: views.recommended_rule(m.ma) for m in config.fields},
        "check": _check(request),
        "queue": service.queue(),
        "errors": service.errors(),
        "runs": views.sync_runs(request.app.state.engine),
        "message": message,
        "error": "",
        "saved": "",
        "config_path": str(_config_path(request)),
    }


@router.get("")
def console(request: Request, me: Viewer) -> Response:
    if not views.connector_installed():
        return render(request, "connector.html", {"connector": False}, principal=me)
    return render(
        request,
        "connector.html",
        _console(request, me, request.query_params.get("message", "")),
        principal=me,
    )


def _set(request: Request, me: Principal, key: str, raw: str) -> dict[str, Any]:
    from renkei.connector import settings as cs

    change = cs.set_value(
        request.app.state.engine,
        request.app.state.clock,
        key,
        raw,
        actor=me.email,
        path=_config_path(request),
    )
    a.auth_service(request).audit("connector." + key, key, change["old"], change["new"], actor=me)
    return change


def _check_partial(request: Request, me: Principal, error: str = "", saved: str = "") -> Response:
    context = {"check": _check(request), "error": error, "saved": saved}
    return render(request, "_connector_check.html", context, principal=me, status_code=400 if error else 200)


@router.post("/rule")
def set_rule(
    request: Request,
    me: Editor,
    field: Annotated[str, Form()],
    rule: Annotated[str, Form()],
    sync_blanks: Annotated[str, Form()] = "",
) -> Response:
    """Change one field's rule (and its sync-blanks flag); answers with the config check."""
    try:
        _set(request, me, f"fields.{field}.rule", rule)
        _set(request, me, f"fields.{field}.sync_blanks", "true" if sync_blanks else "false")
    except RenkeiError as exc:
        return _check_partial(request, me, error=exc.message)
    return _check_partial(request, me, saved=f"{field}: {rule}")


@router.post("/filter")
def set_filter(
    request: Request, me: Editor, object_name: Annotated[str, Form()], where: Annotated[str, Form()] = ""
) -> Response:
    """Change one object's SOQL filter; answers with the config check (live counts, cap)."""
    if object_name not in ("Lead", "Contact"):
        return _check_partial(request, me, error=f"no filter for {object_name}")
    key = f"objects.{object_name}.filter"
    try:
        change = _set(request, me, key, _yaml_string(where) if where.strip() else "")
    except RenkeiError as exc:
        return _check_partial(request, me, error=exc.message)
    broken = [
        e["message"]
        for e in _check(request)["errors"]
        if e["code"] == "INVALID_FILTER" and key in e["message"]
    ]
    if broken:  # never leave a filter the next cycle cannot run: put the old one back
        old = change["old"]
        _set(request, me, key, _yaml_string(old) if old else "")
        return _check_partial(request, me, error=broken[0])
    return _check_partial(request, me, saved=f"{object_name} filter")


@router.post("/mapping")
def save_mapping(
    request: Request,
    me: Editor,
    ma: Annotated[str, Form()],
    lead_field: Annotated[str, Form()] = "",
    contact_field: Annotated[str, Form()] = "",
    rule: Annotated[str, Form()] = "crm_wins",
    remove: Annotated[str, Form()] = "",
) -> Response:
    """Add, change or remove one field mapping in connector.yaml (validated before it is saved);
    answers with the config check, which reports CRM fields that do not exist, type mismatches,
    truncation and a custom field present on only one object."""
    import yaml

    from renkei.connector import config as c

    path = _config_path(request)
    text = path.read_text(encoding="utf-8") if path.exists() else c.DEFAULT_YAML
    data = yaml.safe_load(text) or {}
    fields = [m for m in data.get("fields", []) if m.get("ma") != ma.strip()]
    old = next((m for m in data.get("fields", []) if m.get("ma") == ma.strip()), None)
    new: dict[str, Any] | None = None
    if not remove:
        lead, contact = lead_field.strip(), contact_field.strip()
        if not (lead or contact):
            return _check_partial(request, me, error="name the CRM field on Lead, Contact or both")
        crm: str | dict[str, str] = (
            lead if lead == contact else {k: v for k, v in (("Lead", lead), ("Contact", contact)) if v}
        )
        new = {
            "ma": ma.strip(),
            "crm": crm,
            "rule": rule,
            "sync_blanks": bool(old and old.get("sync_blanks")),
        }
        fields.append(new)
    data["fields"] = fields
    new_text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    try:
        c.parse(new_text, str(path))  # refuse an invalid result before anything is saved
    except RenkeiError as exc:
        return _check_partial(request, me, error=exc.message)
    path.write_text(new_text, encoding="utf-8")
    a.auth_service(request).audit(f"connector.fields.{ma.strip()}", ma.strip(), old, new, actor=me)
    return _check_partial(request, me, saved=f"{ma.strip()}: {'removed' if remove else 'mapped'}")


@router.post("/cap")
def set_cap(request: Request, me: Editor, cap: Annotated[str, Form()] = "") -> Response:
    raw = cap.strip()
    if raw and not raw.isdigit():
        return _check_partial(request, me, error="the cap is a whole number, or empty for none")
    try:
        _set(request, me, "cap", raw or "null")
    except RenkeiError as exc:
        return _check_partial(request, me, error=exc.message)
    return _check_partial(request, me, saved="cap")


def _yaml_string(text: str) -> str:
    """A SOQL WHERE clause as one YAML scalar (set_value parses its value as YAML)."""
    import json

    return json.dumps(text.strip(), ensure_ascii=False)


@router.get("/plan")
def plan(request: Request, me: Viewer) -> Response:
    result = sync_service(request).plan()
    return render(request, "_connector_plan.html", {"plan": result}, principal=me)


@router.get("/explain")
def explain(request: Request, me: Viewer, prospect_id: int) -> Response:
    """Why each synced field of a prospect has its value (a fragment for htmx, else a page)."""
    template = (
        "_connector_explain.html" if request.headers.get("hx-request") else "connector_explain_page.html"
    )
    try:
        result = sync_service(request).explain(prospect_id)
    except RenkeiError as exc:
        return render(request, template, {"x": None, "error": exc.message}, principal=me, status_code=404)
    return render(request, template, {"x": result, "error": ""}, principal=me)


def _back(message: str) -> RedirectResponse:
    from urllib.parse import quote

    return RedirectResponse(f"/app/connector?message={quote(message)}", status_code=303)


@router.post("/run")
def run(request: Request, me: Editor) -> Response:
    result = sync_service(request).run()
    return _back(f"run {result.get('runId')}: {result.get('status', 'done')}")


@router.post("/retry")
def retry(request: Request, me: Editor, error_id: Annotated[str, Form()] = "") -> Response:
    result = sync_service(request).retry(int(error_id) if error_id.strip().isdigit() else None)
    return _back(f"retried {result['retried']}")


@router.post("/rollback/{run_id}")
def rollback(request: Request, run_id: int, me: Editor) -> Response:
    result = sync_service(request).rollback(run_id)
    a.auth_service(request).audit(
        "connector.rollback", f"run {run_id}", None, {"restored": result["restored"]}, actor=me
    )
    return _back(f"rolled back run {run_id}: {result['restored']} restored, {len(result['skipped'])} skipped")
