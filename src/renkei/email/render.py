"""Rendering email templates: sandboxed Jinja2, HTML + text parts, tracked links and open pixel.

Variables: ``prospect`` (v5 field names), ``account`` (prospect account), ``user`` (assigned user),
``lists`` (ids of the prospect's lists), ``unsubscribe_url``, ``preferences_url``. Fallbacks use
Jinja's ``default`` filter: ``{{ prospect.firstName | default("お客様", true) }}``. Dynamic content
by rule: ``{% if matches('all(score >= 100)') %}…{% else %}…{% endif %}`` with the segmentation
rule language (evaluated per recipient by the email service), or plain conditions on fields.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, TemplateError, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from renkei.errors import InputError

_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(https?://[^"']+)\2""", re.IGNORECASE)
_URL_IN_TEXT = re.compile(r"https?://[^\s<>\"')\]]+")

_html_env = ImmutableSandboxedEnvironment(autoescape=True, undefined=Undefined)
_text_env = ImmutableSandboxedEnvironment(autoescape=False, undefined=Undefined)
_strict_env = ImmutableSandboxedEnvironment(autoescape=True, undefined=StrictUndefined)


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    html: str
    text: str
    links: tuple[str, ...]


def check_template(subject: str, html: str, text: str) -> None:
    """Reject templates that do not compile, naming the part."""
    for part, source in (("subject", subject), ("html", html), ("text", text)):
        try:
            _strict_env.parse(source)
        except TemplateError as exc:
            raise InputError(f"email template {part}: {exc}", code="INVALID_TEMPLATE") from None


class CompiledTemplate:
    """A template's three parts compiled once, rendered for many recipients."""

    def __init__(self, subject: str, html: str, text: str) -> None:
        try:
            self.subject = _text_env.from_string(subject)
            self.html = _html_env.from_string(html)
            self.text = _text_env.from_string(text)
        except TemplateError as exc:
            raise InputError(
                f"email template could not be compiled: {exc}", code="INVALID_TEMPLATE"
            ) from None

    def render(
        self,
        context: Mapping[str, Any],
        *,
        track_link: Callable[[int], str] | None = None,
        open_pixel: str | None = None,
    ) -> Rendered:
        try:
            out_subject = self.subject.render(context).strip().replace("\n", " ")
            out_html = self.html.render(context)
            out_text = self.text.render(context)
        except TemplateError as exc:
            raise InputError(
                f"email template could not be rendered: {exc}", code="INVALID_TEMPLATE"
            ) from None
        links: list[str] = []

        def index_of(url: str) -> int:
            if url not in links:
                links.append(url)
            return links.index(url)

        skip = {context.get("unsubscribe_url"), context.get("preferences_url")}
        if track_link is not None:

            def html_sub(m: re.Match[str]) -> str:
                url = html_lib.unescape(m.group(3))  # the attribute is HTML-encoded (&amp;)
                if url in skip:
                    return m.group(0)
                return f"{m.group(1)}{m.group(2)}{track_link(index_of(url))}{m.group(2)}"

            def text_sub(m: re.Match[str]) -> str:
                url = m.group(0)
                return url if url in skip else track_link(index_of(url))

            out_html = _HREF.sub(html_sub, out_html)
            out_text = _URL_IN_TEXT.sub(text_sub, out_text)
        if open_pixel:
            pixel = f'<img src="{open_pixel}" width="1" height="1" alt="" style="display:none">'
            out_html = (
                out_html.replace("</body>", pixel + "</body>") if "</body>" in out_html else out_html + pixel
            )
        return Rendered(out_subject, out_html, out_text, tuple(links))


def render(
    subject: str,
    html: str,
    text: str,
    context: Mapping[str, Any],
    *,
    track_link: Callable[[int], str] | None = None,
    open_pixel: str | None = None,
) -> Rendered:
    """Compile and render once (tests, test sends); sends compile once with ``CompiledTemplate``."""
    return CompiledTemplate(subject, html, text).render(context, track_link=track_link, open_pixel=open_pixel)
