"""The Composite resource (``POST composite``): up to 25 REST subrequests in one call, which counts
as ONE call against the org's API allocation (as Salesforce counts it).

Subrequests run in order as the calling user; ``@{referenceId.path}`` in a later subrequest's url
or body is replaced by a value from an earlier response (``@{newLead.id}``,
``@{leads.records[0].Id}``). A subrequest that refers to a failed one answers 400
PROCESSING_HALTED. At most 5 subrequests may be queries or sObject Collections (Salesforce's
limit). ``allOrNone: true`` is accepted only when every subrequest is a GET: renkei saves each
write in its own CrmService transaction and cannot roll several of them back together.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from renkei.errors import InputError, NotFoundError, RenkeiError
from renkei.sfapi import SUPPORTED_VERSIONS
from renkei.sfapi.cursors import batch_size
from renkei.sfapi.resources import SalesforceApi

MAX_SUBREQUESTS = 25
#: Queries (query, queryAll, query more) and sObject Collections per composite request.
MAX_QUERIES = 5
_REFERENCE = re.compile(r"@\{([A-Za-z0-9_]+)((?:\.[A-Za-z0-9_]+|\[\d+\])*)\}")
_PATH_STEP = re.compile(r"\.([A-Za-z0-9_]+)|\[(\d+)\]")


@dataclass(frozen=True, slots=True)
class SubResponse:
    status: int
    body: Any
    records: int  # records carried, for the request log

    def to_dict(self, reference_id: str) -> dict[str, Any]:
        return {
            "body": self.body,
            "httpHeaders": {},
            "httpStatusCode": self.status,
            "referenceId": reference_id,
        }


class _Halted(Exception):
    pass


def _resolve(text: str, results: Mapping[str, SubResponse]) -> Any:
    """Replace each ``@{ref.path}``; a whole-string reference keeps the value's JSON type."""

    def value(match: re.Match[str]) -> Any:
        ref = results.get(match.group(1))
        if ref is None or ref.status >= 300:
            raise _Halted(match.group(1))
        current = ref.body
        for name, index in _PATH_STEP.findall(match.group(2)):
            try:
                current = current[int(index)] if index else current[name]
            except (KeyError, IndexError, TypeError):
                raise InputError(
                    f"Invalid reference specified: {match.group(0)}", code="INVALID_FIELD"
                ) from None
        return current

    whole = _REFERENCE.fullmatch(text)
    if whole:
        return value(whole)
    return _REFERENCE.sub(lambda m: str(value(m)), text)


def _resolve_body(body: Any, results: Mapping[str, SubResponse]) -> Any:
    if isinstance(body, str):
        return _resolve(body, results)
    if isinstance(body, Mapping):
        return {k: _resolve_body(v, results) for k, v in body.items()}
    if isinstance(body, list):
        return [_resolve_body(v, results) for v in body]
    return body


def _is_query(parts: list[str]) -> bool:
    return parts[0] in ("query", "queryAll") or (parts[:2] == ["composite", "sobjects"])


class CompositeRunner:
    """Runs one composite request over ``SalesforceApi``; the web layer only renders its result."""

    def __init__(self, api: SalesforceApi) -> None:
        self.api = api

    def run(self, body: Any) -> tuple[dict[str, Any], int]:
        """The response body and the number of records the subrequests carried."""
        if not isinstance(body, Mapping) or not isinstance(body.get("compositeRequest"), list):
            raise InputError('The request body must be {"compositeRequest": [...]}', code="JSON_PARSER_ERROR")
        subrequests = body["compositeRequest"]
        if not subrequests or len(subrequests) > MAX_SUBREQUESTS:
            raise InputError(
                f"A composite request holds 1 to {MAX_SUBREQUESTS} subrequests", code="INVALID_BATCH_REQUEST"
            )
        parsed = [self._parse(s) for s in subrequests]
        if sum(_is_query(p) for _, _, p, _, _ in parsed) > MAX_QUERIES:
            raise InputError(
                f"At most {MAX_QUERIES} subrequests may be queries or sObject Collections",
                code="INVALID_BATCH_REQUEST",
            )
        if body.get("allOrNone") and any(m != "GET" for _, m, _, _, _ in parsed):
            raise InputError(
                "allOrNone with write subrequests is not supported by renkei", code="INVALID_BATCH_REQUEST"
            )
        results: dict[str, SubResponse] = {}
        out: list[dict[str, Any]] = []
        records = 0
        for ref, method, _parts, url, sub_body in parsed:
            try:
                resolved_url = _resolve(url, results)
                resolved_body = _resolve_body(sub_body, results)
                response = self._dispatch(method, str(resolved_url), resolved_body)
            except _Halted as halted:
                response = SubResponse(400, [{
                    "errorCode": "PROCESSING_HALTED",
                    "message": f"Invalid reference specified. No value for {halted.args[0]} found",
                }], 0)  # fmt: skip
            except RenkeiError as exc:
                response = SubResponse(
                    400 if exc.http_status == 409 else exc.http_status, exc.to_salesforce(), 0
                )
            results[ref] = response
            records += response.records
            out.append(response.to_dict(ref))
        return {"compositeResponse": out}, records

    @staticmethod
    def _parse(sub: Any) -> tuple[str, str, list[str], str, Any]:
        if not isinstance(sub, Mapping) or not all(
            isinstance(sub.get(k), str) for k in ("method", "url", "referenceId")
        ):
            raise InputError("Each subrequest needs method, url and referenceId", code="JSON_PARSER_ERROR")
        url = str(sub["url"])
        path = urlsplit(url).path
        match = re.match(r"^/services/data/v(\d+\.\d)/(.+?)/?$", path)
        if not match or match.group(1) not in SUPPORTED_VERSIONS:
            raise InputError(f"Unsupported subrequest url: {url}", code="INVALID_BATCH_REQUEST")
        return (
            str(sub["referenceId"]),
            str(sub["method"]).upper(),
            match.group(2).split("/"),
            url,
            sub.get("body"),
        )

    def _dispatch(self, method: str, url: str, body: Any) -> SubResponse:
        split = urlsplit(url)
        parts = split.path.rstrip("/").split("/")[4:]  # after /services/data/vXX.X
        params = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        api = self.api
        head = parts[0] if parts else ""
        if method == "GET" and head in ("query", "queryAll") and len(parts) <= 2:
            if len(parts) == 2:
                page = api.query_more(parts[1])
            else:
                page = api.query(
                    params.get("q"), include_deleted=head == "queryAll", batch_size=batch_size(None)
                )
            return SubResponse(200, page, len(page["records"]))
        if head == "sobjects" and len(parts) >= 2:
            return self._sobjects(method, parts[1:], params, body)
        if parts == ["composite", "sobjects"]:
            if method == "POST":
                saved = api.collection_create(body)
            elif method == "PATCH":
                saved = api.collection_update(body)
            elif method == "DELETE":
                saved = api.collection_delete(
                    params.get("ids"), params.get("allOrNone", "").lower() == "true"
                )
            else:
                raise _not_allowed(method)
            return SubResponse(200, saved, len(saved))
        raise NotFoundError("The requested resource does not exist")

    def _sobjects(self, method: str, rest: list[str], params: Mapping[str, str], body: Any) -> SubResponse:
        api = self.api
        obj = rest[0]
        if len(rest) == 1:
            if method == "POST":
                return SubResponse(201, api.create(obj, body), 1)
            if method == "GET":
                return SubResponse(200, api.sobject_info(obj), 0)
            raise _not_allowed(method)
        second = rest[1]
        if len(rest) == 2 and second == "describe" and method == "GET":
            return SubResponse(200, api.describe(obj), 0)
        if len(rest) == 2 and second in ("updated", "deleted") and method == "GET":
            window = getattr(api, second)(obj, params.get("start"), params.get("end"))
            return SubResponse(200, window, len(window.get("ids", window.get("deletedRecords", []))))
        if len(rest) == 2:
            if method == "GET":
                return SubResponse(200, api.get(obj, second, params.get("fields")), 1)
            if method == "PATCH":
                api.update(obj, second, body)
                return SubResponse(204, None, 1)
            if method == "DELETE":
                api.delete(obj, second)
                return SubResponse(204, None, 1)
            raise _not_allowed(method)
        raise NotFoundError("The requested resource does not exist")


def _not_allowed(method: str) -> RenkeiError:
    exc = InputError(f"HTTP Method '{method}' not allowed", code="METHOD_NOT_ALLOWED")
    exc.http_status = 405
    return exc
