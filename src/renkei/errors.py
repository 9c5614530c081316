"""The one exception tree of renkei, grouped by what the caller does next.

    RenkeiError                      root; carries a Salesforce-style ``code`` where one applies
    ├── InputError                   rejected input: fix it and try again (CLI exit 1, HTTP 400)
    │   ├── ValidationError          a record failed describe-based validation (one or more FieldErrors)
    │   ├── NotFoundError            no such record / object (HTTP 404)
    │   ├── QueryError               SOQL or rule text could not be parsed or compiled
    │   └── ConfigError              a configuration file or setting is invalid
    ├── ConflictError                the record changed under us or is in the wrong state (HTTP 409)
    ├── RetriableError               try again later with backoff (lock, rate limit, unavailable)
    └── FatalError                   a bug or broken installation; do not retry

Every error has a one-line ``str()`` suitable for the CLI's stderr and a ``to_salesforce()`` form
(``[{"message", "errorCode", "fields"}]``) for the REST surface.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class FieldError:
    """One Salesforce-style error: ``statusCode``/``errorCode``, message and the fields involved."""

    code: str
    message: str
    fields: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"message": self.message, "errorCode": self.code, "fields": list(self.fields)}

    def to_collection_dict(self) -> dict[str, Any]:
        """Per-record error shape used by sObject Collections (``statusCode`` not ``errorCode``)."""
        return {"statusCode": self.code, "message": self.message, "fields": list(self.fields)}


class RenkeiError(Exception):
    """Root of every error renkei raises on purpose."""

    code: str = "UNKNOWN_EXCEPTION"
    http_status: int = 500

    def __init__(self, message: str, *, code: str | None = None, errors: Sequence[FieldError] = ()):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.errors: tuple[FieldError, ...] = tuple(errors) or (FieldError(self.code, message),)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" if self.code else self.message

    def to_salesforce(self) -> list[dict[str, Any]]:
        return [e.to_dict() for e in self.errors]


class InputError(RenkeiError):
    code = "INVALID_INPUT"
    http_status = 400


class ValidationError(InputError):
    code = "FIELD_INTEGRITY_EXCEPTION"

    def __init__(self, errors: Sequence[FieldError]):
        errs = tuple(errors)
        first = errs[0] if errs else FieldError(self.code, "validation failed")
        message = "; ".join(e.message for e in errs) if errs else first.message
        super().__init__(message, code=first.code, errors=errs or (first,))


class NotFoundError(InputError):
    code = "NOT_FOUND"
    http_status = 404


class QueryError(InputError):
    code = "MALFORMED_QUERY"


class ConfigError(InputError):
    code = "INVALID_CONFIG"


class ConflictError(RenkeiError):
    code = "CONFLICT"
    http_status = 409


class RetriableError(RenkeiError):
    code = "UNAVAILABLE"
    http_status = 503


class FatalError(RenkeiError):
    code = "FATAL"
    http_status = 500


@dataclass(frozen=True, slots=True)
class ErrorContext:
    """Where an error happened, attached by callers that know (object, record id, field)."""

    object: str | None = None
    record_id: str | None = None
    field: str | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
