"""Public email tracking endpoints: open pixel, click redirects, unsubscribe, preference page."""

from __future__ import annotations

import base64
import contextlib
import html

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from renkei.email.service import EmailService
from renkei.errors import NotFoundError

router = APIRouter(prefix="/e", tags=["email tracking"], include_in_schema=False)

_PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_NO_STORE = {"Cache-Control": "no-store, max-age=0"}


def _service(request: Request) -> EmailService:
    return EmailService(request.app.state.engine, clock=request.app.state.clock)


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html lang='ja'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<meta name='viewport' content='width=device-width'></head>"
        f"<body style='font-family:sans-serif;max-width:40em;margin:2em auto'>{body}</body></html>",
        status_code=status,
        headers=_NO_STORE,
    )


@router.get("/o/{token}.gif")
def open_pixel(token: str, request: Request) -> Response:
    # an unknown pixel still returns the image: mail clients must not show a broken one
    with contextlib.suppress(NotFoundError):
        _service(request).track_open(token)
    return Response(_PIXEL, media_type="image/gif", headers=_NO_STORE)


@router.get("/c/{token}/{index}")
def click(token: str, index: int, request: Request) -> Response:
    try:
        url = _service(request).track_click(token, index)
    except NotFoundError:
        return _page("Link not found", "<h1>リンクが見つかりません / Link not found</h1>", 404)
    return RedirectResponse(url, status_code=302, headers=_NO_STORE)


@router.get("/u/{token}")
def unsubscribe_page(token: str, request: Request) -> HTMLResponse:
    """Confirmation page (a GET never unsubscribes: link scanners follow GETs)."""
    try:
        who = _service(request).recipient(token)
    except NotFoundError:
        return _page("Not found", "<h1>リンクが無効です / Invalid link</h1>", 404)
    email = html.escape(str(who["email"]))
    return _page(
        "配信停止 / Unsubscribe",
        f"<h1>配信停止 / Unsubscribe</h1><p>{email}</p>"
        f"<form method='post' action='/e/u/{html.escape(token)}'>"
        "<input type='hidden' name='List-Unsubscribe' value='One-Click'>"
        "<button type='submit'>配信を停止する / Unsubscribe</button></form>"
        f"<p><a href='/e/p/{html.escape(token)}'>配信設定 / Email preferences</a></p>",
    )


@router.post("/u/{token}")
def unsubscribe(token: str, request: Request) -> HTMLResponse:
    """One-click unsubscribe (RFC 8058 ``List-Unsubscribe-Post``) and the confirmation form's post."""
    try:
        _service(request).unsubscribe(token)
    except NotFoundError:
        return _page("Not found", "<h1>リンクが無効です / Invalid link</h1>", 404)
    return _page("配信停止 / Unsubscribed", "<h1>配信を停止しました / You are unsubscribed</h1>")


def _preferences_form(token: str, prefs: dict[str, object]) -> str:
    items = []
    for lst in prefs["lists"]:  # type: ignore[attr-defined]
        checked = " checked" if lst["subscribed"] else ""
        items.append(
            f"<li><label><input type='checkbox' name='list' value='{int(lst['id'])}'{checked}> "
            f"{html.escape(str(lst['title']))}</label></li>"
        )
    opted = " checked" if prefs["optedOut"] else ""
    return (
        f"<h1>配信設定 / Email preferences</h1><p>{html.escape(str(prefs['email']))}</p>"
        f"<form method='post' action='/e/p/{html.escape(token)}'><ul>{''.join(items)}</ul>"
        f"<p><label><input type='checkbox' name='optedOut' value='1'{opted}> "
        "すべてのマーケティングメールを停止 / Opt out of all marketing email</label></p>"
        "<button type='submit'>保存 / Save</button></form>"
    )


@router.get("/p/{token}")
def preferences_page(token: str, request: Request) -> HTMLResponse:
    try:
        prefs = _service(request).preferences(token)
    except NotFoundError:
        return _page("Not found", "<h1>リンクが無効です / Invalid link</h1>", 404)
    return _page("配信設定 / Email preferences", _preferences_form(token, prefs))


@router.post("/p/{token}")
async def save_preferences(token: str, request: Request) -> HTMLResponse:
    form = await request.form()
    try:
        lists = [int(str(v)) for v in form.getlist("list")]
    except ValueError:
        return _page("Bad request", "<h1>不正な入力です / Invalid input</h1>", 400)
    try:
        prefs = _service(request).save_preferences(token, lists, form.get("optedOut") == "1")
    except NotFoundError:
        return _page("Not found", "<h1>リンクが無効です / Invalid link</h1>", 404)
    return _page("配信設定 / Saved", "<p>保存しました / Saved</p>" + _preferences_form(token, prefs))
