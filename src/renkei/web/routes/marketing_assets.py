"""Public marketing assets: landing pages (``/lp/{slug}``), forms (``/f/{id}``), form handlers
(``POST /fh/{id}``), custom redirects (``/r/{slug}``) and tracked files (``/file/{slug}``).

Pages are Jinja2 layouts under ``templates/public``; their user-written HTML was sanitized with
nh3 when saved. Submissions go through ``renkei.marketing.forms.submit``; a per-IP rate limit
(sliding window, per process) and a honeypot field keep bots out.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from renkei.core.activities import AssetKind
from renkei.errors import NotFoundError
from renkei.marketing.forms import HONEYPOT, AssetService, FormField, Submission, SubmitResult, submit
from renkei.marketing.tracking import VISITOR_COOKIE
from renkei.web.routes.tracking import client_ip, visitor_cookie, visitor_token

router = APIRouter(tags=["marketing assets"])

templates = Environment(
    loader=PackageLoader("renkei.web", "templates"), autoescape=select_autoescape(["html"])
)

TEXT = {
    "ja": {"submit": "送信", "errors": "入力内容をご確認ください。", "thanks": "送信いただきありがとうございました。",
           "limited": "送信回数が多すぎます。しばらくしてからお試しください。"},
    "en": {"submit": "Submit", "errors": "Please correct the fields below.", "thanks": "Thank you for your submission.",
           "limited": "Too many submissions. Please try again later."},
}  # fmt: skip


class RateLimiter:
    """At most ``limit`` submissions per ``window`` seconds from one IP address."""

    def __init__(self, limit: int = 10, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._hits: dict[str, collections.deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str | None) -> bool:
        now = time.monotonic()
        with self._lock:
            if len(self._hits) > 10_000:  # forget idle addresses
                self._hits = {k: v for k, v in self._hits.items() if v and now - v[-1] <= self.window}
            hits = self._hits.setdefault(key or "-", collections.deque())
            while hits and now - hits[0] > self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return False
            hits.append(now)
            return True


def _limiter(request: Request) -> RateLimiter:
    state = request.app.state
    if not hasattr(state, "form_rate_limiter"):
        limit, window = state.settings.get("form_rate_limit", (10, 60.0))
        state.form_rate_limiter = RateLimiter(limit, window)
    limiter: RateLimiter = state.form_rate_limiter
    return limiter


def _assets(request: Request) -> AssetService:
    return AssetService(request.app.state.engine, clock=request.app.state.clock)


def _lang(request: Request, default: str) -> str:
    wanted = request.query_params.get("lang")
    return wanted if wanted in TEXT else default


def _page(layout: str, **context: Any) -> str:
    return templates.get_template(f"public/layouts/{layout}.html").render(**context)


def _form_html(
    action: str, fields: list[FormField], values: Mapping[str, Any], errors: Mapping[str, str], lang: str
) -> str:
    return templates.get_template("public/_form.html").render(
        action=action, fields=fields, values=values, errors=errors, lang=lang, t=TEXT[lang], honeypot=HONEYPOT
    )


async def _submitted(
    request: Request, source: Submission, lang: str, response: Response
) -> SubmitResult | None:
    """The submission's outcome, or None when the IP is over its rate limit."""
    ip = client_ip(request)
    if not _limiter(request).allow(ip):
        return None
    form = await request.form()
    data = {k: v for k, v in form.items() if isinstance(v, str)}
    token = visitor_token(request, response)
    state = request.app.state
    return await run_in_threadpool(
        submit, state.engine, state.clock, source, data, token=token, lang=lang, ip=ip
    )


def _where(request: Request) -> dict[str, Any]:
    return {"ip": client_ip(request), "url": str(request.url), "referrer": request.headers.get("referer")}


def _with_cookies(target: Response, source: Response) -> Response:
    for key, value in source.headers.items():
        if key.lower() == "set-cookie":
            target.headers.append("set-cookie", value)
    return target


def _limited(lang: str) -> HTMLResponse:
    return HTMLResponse(f"<p>{TEXT[lang]['limited']}</p>", status_code=429)


# ---------------------------------------------------------------------------------------------
# Landing pages and forms


def _render_landing(request: Request, page: dict[str, Any], lang: str, *, errors: Mapping[str, str] | None = None,
                    values: Mapping[str, Any] | None = None, thank_you: str | None = None) -> str:  # fmt: skip
    form_html = None
    if page["formId"] is not None and thank_you is None:
        form = _assets(request).get("form", page["formId"])
        lang = _lang(request, form["language"])
        fields, prefill = _assets(request).prefill(form, _token(request))
        form_html = _form_html(
            f"/lp/{page['slug']}?lang={lang}", fields, values or prefill, errors or {}, lang
        )
    return _page(page["layout"], title=page["title"], content=page["content"], form_html=form_html, thank_you=thank_you,
                 lang=lang, campaign_id=page["campaignId"])  # fmt: skip


def _token(request: Request) -> str | None:
    return visitor_cookie(request).read(request.cookies.get(VISITOR_COOKIE))


@router.get("/lp/{slug}", response_class=HTMLResponse, include_in_schema=False)
async def landing_page(request: Request, slug: str) -> Response:
    page = _assets(request).by_slug("landing_page", slug)
    response = HTMLResponse("")
    token = visitor_token(request, response)
    await run_in_threadpool(
        _assets(request).record_view, AssetKind.LANDING_PAGE, page, token, **_where(request)
    )
    html = _render_landing(request, page, _lang(request, "ja"))
    return _with_cookies(HTMLResponse(html), response)


@router.post("/lp/{slug}", response_class=HTMLResponse, include_in_schema=False)
async def landing_page_post(request: Request, slug: str) -> Response:
    assets = _assets(request)
    page = assets.by_slug("landing_page", slug)
    if page["formId"] is None:
        raise NotFoundError(f"landing page {slug!r} has no form")
    form = assets.get("form", page["formId"])
    lang = _lang(request, form["language"])
    response = HTMLResponse("")
    result = await _submitted(request, assets.form_submission(form, page), lang, response)
    if result is None:
        return _limited(lang)
    if not result.ok:
        html = _render_landing(request, page, lang, errors=result.errors, values=result.values)
        return _with_cookies(HTMLResponse(html, status_code=200), response)
    if form["redirectUrl"]:
        return _with_cookies(RedirectResponse(form["redirectUrl"], status_code=303), response)
    thanks = form["thankYouContent"] or f"<p>{TEXT[lang]['thanks']}</p>"
    return _with_cookies(HTMLResponse(_render_landing(request, page, lang, thank_you=thanks)), response)


@router.get("/f/{form_id}", response_class=HTMLResponse, include_in_schema=False)
async def form_page(request: Request, form_id: int) -> Response:
    form = _assets(request).get("form", form_id)
    lang = _lang(request, form["language"])
    response = HTMLResponse("")
    token = visitor_token(request, response)
    await run_in_threadpool(_assets(request).record_view, AssetKind.FORM, form, token, **_where(request))
    fields, prefill = _assets(request).prefill(form, token)
    html = _page("simple", title=form["name"], content="", form_html=_form_html(f"/f/{form_id}?lang={lang}", fields, prefill, {}, lang),
                 thank_you=None, lang=lang, campaign_id=form["campaignId"])  # fmt: skip
    return _with_cookies(HTMLResponse(html), response)


@router.post("/f/{form_id}", response_class=HTMLResponse, include_in_schema=False)
async def form_post(request: Request, form_id: int) -> Response:
    assets = _assets(request)
    form = assets.get("form", form_id)
    lang = _lang(request, form["language"])
    response = HTMLResponse("")
    result = await _submitted(request, assets.form_submission(form), lang, response)
    if result is None:
        return _limited(lang)
    if result.ok and form["redirectUrl"]:
        return _with_cookies(RedirectResponse(form["redirectUrl"], status_code=303), response)
    fields = [FormField.from_dict(f) for f in form["fields"]]
    thanks = (form["thankYouContent"] or f"<p>{TEXT[lang]['thanks']}</p>") if result.ok else None
    form_html = (
        None
        if result.ok
        else _form_html(f"/f/{form_id}?lang={lang}", fields, result.values, result.errors, lang)
    )
    html = _page("simple", title=form["name"], content="", form_html=form_html, thank_you=thanks, lang=lang,
                 campaign_id=form["campaignId"])  # fmt: skip
    return _with_cookies(HTMLResponse(html), response)


@router.post("/fh/{handler_id}", include_in_schema=False)
async def form_handler_post(request: Request, handler_id: int) -> Response:
    """A post from an external form: 303 to the success URL, or to the error URL with
    ``errors`` (JSON-free: ``field=message`` pairs); JSON when no URL is configured."""
    assets = _assets(request)
    handler = assets.get("form_handler", handler_id)
    lang = _lang(request, "ja")
    response = Response()
    result = await _submitted(request, assets.handler_submission(handler), lang, response)
    if result is None:
        return _limited(lang)
    target = handler["successUrl"] if result.ok else handler["errorUrl"]
    if target:
        if not result.ok:
            target += ("&" if "?" in target else "?") + urlencode(dict(result.errors))
        return _with_cookies(RedirectResponse(target, status_code=303), response)
    return _with_cookies(JSONResponse(result.to_dict(), status_code=200 if result.ok else 400), response)


# ---------------------------------------------------------------------------------------------
# Redirects and files


@router.get("/r/{slug}", include_in_schema=False)
async def custom_redirect(request: Request, slug: str) -> Response:
    redirect = _assets(request).by_slug("custom_redirect", slug)
    response = Response()
    token = visitor_token(request, response)
    await run_in_threadpool(
        _assets(request).record_view, AssetKind.CUSTOM_REDIRECT, redirect, token, **_where(request)
    )
    return _with_cookies(RedirectResponse(redirect["destinationUrl"], status_code=302), response)


@router.get("/file/{slug}", include_in_schema=False)
async def tracked_file(request: Request, slug: str) -> Response:
    file = _assets(request).by_slug("tracked_file", slug)
    response = Response()
    token = visitor_token(request, response)
    await run_in_threadpool(_assets(request).record_view, AssetKind.FILE, file, token, **_where(request))
    return _with_cookies(Response(file["content"], media_type=file["contentType"]), response)
