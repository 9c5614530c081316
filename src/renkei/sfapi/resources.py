"""The REST operations of the Salesforce-compatible API, over ``CrmService``, in Salesforce's shapes.

Each method takes parsed request data (path parts, query parameters, the JSON body) and returns
the response body; errors are ``renkei.errors`` exceptions that the web layer renders as
``[{"message","errorCode","fields"}]``. Nothing here knows about HTTP beyond the resource shapes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from renkei import ids
from renkei.clock import sf_datetime
from renkei.crm.service import CrmService, SaveResult, to_api
from renkei.errors import FieldError, InputError, NotFoundError, RenkeiError
from renkei.sfapi.cursors import QueryCursors

#: sObject Collections: at most this many records per request.
COLLECTION_LIMIT = 200
ROLLED_BACK = FieldError(
    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "Record rolled back because not all records were valid and the request was using AllOrNone header",
)  # noqa: E501


def normalize_id(record_id: str) -> str:
    try:
        return ids.normalize(record_id)
    except ids.MalformedIdError:
        raise NotFoundError(
            f"Provided external ID field does not exist or is not accessible: {record_id}", code="NOT_FOUND"
        ) from None


def parse_window_param(name: str, value: str | None) -> dt.datetime:
    """``start``/``end`` of ``updated``/``deleted``: ISO-8601 with an offset (a bare ``+`` decoded as a space)."""
    if not value:
        raise InputError(f"Missing required parameter: {name}", code="MISSING_ARGUMENT")
    text = value.strip().replace(" ", "+")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"{name}: unparseable date: {value}", code="INVALID_REPLICATION_DATE") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def _strip_attributes(body: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "attributes"}


def _record_body(body: Any) -> dict[str, Any]:
    if not isinstance(body, Mapping):
        raise InputError("The request body must be a JSON object", code="JSON_PARSER_ERROR")
    return _strip_attributes(body)


@dataclass(frozen=True, slots=True)
class _Slot:
    """One input record of a collection request, with its position in the request."""

    index: int
    object_name: str
    values: dict[str, Any]


class SalesforceApi:
    def __init__(self, crm: CrmService, cursors: QueryCursors, *, base_path: str) -> None:
        self.crm = crm
        self.cursors = cursors
        self.base_path = base_path

    # -- metadata ----------------------------------------------------------------------------

    def describe_global(self) -> dict[str, Any]:
        return self.crm.describe_global()

    def describe(self, object_name: str) -> dict[str, Any]:
        return self.crm.describe(object_name)

    def sobject_info(self, object_name: str) -> dict[str, Any]:
        """``GET sobjects/{Obj}/``: the object's basic information (no recent items are tracked)."""
        full = self.crm.describe(object_name)
        basic = {
            k: v for k, v in full.items() if k not in ("fields", "childRelationships", "recordTypeInfos")
        }
        return {"objectDescribe": basic, "recentItems": []}

    # -- single records ----------------------------------------------------------------------

    def create(self, object_name: str, body: Any) -> dict[str, Any]:
        values = _record_body(body)
        for key in values:
            if key.lower() == "id":
                raise InputError(
                    f"{object_name}: Id not specified in an insert call", code="INVALID_FIELD", errors=[
                        FieldError("INVALID_FIELD", "Id not specified in an insert call", ("Id",))
                    ]
                )  # fmt: skip
        new_id = self.crm.create(object_name, values)
        return {"id": new_id, "success": True, "errors": []}

    def get(self, object_name: str, record_id: str, fields: str | None) -> dict[str, Any]:
        names = [f.strip() for f in fields.split(",") if f.strip()] if fields else None
        record = self.crm.get(object_name, normalize_id(record_id), names)
        return to_api(record, self.crm.schema().object(object_name))

    def update(self, object_name: str, record_id: str, body: Any) -> None:
        values = _record_body(body)
        rid = normalize_id(record_id)
        for key in list(values):
            if key.lower() == "id":
                if not isinstance(values[key], str) or normalize_id(values[key]) != rid:
                    raise InputError("The Id in the body does not match the URL", code="INVALID_FIELD",
                                     errors=[FieldError("INVALID_FIELD", "Id in the body does not match", ("Id",))])  # fmt: skip
                del values[key]
        self.crm.update(object_name, rid, values)

    def delete(self, object_name: str, record_id: str) -> None:
        self.crm.delete(object_name, normalize_id(record_id))

    # -- queries -----------------------------------------------------------------------------

    def query(self, soql: str | None, *, include_deleted: bool, batch_size: int) -> dict[str, Any]:
        if not soql or not soql.strip():
            raise InputError("A query string (q) is required", code="MALFORMED_QUERY")
        try:
            result = self.crm.query(soql, include_deleted=include_deleted)
        except NotFoundError as exc:  # an unknown object in FROM is a bad query, not a missing resource
            raise InputError(exc.message, code=exc.code) from None
        return self.cursors.first_page(result, batch_size)

    def query_more(self, locator: str) -> dict[str, Any]:
        return self.cursors.page(locator)

    def updated(self, object_name: str, start: str | None, end: str | None) -> dict[str, Any]:
        window = parse_window_param("start", start), parse_window_param("end", end)
        return dict(_wire(self.crm.updated(object_name, *window)))

    def deleted(self, object_name: str, start: str | None, end: str | None) -> dict[str, Any]:
        window = parse_window_param("start", start), parse_window_param("end", end)
        return dict(_wire(self.crm.deleted(object_name, *window)))

    # -- sObject Collections -----------------------------------------------------------------

    def collection_create(self, body: Any) -> list[dict[str, Any]]:
        records, all_or_none = _collection_body(body)
        slots: list[_Slot] = []
        early: dict[int, list[FieldError]] = {}
        for i, rec in enumerate(records):
            obj = _record_type(rec)
            if obj is None:
                early[i] = [FieldError("INVALID_TYPE", "Must specify a type in attributes", ())]
            elif any(k.lower() == "id" for k in rec):
                early[i] = [FieldError("INVALID_FIELD", "Id not specified in an insert call", ("Id",))]
            else:
                slots.append(_Slot(i, obj, _strip_attributes(rec)))
        return self._run_collection(
            len(records), slots, early, all_or_none,
            lambda obj, rows, aon: self.crm.create_many(obj, [s.values for s in rows], all_or_none=aon),
        )  # fmt: skip

    def collection_update(self, body: Any) -> list[dict[str, Any]]:
        records, all_or_none = _collection_body(body)
        slots: list[_Slot] = []
        early: dict[int, list[FieldError]] = {}
        for i, rec in enumerate(records):
            raw_id = next((v for k, v in rec.items() if k.lower() == "id"), None)
            if not isinstance(raw_id, str) or not ids.is_valid(raw_id):
                early[i] = [FieldError("MALFORMED_ID", f"Id is missing or malformed: {raw_id}", ("Id",))]
                continue
            rid = ids.normalize(raw_id)
            obj = _record_type(rec) or ids.object_for_id(rid)
            if obj is None:
                early[i] = [FieldError("INVALID_TYPE", "Must specify a type in attributes", ())]
                continue
            values = {k: v for k, v in _strip_attributes(rec).items() if k.lower() != "id"}
            slots.append(_Slot(i, obj, {"Id": rid, **values}))
        return self._run_collection(
            len(records), slots, early, all_or_none,
            lambda obj, rows, aon: self.crm.update_many(obj, [s.values for s in rows], all_or_none=aon),
        )  # fmt: skip

    def collection_delete(self, ids_param: str | None, all_or_none: bool) -> list[dict[str, Any]]:
        raw = [i.strip() for i in (ids_param or "").split(",") if i.strip()]
        if not raw:
            raise InputError("Missing required parameter: ids", code="MISSING_ARGUMENT")
        if len(raw) > COLLECTION_LIMIT:
            raise InputError(f"Maximum number of records is {COLLECTION_LIMIT}", code="EXCEEDED_ID_LIMIT")
        slots: list[_Slot] = []
        early: dict[int, list[FieldError]] = {}
        for i, rid in enumerate(raw):
            obj = ids.object_for_id(rid) if ids.is_valid(rid) else None
            if obj is None:
                early[i] = [FieldError("MALFORMED_ID", f"malformed id {rid}", ())]
            else:
                slots.append(_Slot(i, obj, {"Id": ids.normalize(rid)}))
        return self._run_collection(
            len(raw), slots, early, all_or_none,
            lambda obj, rows, aon: self.crm.delete_many(obj, [s.values["Id"] for s in rows], all_or_none=aon),
        )  # fmt: skip

    def _run_collection(
        self,
        size: int,
        slots: Sequence[_Slot],
        early: dict[int, list[FieldError]],
        all_or_none: bool,
        run: Any,
    ) -> list[dict[str, Any]]:
        """Per-object chunks in input order; results placed back at each record's position."""
        results: list[dict[str, Any] | None] = [None] * size
        for i, errs in early.items():
            results[i] = _failure(None, errs)
        if all_or_none and early:
            return [r if r is not None else _failure(None, [ROLLED_BACK]) for r in results]
        chunks: dict[str, list[_Slot]] = {}
        for slot in slots:
            chunks.setdefault(slot.object_name, []).append(slot)
        if all_or_none and len(chunks) > 1:
            # One CrmService call is one transaction; several object types cannot be undone together.
            raise InputError(
                "allOrNone with several object types in one request is not supported by renkei",
                code="INVALID_BATCH_REQUEST",
            )
        if len(chunks) > 10:
            raise InputError(
                "Too many chunks (object types) in one request; at most 10", code="EXCEEDED_MAX_TYPES_LIMIT"
            )
        for obj, rows in chunks.items():
            try:
                saved: list[SaveResult] = run(obj, rows, all_or_none)
            except RenkeiError as exc:  # the whole chunk failed (e.g. an unknown object type)
                for slot in rows:
                    results[slot.index] = _failure(None, list(exc.errors))
                continue
            for slot, res in zip(rows, saved, strict=True):
                results[slot.index] = res.to_dict()
        return [r if r is not None else _failure(None, [ROLLED_BACK]) for r in results]


def _wire(value: Any) -> Any:
    """Datetimes in Salesforce's format, at any depth."""
    if isinstance(value, dt.datetime):
        return sf_datetime(value)
    if isinstance(value, Mapping):
        return {k: _wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_wire(v) for v in value]
    return value


def _failure(record_id: str | None, errors: Sequence[FieldError]) -> dict[str, Any]:
    return {"id": record_id, "success": False, "errors": [e.to_collection_dict() for e in errors]}


def _record_type(rec: Mapping[str, Any]) -> str | None:
    attrs = rec.get("attributes")
    if isinstance(attrs, Mapping) and isinstance(attrs.get("type"), str):
        return str(attrs["type"])
    return None


def _collection_body(body: Any) -> tuple[list[Mapping[str, Any]], bool]:
    if not isinstance(body, Mapping) or not isinstance(body.get("records"), list):
        raise InputError(
            'The request body must be {"allOrNone": …, "records": [...]}', code="JSON_PARSER_ERROR"
        )
    records = body["records"]
    if len(records) > COLLECTION_LIMIT:
        raise InputError(f"Maximum number of records is {COLLECTION_LIMIT}", code="EXCEEDED_ID_LIMIT")
    if not all(isinstance(r, Mapping) for r in records):
        raise InputError("Each record must be a JSON object", code="JSON_PARSER_ERROR")
    return records, bool(body.get("allOrNone", False))
