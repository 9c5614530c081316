"""Failures a Salesforce org produces, injected on a fixed schedule, at two levels:

    FaultInjectingTransport  an httpx transport under the Salesforce adapter's client (HTTP level:
                             the client's retries and backoff see them)
    FaultyAdapter            a wrapper around any ``CrmAdapter`` (the built-in one in process),
                             failing as an adapter does once its client's retries ran out

Faults are deterministic: each ``Fault`` names a kind and which matching requests it hits
(``every`` n-th, at most ``times``), so a test can assert exactly what happened. Failed requests
never reach the server or the CRM (a timeout here is a connect-stage timeout), and a partial
collection failure forwards only the records that succeed, so the CRM's state always matches what
the caller was told.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx

from renkei.core.sync.ports import ChangeBatch, CrmAdapter, Cursor, WriteResult
from renkei.errors import RetriableError


class FaultKind(enum.Enum):
    SERVER_ERROR = "500"
    UNAVAILABLE = "503"
    TOO_MANY_REQUESTS = "429"
    TIMEOUT = "timeout"
    LOCK = "UNABLE_TO_LOCK_ROW"
    REQUEST_LIMIT = "REQUEST_LIMIT_EXCEEDED"
    #: In an sObject Collections call, every ``stride``-th record fails with UNABLE_TO_LOCK_ROW.
    PARTIAL_COLLECTION = "partial"


@dataclass
class Fault:
    kind: FaultKind
    #: Only requests whose path contains this (e.g. ``"composite/sobjects"``, ``"/query"``).
    path_contains: str = "/services/data/"
    #: Hit every n-th matching request (1 = each one).
    every: int = 1
    #: Stop after this many hits (None = never stop).
    times: int | None = None
    stride: int = 3
    #: Hit exactly these matching requests (1-based), instead of ``every``.
    at: frozenset[int] = frozenset()
    seen: int = 0
    hits: int = 0

    def applies(self, request: httpx.Request) -> bool:
        """Count a matching request; True when this one is to fail."""
        return self.applies_to(request.url.path, writes="composite/sobjects" in request.url.path)

    def applies_to(self, path: str, *, writes: bool) -> bool:
        """The same for any call named by a path (``FaultyAdapter`` names ``adapter/<method>/<object>``)."""
        if self.path_contains not in path:
            return False
        if self.kind is FaultKind.PARTIAL_COLLECTION and not writes:
            return False
        self.seen += 1
        if self.times is not None and self.hits >= self.times:
            return False
        hit = self.seen in self.at if self.at else self.seen % self.every == 0
        self.hits += hit
        return hit


def _error(status: int, code: str, message: str, request: httpx.Request) -> httpx.Response:
    body = [{"message": message, "errorCode": code, "fields": []}]
    headers = {"Retry-After": "0"} if status == 429 else {}
    return httpx.Response(status, json=body, headers=headers, request=request)


LOCK_MESSAGE = "unable to obtain exclusive access to this record"


@dataclass
class FaultInjectingTransport(httpx.BaseTransport):
    inner: httpx.BaseTransport
    faults: list[Fault] = field(default_factory=list)
    #: (kind, method, path) of every injected fault, in order.
    injected: list[tuple[FaultKind, str, str]] = field(default_factory=list)
    enabled: bool = True

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.enabled:
            # Every fault counts every request it matches; the first that hits decides.
            hits = [fault for fault in self.faults if fault.applies(request)]
            if hits:
                self.injected.append((hits[0].kind, request.method, request.url.path))
                return self._inject(hits[0], request)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()

    def _inject(self, fault: Fault, request: httpx.Request) -> httpx.Response:
        kind = fault.kind
        if kind is FaultKind.TIMEOUT:
            raise httpx.ConnectTimeout("injected timeout", request=request)
        if kind is FaultKind.SERVER_ERROR:
            return _error(500, "UNKNOWN_EXCEPTION", "An unexpected error occurred", request)
        if kind is FaultKind.UNAVAILABLE:
            return _error(503, "SERVER_UNAVAILABLE", "Service unavailable", request)
        if kind is FaultKind.TOO_MANY_REQUESTS:
            return _error(429, "REQUEST_LIMIT_EXCEEDED", "Too many requests", request)
        if kind is FaultKind.REQUEST_LIMIT:
            return _error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.", request)
        if kind is FaultKind.LOCK:
            return _error(400, "UNABLE_TO_LOCK_ROW", LOCK_MESSAGE, request)
        return self._partial(fault.stride, request)

    def _partial(self, stride: int, request: httpx.Request) -> httpx.Response:
        """Forward all records but every ``stride``-th; those get a lock error in their slot."""
        lock = {
            "success": False,
            "errors": [{"statusCode": "UNABLE_TO_LOCK_ROW", "message": LOCK_MESSAGE, "fields": []}],
        }
        if request.method == "DELETE":
            params = dict(parse_qsl(request.url.query.decode()))
            items: list[Any] = params.get("ids", "").split(",")
        else:
            body = json.loads(request.read())
            items = body["records"]
        failed = {i for i in range(len(items)) if i % stride == stride - 1}
        keep = [item for i, item in enumerate(items) if i not in failed]
        answers: list[object] = []
        limit_info: dict[str, str] = {}
        if keep:
            if request.method == "DELETE":
                params["ids"] = ",".join(str(k) for k in keep)
                url = request.url.copy_with(query=urlencode(params).encode())
                forwarded = httpx.Request("DELETE", url, headers=request.headers)
            else:
                content = json.dumps({**body, "records": keep}).encode()
                headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
                forwarded = httpx.Request(request.method, request.url, headers=headers, content=content)
            response = self.inner.handle_request(forwarded)
            response.read()
            if response.status_code != 200:
                return response
            answers = list(response.json())
            limit_info = {k: v for k, v in response.headers.items() if k.lower() == "sforce-limit-info"}
        merged: list[object] = []
        it = iter(answers)
        for i in range(len(items)):
            merged.append({"id": None, **lock} if i in failed else next(it))
        return httpx.Response(200, json=merged, headers=limit_info, request=request)


#: What a whole call that failed looks like once the Salesforce client's retries ran out.
_CALL_FAILURES = {
    FaultKind.SERVER_ERROR: ("UNKNOWN_EXCEPTION", "An unexpected error occurred"),
    FaultKind.UNAVAILABLE: ("SERVER_UNAVAILABLE", "Service unavailable"),
    FaultKind.TIMEOUT: ("SERVER_UNAVAILABLE", "ConnectTimeout"),
    FaultKind.TOO_MANY_REQUESTS: ("REQUEST_LIMIT_EXCEEDED", "Too many requests"),
    FaultKind.REQUEST_LIMIT: ("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
    FaultKind.LOCK: ("UNABLE_TO_LOCK_ROW", LOCK_MESSAGE),
}
_LOCKED = WriteResult(None, False, (("UNABLE_TO_LOCK_ROW", LOCK_MESSAGE, ()),))


@dataclass
class FaultyAdapter:
    """A ``CrmAdapter`` whose calls fail on the faults' schedule. Each call is named
    ``adapter/<method>/<object>`` for ``Fault.path_contains`` (``"adapter/update/Lead"``,
    ``"adapter/changes"``, ``"adapter/"`` for all). A hit on a read raises ``RetriableError`` (the
    error the Salesforce adapter raises once its retries are used up); a hit on a write fails
    records without saving them: every record for LOCK and the call failures (the client reports
    a failed collection call per record), every ``stride``-th for PARTIAL_COLLECTION."""

    inner: CrmAdapter
    faults: list[Fault] = field(default_factory=list)
    injected: list[tuple[FaultKind, str, str]] = field(default_factory=list)
    enabled: bool = True

    def _hit(self, method: str, object_name: str, *, writes: bool) -> Fault | None:
        if not self.enabled:
            return None
        path = f"adapter/{method}/{object_name}"
        hits = [fault for fault in self.faults if fault.applies_to(path, writes=writes)]
        if hits:
            self.injected.append((hits[0].kind, method, path))
        return hits[0] if hits else None

    def _read(self, method: str, object_name: str) -> None:
        fault = self._hit(method, object_name, writes=False)
        if fault is not None:
            code, message = _CALL_FAILURES[fault.kind]
            raise RetriableError(f"{method} {object_name}: {message}", code=code)

    def _write(
        self, method: str, object_name: str, records: Sequence[Mapping[str, Any]]
    ) -> list[WriteResult]:
        send = getattr(self.inner, method)
        fault = self._hit(method, object_name, writes=True)
        if fault is None:
            return list(send(object_name, records))
        if fault.kind is not FaultKind.PARTIAL_COLLECTION:
            code, message = _CALL_FAILURES[fault.kind]
            return [WriteResult(None, False, ((code, message, ()),))] * len(records)
        failed = {i for i in range(len(records)) if i % fault.stride == fault.stride - 1}
        kept = iter(send(object_name, [r for i, r in enumerate(records) if i not in failed]))
        return [_LOCKED if i in failed else next(kept) for i in range(len(records))]

    def changes(self, object_name: str, cursor: Cursor | None, limit: int = 2000) -> ChangeBatch:
        self._read("changes", object_name)
        return self.inner.changes(object_name, cursor, limit)

    def read(self, object_name: str, ids: Sequence[str]) -> list[Mapping[str, Any]]:
        self._read("read", object_name)
        return self.inner.read(object_name, ids)

    def create(self, object_name: str, records: Sequence[Mapping[str, Any]]) -> list[WriteResult]:
        return self._write("create", object_name, records)

    def update(self, object_name: str, records: Sequence[Mapping[str, Any]]) -> list[WriteResult]:
        return self._write("update", object_name, records)

    def describe(self, object_name: str) -> Mapping[str, Any]:
        return self.inner.describe(object_name)

    def count(self, object_name: str, where: str | None) -> int:
        self._read("count", object_name)
        return self.inner.count(object_name, where)

    def query(self, soql: str) -> list[Mapping[str, Any]]:
        self._read("query", soql.split(" FROM ")[-1].split(" ")[0] if " FROM " in soql else "")
        return self.inner.query(soql)
