"""Describe-based coercion and validation of CRM writes, with Salesforce's error codes and messages.

Pure functions over ``ObjectDef``/``FieldDef``: the service gathers every error of a record
before writing anything, so a rejected write changes nothing.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from typing import Any

from renkei import ids
from renkei.crm.schema import FieldDef, FieldType, ObjectDef
from renkei.errors import FieldError

_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$")
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}
_TEXT = (
    FieldType.STRING,
    FieldType.TEXTAREA,
    FieldType.PHONE,
    FieldType.URL,
    FieldType.COMBOBOX,
    FieldType.EMAIL,
    FieldType.PICKLIST,
)


class _Bad(Exception):
    def __init__(self, error: FieldError) -> None:
        self.error = error


def _label(f: FieldDef) -> str:
    return f.to_describe()["label"]  # type: ignore[no-any-return]


def _type_error(f: FieldDef, value: Any) -> _Bad:
    return _Bad(
        FieldError(
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
            f"{_label(f)}: value not of required type: {value}",
            (f.name,),
        )
    )


def coerce(f: FieldDef, value: Any) -> Any:
    """The stored Python value for ``value`` written to field ``f``; raises ``_Bad``."""
    t = f.type
    if value is None or (isinstance(value, str) and value == "" and t is not FieldType.BOOLEAN):
        return False if t is FieldType.BOOLEAN else None
    if t is FieldType.BOOLEAN:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise _type_error(f, value)
    if t in (FieldType.INT, FieldType.DOUBLE, FieldType.CURRENCY, FieldType.PERCENT):
        return _number(f, value)
    if t is FieldType.DATE:
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str) and _DATE.match(value.strip()):
            try:  # a date, or a datetime whose date part is taken (as Salesforce's REST API does)
                return dt.date.fromisoformat(value.strip()[:10])
            except ValueError:
                raise _type_error(f, value) from None
        raise _type_error(f, value)
    if t is FieldType.DATETIME:
        if isinstance(value, dt.datetime):
            return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        if isinstance(value, str):
            text = value.strip().replace("Z", "+00:00")
            if re.match(r".*[+-]\d{4}$", text):
                text = text[:-2] + ":" + text[-2:]
            try:
                parsed = dt.datetime.fromisoformat(text)
            except ValueError:
                raise _type_error(f, value) from None
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
        raise _type_error(f, value)
    if t in (FieldType.REFERENCE, FieldType.ID):
        if not isinstance(value, str):
            raise _type_error(f, value)
        try:
            return ids.normalize(value)
        except ids.MalformedIdError:
            raise _Bad(
                FieldError("MALFORMED_ID", f"{_label(f)}: id value of incorrect type: {value}", (f.name,))
            ) from None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        if t is FieldType.MULTIPICKLIST and isinstance(value, (list, tuple)):
            value = ";".join(str(v) for v in value)
        else:
            raise _type_error(f, value)
    text = str(value).replace("\x00", "")  # NUL cannot be stored (PostgreSQL text); it is dropped
    if t is FieldType.MULTIPICKLIST:
        parts = [p.strip() for p in text.split(";") if p.strip()]
        if f.restricted_picklist:
            allowed = {v.value for v in f.picklist_values}
            for p in parts:
                if p not in allowed:
                    raise _Bad(FieldError("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                                          f"{_label(f)}: bad value for restricted picklist field: {p}", (f.name,)))  # fmt: skip
        return ";".join(dict.fromkeys(parts)) or None
    if f.length and len(text) > f.length:
        raise _Bad(FieldError("STRING_TOO_LONG",
                              f"{_label(f)}: data value too large: {text[:40]}{'…' if len(text) > 40 else ''} "
                              f"(max length={f.length})", (f.name,)))  # fmt: skip
    if t is FieldType.EMAIL and not _EMAIL.match(text.strip()):
        raise _Bad(
            FieldError("INVALID_EMAIL_ADDRESS", f"{_label(f)}: invalid email address: {text}", (f.name,))
        )
    if t is FieldType.PICKLIST and f.restricted_picklist and text not in {v.value for v in f.picklist_values}:
        raise _Bad(FieldError("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                              f"{_label(f)}: bad value for restricted picklist field: {text}", (f.name,)))  # fmt: skip
    return text.strip() if t is FieldType.EMAIL else text


def _number(f: FieldDef, value: Any) -> int | float:
    if isinstance(value, bool):
        raise _type_error(f, value)
    if isinstance(value, str):
        text = value.strip().replace(",", "")
        try:
            num: float = float(text)
        except ValueError:
            raise _type_error(f, value) from None
    elif isinstance(value, (int, float)):
        num = float(value)
    else:
        raise _type_error(f, value)
    if math.isnan(num) or math.isinf(num):
        raise _type_error(f, value)
    if f.type is FieldType.INT:
        if num != int(num):
            raise _type_error(f, value)
        digits = f.precision or 18
        if abs(int(num)) >= 10**digits:
            raise _out_of_range(f, value)
        return int(num)
    precision = f.precision or 18
    integer_digits = precision - f.scale
    if abs(num) >= 10**integer_digits:
        raise _out_of_range(f, value)
    return round(num, f.scale) if f.scale or f.precision else num


def _out_of_range(f: FieldDef, value: Any) -> _Bad:
    return _Bad(FieldError("NUMBER_OUTSIDE_VALID_RANGE",
                           f"{_label(f)}: value outside of valid range on numeric field: {value}", (f.name,)))  # fmt: skip


def clean(
    obj: ObjectDef, values: Mapping[str, Any], *, creating: bool
) -> tuple[dict[str, Any], list[FieldError]]:
    """Coerce every given field; unknown and read-only fields are errors. Returns (clean values by
    API name, errors)."""
    out: dict[str, Any] = {}
    errors: list[FieldError] = []
    read_only: list[str] = []
    for key, raw in values.items():
        if key == "attributes":
            continue
        f = obj.field(key)
        if f is None:
            errors.append(
                FieldError("INVALID_FIELD", f"No such column '{key}' on sobject of type {obj.name}", (key,))
            )
            continue
        if f.name == "Id":
            if creating:
                errors.append(
                    FieldError("INVALID_FIELD", "Record ID: cannot specify Id in an insert call", ("Id",))
                )
            continue
        if (creating and not f.createable) or (not creating and not f.updateable):
            read_only.append(f.name)
            continue
        try:
            out[f.name] = coerce(f, raw)
        except _Bad as bad:
            errors.append(bad.error)
    if read_only:
        errors.append(FieldError(
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            f"Unable to create/update fields: {', '.join(read_only)}. Please check the security settings of this "
            "field and verify that it is read/write for your profile or permission set.",
            tuple(read_only),
        ))  # fmt: skip
    return out, errors


def required_fields(obj: ObjectDef) -> tuple[str, ...]:
    """The fields a saved record must not leave blank (``missing_required`` checks them)."""
    return tuple(
        f.name for f in obj.fields if f.createable and not f.nillable and f.type is not FieldType.BOOLEAN
    )


def missing_required(
    obj: ObjectDef, record: Mapping[str, Any], required: tuple[str, ...] | None = None
) -> FieldError | None:
    """REQUIRED_FIELD_MISSING for the required fields that are blank in the final record
    (``required``: ``required_fields(obj)``, worked out once by a caller checking many records)."""
    missing = [
        name
        for name in (required_fields(obj) if required is None else required)
        if (value := record.get(name)) is None or (isinstance(value, str) and not value.strip())
    ]
    if not missing:
        return None
    return FieldError(
        "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", tuple(missing)
    )
