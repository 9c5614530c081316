"""Tracking endpoints: the snippet a site pastes in (``/track/renkei.js``) and the page-view pixel.

The snippet::

    <script>window.renkeiCampaignId = 3;</script>
    <script async src="https://go.example.jp/track/renkei.js"></script>

sends one pixel request per page view, after the page has loaded, unless the browser sends
Do-Not-Track or the visitor declined tracking (``renkei.optIn(false)`` sets the consent cookie).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, FastAPI, Request, Response
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from renkei.marketing.tracking import (
    CONSENT_COOKIE,
    COOKIE_MAX_AGE,
    VISITOR_COOKIE,
    Hit,
    TrackingIngest,
    VisitorCookie,
    is_bot,
    parse_campaign,
    tracking_allowed,
    tracking_secret,
)

router = APIRouter(tags=["tracking"])

PIXEL_PATH = "/track/pv.gif"
PIXEL = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)

SNIPPET = (
    """(function () {
  var s = document.currentScript;
  var base = s && s.src ? s.src.replace(/\\/track\\/renkei\\.js.*$/, "") : "";
  function consent() { var m = document.cookie.match(/(?:^|; )CONSENT=([^;]*)/); return m ? m[1] : ""; }
  function send() {
    if (navigator.doNotTrack === "1" || window.doNotTrack === "1" || consent() === "false") { return; }
    var q = "u=" + encodeURIComponent(location.href) + "&t=" + encodeURIComponent(document.title) +
      "&r=" + encodeURIComponent(document.referrer) + "&c=" + encodeURIComponent(window.renkeiCampaignId || "") +
      "&z=" + Date.now();
    var img = new Image(1, 1);
    img.onload = function () { window.renkeiTracked = (window.renkeiTracked || 0) + 1; };
    img.src = base + "PIXEL_PATH?" + q;
  }
  window.renkei = {
    pageView: send,
    optIn: function (yes) {
      document.cookie = "CONSENT=" + (yes ? "true" : "false") + "; path=/; max-age=MAX_AGE; SameSite=Lax";
    }
  };
  if (document.readyState === "complete") { send(); } else { window.addEventListener("load", send); }
})();
""".replace("CONSENT", CONSENT_COOKIE)
    .replace("PIXEL_PATH", PIXEL_PATH)
    .replace("MAX_AGE", str(COOKIE_MAX_AGE))
)


def setup(app: FastAPI) -> None:
    app.add_middleware(PixelMiddleware)
    app.state.tracking = TrackingIngest(app.state.engine, clock=app.state.clock)
    app.state.visitor_cookie = None


def visitor_cookie(request: Request) -> VisitorCookie:
    return _signer(request.app.state)


def _signer(state: Any) -> VisitorCookie:
    if state.visitor_cookie is None:
        secret = state.settings.get("secret_key") or tracking_secret(state.engine)
        state.visitor_cookie = VisitorCookie(secret)
    cookie: VisitorCookie = state.visitor_cookie
    return cookie


def visitor_token(request: Request, response: Response) -> str:
    """The visitor's token from its signed cookie, or a new one set on ``response``."""
    cookies = visitor_cookie(request)
    token = cookies.read(request.cookies.get(VISITOR_COOKIE))
    if token is None:
        token, value = cookies.new()
        response.set_cookie(VISITOR_COOKIE, value, max_age=COOKIE_MAX_AGE, httponly=True, samesite="lax")
    return token


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


@router.get("/track/renkei.js", include_in_schema=False)
def snippet() -> Response:
    return Response(
        SNIPPET, media_type="application/javascript", headers={"Cache-Control": "public, max-age=3600"}
    )


_PIXEL_HEADERS = [
    (b"content-type", b"image/gif"),
    (b"cache-control", b"no-store"),
    (b"content-length", str(len(PIXEL)).encode()),
]


class PixelMiddleware:
    """Serves ``GET /track/pv.gif`` — record one page view, then answer with a 1×1 GIF once it is
    committed — in plain ASGI ahead of the router: the pixel is the hot path, and routing plus
    request/response objects cost more than recording the hit."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PIXEL_PATH or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        params = dict(parse_qsl(scope["query_string"].decode("latin-1")))
        cookies = cookie_parser(headers.get("cookie", ""))
        url = params.get("u") or headers.get("referer") or ""
        out = list(_PIXEL_HEADERS)
        if url and tracking_allowed(headers, cookies) and not is_bot(headers.get("user-agent")):
            signer = _signer(state)
            token = signer.read(cookies.get(VISITOR_COOKIE))
            if token is None:
                token, value = signer.new()
                cookie = f"{VISITOR_COOKIE}={value}; HttpOnly; Max-Age={COOKIE_MAX_AGE}; Path=/; SameSite=lax"
                out.append((b"set-cookie", cookie.encode("latin-1")))
            client = scope.get("client")
            hit = Hit(
                token=token,
                url=url,
                at=state.clock.now(),
                title=params.get("t") or None,
                referrer=params.get("r") or None,
                campaign_id=parse_campaign(params.get("c")),
                ip=client[0] if client else None,
                do_not_sell=headers.get("sec-gpc") == "1",
            )
            await state.tracking.record(hit)
        await send({"type": "http.response.start", "status": 200, "headers": out})
        await send({"type": "http.response.body", "body": PIXEL})


@router.get("/track/stats", include_in_schema=False)
def stats(request: Request) -> dict[str, Any]:
    """Ingest counters of this process (batches, hits, failures, largest batch)."""
    s = request.app.state.tracking.stats
    return {"batches": s.batches, "hits": s.hits, "failures": s.failures, "largestBatch": s.largest_batch}
