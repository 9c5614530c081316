"""Rendering the app's pages: one Jinja2 environment (autoescaping on for every template), the
Babel catalogues (ja, en) and the language each request is answered in.

The language is the signed-in user's choice (``ma_user.language``), else the best match of the
browser's ``Accept-Language``, else Japanese. Catalogues are ``ui/locale/<lang>/LC_MESSAGES/
messages.po``, compiled in memory at start-up; English is the msgid itself.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from babel import Locale, UnknownLocaleError
from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from fastapi import Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from renkei.web.auth import Principal
from renkei.web.permissions import SECTIONS, Level

LANGUAGES = ("ja", "en")
LOCALE_DIR = Path(__file__).with_name("locale")
TEMPLATES = Path(__file__).resolve().parents[1] / "templates"

#: Headers on every page: no framing, no inline or foreign scripts.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@functools.cache
def translations(language: str) -> NullTranslations:
    po = LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
    if not po.exists():
        return NullTranslations()
    with po.open("rb") as fh:
        catalog = read_po(fh, locale=language)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(fp=buf)


def negotiate(request: Request, principal: Principal | None) -> str:
    if principal is not None and principal.language in LANGUAGES:
        return principal.language
    header = request.headers.get("accept-language", "")
    wanted = [part.split(";")[0].strip().replace("-", "_") for part in header.split(",") if part.strip()]
    try:
        found = Locale.negotiate(wanted, list(LANGUAGES), sep="_")
    except (UnknownLocaleError, ValueError):
        found = None
    return str(found.language) if found is not None else "ja"


def _localtime(value: dt.datetime | None, language: str, tz: str) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return format_datetime(value.astimezone(ZoneInfo(tz)), "yyyy-MM-dd HH:mm", locale=language)


def _json_script(value: Any) -> Markup:
    """Data for the page's scripts, inert inside ``<script type="application/json">``."""
    text = json.dumps(value, default=str, ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)  # noqa: S704 - escaped above for a JSON script element


def _activity_label(key: str) -> str:
    """A scoring-model key (``"4"``, ``"2/File"``) as the activity's label."""
    from renkei.core.activities import type_label

    code, _, kind = key.partition("/")
    label = type_label(int(code)) if code.isdigit() else code
    return f"{label} · {kind}" if kind else label


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,  # every template, whatever its name: prospect data comes from the internet
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["json_script"] = _json_script
    return env


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    principal: Principal | None,
    status_code: int = 200,
    csrf: str | None = None,
) -> HTMLResponse:
    language = negotiate(request, principal)
    tz = principal.timezone if principal is not None else "Asia/Tokyo"
    env = environment()
    trans = translations(language)
    page = env.get_template(f"app/{template}")
    visible = [s for s in SECTIONS if principal is not None and principal.can(s)]
    html = page.render(
        {
            "request": request,
            "me": principal,
            "lang": language,
            "languages": LANGUAGES,
            "csrf": csrf if csrf is not None else (principal.csrf_token if principal else ""),
            "sections": visible,
            "can_edit": (lambda s: principal is not None and principal.can(s, Level.EDIT)),
            "can_view": (lambda s: principal is not None and principal.can(s)),
            "when": lambda v: _localtime(v, language, tz),
            "activity_label": _activity_label,
            "show": lambda v: _localtime(v, language, tz) if isinstance(v, dt.datetime) else v,
            "path": request.url.path,
            "_": trans.gettext,
            "gettext": trans.gettext,
            "ngettext": trans.ngettext,
            **context,
        }
    )
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)
