"""SMTP delivery configured by one URL: ``RENKEI_SMTP_URL``.

    smtp://user:password@host:25              plain (optionally ?starttls=1)
    smtp+starttls://user:password@host:587    STARTTLS
    smtps://user:password@host:465            implicit TLS
Query options: ``cafile=/path/ca.pem`` (trust this CA), ``timeout=30``, ``from=noreply@example.com``.
Certificates are always verified.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import smtplib
import ssl
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import parse_qs, unquote, urlsplit

from renkei.errors import ConfigError, RetriableError

DEFAULT_URL = "smtp://127.0.0.1:25"


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int
    security: str  # "none", "starttls", "tls"
    username: str | None = None
    password: str | None = None
    cafile: str | None = None
    timeout: float = 30.0
    default_from: str = "noreply@renkei.example"

    @staticmethod
    def from_url(url: str | None = None) -> SmtpSettings:
        raw = url or os.environ.get("RENKEI_SMTP_URL") or DEFAULT_URL
        parts = urlsplit(raw)
        scheme = parts.scheme.lower()
        q = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if scheme == "smtp":
            security = "starttls" if q.get("starttls") in ("1", "true", "yes") else "none"
            port = parts.port or 25
        elif scheme in ("smtp+starttls", "submission"):
            security, port = "starttls", parts.port or 587
        elif scheme == "smtps":
            security, port = "tls", parts.port or 465
        else:
            raise ConfigError(
                f"RENKEI_SMTP_URL: unsupported scheme {scheme!r} (use smtp, smtp+starttls or smtps)"
            )
        if not parts.hostname:
            raise ConfigError("RENKEI_SMTP_URL: missing host")
        return SmtpSettings(
            host=parts.hostname,
            port=port,
            security=security,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            cafile=q.get("cafile"),
            timeout=float(q.get("timeout", 30)),
            default_from=q.get("from", "noreply@renkei.example"),
        )

    def redacted(self) -> str:
        user = f"{self.username}:***@" if self.username else ""
        return f"{self.security}://{user}{self.host}:{self.port}"


class SmtpConnection:
    """One SMTP session reused for many messages (``with SmtpConnection(settings) as smtp``)."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.settings.cafile)

    def open(self) -> None:
        s = self.settings
        try:
            if s.security == "tls":
                self._smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=self._context())
            else:
                self._smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
                if s.security == "starttls":
                    self._smtp.starttls(context=self._context())
            if s.username:
                self._smtp.login(s.username, s.password or "")
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            raise RetriableError(
                f"SMTP server {s.redacted()} unavailable: {exc}", code="SMTP_UNAVAILABLE"
            ) from None

    def send(self, message: OutgoingMessage) -> None:
        if self._smtp is None:
            self.open()
        assert self._smtp is not None
        try:
            refused = self._smtp.sendmail(message.sender, [message.to], message.as_bytes())
        except smtplib.SMTPRecipientsRefused as exc:
            raise RecipientRefused(str(exc.recipients)) from None
        except smtplib.SMTPResponseException as exc:
            if 500 <= exc.smtp_code < 600:
                raise RecipientRefused(f"{exc.smtp_code} {exc.smtp_error!r}") from None
            self.close()
            raise RetriableError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", code="SMTP_TEMPORARY") from None
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            raise RetriableError(f"SMTP send failed: {exc}", code="SMTP_UNAVAILABLE") from None
        if refused:
            raise RecipientRefused(str(refused))

    def close(self) -> None:
        if self._smtp is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self._smtp.quit()
            self._smtp = None

    def __enter__(self) -> SmtpConnection:
        return self

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A multipart/alternative message (text + HTML, UTF-8, base64), serialised directly.

    Headers must already be ASCII (RFC 2047-encoded where needed). Building the bytes here is
    several times faster than the ``email`` package's generator, which matters for list sends."""

    sender: str
    to: str
    headers: list[tuple[str, str]]
    text: str
    html: str

    @property
    def message_id(self) -> str:
        return next(v for k, v in self.headers if k == "Message-ID")

    def as_bytes(self) -> bytes:
        boundary = "=_renkei_" + hashlib.sha1(self.message_id.encode()).hexdigest()[:24]
        lines = [f"{k}: {v}" for k, v in self.headers]
        lines += ["MIME-Version: 1.0", f'Content-Type: multipart/alternative; boundary="{boundary}"', ""]
        for subtype, body in (("plain", self.text), ("html", self.html)):
            lines += [f"--{boundary}", f'Content-Type: text/{subtype}; charset="utf-8"',
                      "Content-Transfer-Encoding: base64", ""]  # fmt: skip
            lines.append(
                base64.encodebytes(body.encode("utf-8")).decode("ascii").replace("\n", "\r\n").rstrip()
            )
        lines += [f"--{boundary}--", ""]
        return "\r\n".join(lines).encode("ascii")


class RecipientRefused(Exception):
    """The server refused the recipient permanently (5xx): not retried."""
