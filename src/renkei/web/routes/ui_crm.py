"""CRM pages of the web app: Leads, Contacts, Accounts, Opportunities — list views and record
pages with the marketing panel (score, grade, created date, last activity, engagement history of
the linked prospect), and the lead conversion and merge screens (through ``CrmService`` once the
CRM service has landed). Sales sees marketing data here without leaving the CRM."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from renkei.core.activities import type_label
from renkei.errors import NotFoundError
from renkei.web import auth as a
from renkei.web.auth import Principal
from renkei.web.permissions import Level
from renkei.web.routes.ui_app import need
from renkei.web.ui import views
from renkei.web.ui.render import render

router = APIRouter(prefix="/app/crm", include_in_schema=False, dependencies=[Depends(a.check_csrf)])

CrmViewer = Annotated[Principal, Depends(need("crm"))]
CrmEditor = Annotated[Principal, Depends(need("crm", Level.EDIT))]


def _crm_service_landed() -> bool:
    return views.landed("renkei.crm.service")


def _crm(request: Request, me: Principal) -> Any:
    """The CRM service acting as the signed-in user's linked CRM user (else the system user)."""
    from renkei.crm.service import CrmService
    from renkei.marketing.service import UserService

    engine, clock = request.app.state.engine, request.app.state.clock
    linked = UserService(engine, clock=clock).get(me.user_id).get("salesforceId")
    return CrmService(engine, clock=clock, user_id=linked or None)


def _kind(kind: str) -> str:
    if kind not in views.CRM_OBJECTS:
        raise NotFoundError(f"no CRM list {kind!r}")
    return kind


@router.get("")
def crm_home() -> RedirectResponse:
    return RedirectResponse("/app/crm/leads", status_code=303)


@router.get("/{kind}")
def crm_list(request: Request, kind: str, me: CrmViewer, q: str = "", page: int = 1) -> Response:
    found = views.crm_list(request.app.state.engine, _kind(kind), q=q, page=page)
    return render(
        request,
        "crm_list.html",
        {"kind": kind, "kinds": list(views.CRM_OBJECTS), "found": found, "q": q},
        principal=me,
    )


@router.get("/{kind}/{record_id}")
def crm_record(request: Request, kind: str, record_id: str, me: CrmViewer) -> Response:
    data = views.crm_record(request.app.state.engine, _kind(kind), record_id)
    if data is None:
        raise NotFoundError(f"no {kind[:-1]} {record_id}")
    return render(
        request,
        "crm_record.html",
        {
            "kind": kind,
            "kinds": list(views.CRM_OBJECTS),
            "d": data,
            "type_label": type_label,
            "crm_service": _crm_service_landed(),
            "message": request.query_params.get("message", ""),
        },
        principal=me,
    )


@router.post("/leads/{lead_id}/convert")
def convert_lead(
    request: Request,
    lead_id: str,
    me: CrmEditor,
    opportunity_name: Annotated[str, Form()] = "",
    no_opportunity: Annotated[str, Form()] = "",
) -> Response:
    if not _crm_service_landed():
        raise NotFoundError("lead conversion needs the CRM service, which is not available yet")
    result = _crm(request, me).convert_lead(
        lead_id, opportunity_name=opportunity_name or None, do_not_create_opportunity=bool(no_opportunity)
    )
    return RedirectResponse(f"/app/crm/contacts/{result.contact_id}?message=converted", status_code=303)


@router.post("/{kind}/{master_id}/merge")
def merge(
    request: Request, kind: str, master_id: str, me: CrmEditor, duplicate_ids: Annotated[str, Form()]
) -> Response:
    object_name = views.CRM_OBJECTS[_kind(kind)][0]
    if not _crm_service_landed() or object_name == "Opportunity":
        raise NotFoundError("merging needs the CRM service, which is not available yet")
    ids = [i.strip() for i in duplicate_ids.replace(",", " ").split() if i.strip()]
    _crm(request, me).merge(object_name, master_id, ids)
    return RedirectResponse(f"/app/crm/{kind}/{master_id}?message=merged", status_code=303)
