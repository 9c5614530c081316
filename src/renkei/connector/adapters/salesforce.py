"""The Salesforce adapter's client: REST over httpx, for a real org or for ``renkei serve``.

    SalesforceConfig   connection settings (part of connector.yaml); secrets come from environment
                       variables or files and are never logged or shown in ``repr``
    SalesforceClient   OAuth login, retries with backoff, the API budget, a describe cache, paged
                       queries, change detection and sObject Collections writes in batches of 200
    SalesforceAdapter  the connector's ``CrmAdapter`` (renkei.core.sync.ports) over the client
    check_connection   what ``renkei connector test`` reports

Retried with exponential backoff: HTTP 5xx, timeouts and connection errors, 429,
REQUEST_LIMIT_EXCEEDED (403) and UNABLE_TO_LOCK_ROW (whole requests, and the records of a
collection that failed with it). An expired session is renewed once per request when the config
holds credentials. Writes of more than ``bulk_threshold`` records (10,000) go through one Bulk
API 2.0 ingest job (CSV), polled with backoff, its result files mapped back to per-record results.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import random
import re
import ssl
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NoReturn
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, model_validator

from renkei.clock import Clock, SystemClock
from renkei.core.sync.ports import ChangeBatch, Cursor, WriteResult
from renkei.errors import ConfigError, FieldError, InputError, NotFoundError, RenkeiError, RetriableError

BATCH = 200
#: Composite: subrequests per call, and how many of them may be queries (Salesforce's limits).
COMPOSITE_LIMIT = 25
COMPOSITE_QUERIES = 5
RETRY_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "REQUEST_LIMIT_EXCEEDED", "SERVER_UNAVAILABLE"})
_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")


class Secret(BaseModel):
    """Where a secret lives: an environment variable or a file (first line). Never the value itself."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    env: str | None = None
    file: Path | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Secret:
        if bool(self.env) == bool(self.file):
            raise ValueError("a secret needs exactly one of env or file")
        return self

    def reveal(self) -> str:
        if self.env:
            value = os.environ.get(self.env, "")
            if not value:
                raise ConfigError(f"environment variable {self.env} is not set", code="MISSING_SECRET")
            return value
        assert self.file is not None
        try:
            return self.file.read_text(encoding="utf-8").splitlines()[0].strip()
        except (OSError, IndexError):
            raise ConfigError(f"cannot read the secret file {self.file}", code="MISSING_SECRET") from None


class SalesforceConfig(BaseModel):
    """``crm: salesforce:`` in connector.yaml."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    instance_url: str
    api_version: str = "60.0"
    #: ``token``: a ready bearer token (``renkei token create``); the others log in through OAuth.
    flow: Literal["token", "client_credentials", "password"] = "token"
    token: Secret | None = None
    client_id: str | None = None
    client_secret: Secret | None = None
    username: str | None = None
    password: Secret | None = None
    #: Token endpoint base (``https://login.salesforce.com``); defaults to the instance.
    login_url: str | None = None
    #: A CA bundle to trust (``renkei dev-cert``'s ca.pem for a local server); default: system CAs.
    ca_file: Path | None = None
    timeout_seconds: float = 60.0
    max_attempts: int = 5
    backoff_seconds: float = 0.5
    describe_ttl_seconds: float = 900.0
    #: Stop before the org's daily allocation is used up, keeping this many calls for people.
    budget_reserve: int = 0
    #: Writes of more records than this go through Bulk API 2.0 (one job) instead of collections.
    bulk_threshold: int = 10_000
    #: First wait between polls of a Bulk job (then ×1.5 a poll, at most 30 s), and the give-up time.
    bulk_poll_seconds: float = 1.0
    bulk_timeout_seconds: float = 3600.0

    @model_validator(mode="after")
    def _credentials(self) -> SalesforceConfig:
        needs = {
            "token": ("token",),
            "client_credentials": ("client_id", "client_secret"),
            "password": ("client_id", "client_secret", "username", "password"),
        }[self.flow]
        missing = [n for n in needs if getattr(self, n) is None]
        if missing:
            raise ValueError(f"flow {self.flow!r} needs {', '.join(missing)}")
        return self

    @property
    def base_path(self) -> str:
        return f"/services/data/v{self.api_version}"


@dataclass(frozen=True, slots=True)
class ApiBudget:
    """The org's daily API usage as last reported by ``Sforce-Limit-Info``."""

    used: int
    max: int

    @property
    def remaining(self) -> int:
        return max(self.max - self.used, 0)


class SalesforceApiError(RenkeiError):
    """A Salesforce error response that is not retried (or still failing after the retries)."""

    def __init__(self, status: int, errors: Sequence[FieldError], *, path: str) -> None:
        first = errors[0] if errors else FieldError("UNKNOWN_EXCEPTION", f"HTTP {status}")
        super().__init__(f"{first.message} ({path})", code=first.code, errors=errors or (first,))
        self.http_status = status


def _errors(response: httpx.Response) -> list[FieldError]:
    try:
        body = response.json()
    except ValueError:
        return [FieldError("UNKNOWN_EXCEPTION", response.text[:200] or f"HTTP {response.status_code}")]
    if isinstance(body, list):
        return [
            FieldError(
                str(e.get("errorCode") or e.get("statusCode")),
                str(e.get("message", "")),
                tuple(e.get("fields") or ()),
            )
            for e in body
            if isinstance(e, Mapping)
        ]
    if isinstance(body, Mapping) and "error" in body:
        return [FieldError(str(body["error"]).upper(), str(body.get("error_description", "")))]
    return [FieldError("UNKNOWN_EXCEPTION", f"HTTP {response.status_code}")]


def _raise_for(status: int, errors: list[FieldError], path: str) -> NoReturn:
    code = errors[0].code if errors else ""
    if status == 404 or code in ("NOT_FOUND", "ENTITY_IS_DELETED"):
        raise NotFoundError(errors[0].message if errors else path, code=code or "NOT_FOUND")
    if status in (401,) or code == "INVALID_SESSION_ID":
        raise ConfigError(
            f"Salesforce refused the credentials: {errors[0].message if errors else status}",
            code=code or "INVALID_SESSION_ID",
        )  # noqa: E501
    if status == 400 and code not in ("INVALID_FIELD", "MALFORMED_QUERY", "INVALID_TYPE", "MALFORMED_ID"):
        raise InputError(errors[0].message, code=code, errors=errors)
    raise SalesforceApiError(status, errors, path=path)


def _retriable(status: int, errors: list[FieldError]) -> bool:
    if status >= 500 or status == 429:
        return True
    return any(e.code in RETRY_CODES for e in errors)


def soql_datetime(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_sf_datetime(value: str) -> dt.datetime:
    """``2024-05-01T10:00:00.000+0000`` (or ISO with ``Z`` / ``+00:00``) → aware UTC."""
    text = value.replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", text):
        text = text[:-2] + ":" + text[-2:]
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC)


def _window(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def changes_soql(object_name: str, fields: Sequence[str], after: tuple[dt.datetime, str] | None) -> str:
    """queryAll SOQL for the records changed (deleted ones included) since ``after``'s second."""
    wanted = list(dict.fromkeys(["Id", "SystemModstamp", "IsDeleted", *fields]))
    soql = f"SELECT {', '.join(wanted)} FROM {object_name}"
    if after is not None:
        soql += f" WHERE SystemModstamp >= {soql_datetime(after[0].replace(microsecond=0))}"
    return soql + " ORDER BY SystemModstamp, Id"


def _changed_records(
    pages: Iterator[dict[str, Any]], after: tuple[dt.datetime, str] | None, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    """The records after ``after``, stopping past ``limit`` at a millisecond boundary (see
    ``SalesforceClient.changes_since``). Returns (records, done)."""
    out: list[dict[str, Any]] = []
    for page in pages:
        for rec in page["records"]:
            stamp = parse_sf_datetime(rec["SystemModstamp"])
            if after is not None and stamp <= after[0]:
                continue
            if len(out) >= limit and stamp != parse_sf_datetime(out[-1]["SystemModstamp"]):
                return out, False
            out.append(rec)
    return out, True


@dataclass
class SalesforceClient:
    """One connection to an org. ``transport`` lets tests (and the fault injector) stand in for the network."""

    config: SalesforceConfig
    clock: Clock = field(default_factory=SystemClock)
    transport: httpx.BaseTransport | None = None
    sleep: Callable[[float], None] = time.sleep
    budget: ApiBudget | None = None
    calls: int = 0
    _token: str | None = None
    _describes: dict[str, tuple[dt.datetime, dict[str, Any]]] = field(default_factory=dict)
    _http: httpx.Client | None = None

    # -- plumbing ----------------------------------------------------------------------------

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            verify: Any = (
                ssl.create_default_context(cafile=str(self.config.ca_file)) if self.config.ca_file else True
            )
            self._http = httpx.Client(
                base_url=self.config.instance_url.rstrip("/"),
                timeout=self.config.timeout_seconds,
                transport=self.transport,
                verify=verify,
                trust_env=False,
            )
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def __repr__(self) -> str:  # never show the token
        return f"SalesforceClient(instance_url={self.config.instance_url!r}, flow={self.config.flow!r})"

    def login(self) -> str:
        """A bearer token: the configured one, or a fresh one from the OAuth token endpoint."""
        cfg = self.config
        if cfg.flow == "token":
            assert cfg.token is not None
            self._token = cfg.token.reveal()
            return self._token
        assert cfg.client_secret is not None
        form = {
            "grant_type": cfg.flow,
            "client_id": cfg.client_id or "",
            "client_secret": cfg.client_secret.reveal(),
        }
        if cfg.flow == "password":
            assert cfg.password is not None
            form |= {"username": cfg.username or "", "password": cfg.password.reveal()}
        url = (cfg.login_url or cfg.instance_url).rstrip("/") + "/services/oauth2/token"
        try:
            response = self.http.post(url, data=form)
        except httpx.TransportError as exc:
            raise RetriableError(
                f"cannot reach {url}: {exc.__class__.__name__}", code="SERVER_UNAVAILABLE"
            ) from None
        if response.status_code != 200:
            errs = _errors(response)
            raise ConfigError(
                f"OAuth login failed: {errs[0].code.lower()}: {errs[0].message}", code="INVALID_LOGIN"
            )
        self._token = str(response.json()["access_token"])
        return self._token

    def request(
        self, method: str, path: str, *, params: Mapping[str, str] | None = None, json: Any = None,
        headers: Mapping[str, str] | None = None, content: bytes | None = None, text: bool = False,
    ) -> Any:  # fmt: skip
        """One API call with retries; returns the decoded JSON (None for 204), or the body as text."""
        if self.config.budget_reserve and self.budget and self.budget.remaining <= self.config.budget_reserve:
            raise RetriableError(
                f"daily API budget reserve reached ({self.budget.used}/{self.budget.max})",
                code="REQUEST_LIMIT_EXCEEDED",
            )
        url = path if path.startswith("/services/") else f"{self.config.base_path}/{path.lstrip('/')}"
        renewed = False
        attempt = 0
        while True:
            attempt += 1
            token = self._token or self.login()
            send_headers = {
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                **(headers or {}),
            }
            self.calls += 1
            try:
                response = self.http.request(
                    method, url, params=params, json=json, content=content, headers=send_headers
                )
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                if attempt >= self.config.max_attempts:
                    raise RetriableError(
                        f"{method} {url}: {exc.__class__.__name__}", code="SERVER_UNAVAILABLE"
                    ) from None
                self._backoff(attempt)
                continue
            self._track(response)
            if response.status_code < 300:
                if text:
                    return response.text
                return response.json() if response.content else None
            errors = _errors(response)
            if response.status_code == 401 and not renewed and self.config.flow != "token":
                renewed, self._token = True, None
                continue
            if _retriable(response.status_code, errors):
                if attempt >= self.config.max_attempts:
                    raise RetriableError(
                        f"{method} {url}: {errors[0].code}: {errors[0].message}", code=errors[0].code
                    )
                self._backoff(attempt, response.headers.get("Retry-After"))
                continue
            _raise_for(response.status_code, errors, url)

    def _backoff(self, attempt: int, retry_after: str | None = None) -> None:
        if retry_after and retry_after.isdigit():
            self.sleep(min(float(retry_after), 60.0))
            return
        base = self.config.backoff_seconds * (2 ** (attempt - 1))
        self.sleep(min(base, 30.0) * (0.5 + random.random() / 2))

    def _track(self, response: httpx.Response) -> None:
        match = _USAGE.search(response.headers.get("Sforce-Limit-Info", ""))
        if match:
            self.budget = ApiBudget(int(match.group(1)), int(match.group(2)))

    # -- metadata ----------------------------------------------------------------------------

    def versions(self) -> list[str]:
        return [str(v["version"]) for v in self.request("GET", "/services/data/")]

    def limits(self) -> dict[str, Any]:
        return dict(self.request("GET", "limits"))

    def describe(self, object_name: str, *, refresh: bool = False) -> dict[str, Any]:
        """The object's describe, cached for ``describe_ttl_seconds`` (``refresh=True`` refetches)."""
        now = self.clock.now()
        cached = self._describes.get(object_name)
        if cached and not refresh and (now - cached[0]).total_seconds() < self.config.describe_ttl_seconds:
            return cached[1]
        describe = dict(self.request("GET", f"sobjects/{object_name}/describe"))
        self._describes[object_name] = (now, describe)
        return describe

    def describe_many(self, object_names: Sequence[str]) -> None:
        """Fill the describe cache for the objects not cached yet, in one Composite call."""
        now = self.clock.now()
        stale = [
            o for o in dict.fromkeys(object_names)
            if o not in self._describes
            or (now - self._describes[o][0]).total_seconds() >= self.config.describe_ttl_seconds
        ]  # fmt: skip
        for start in range(0, len(stale), COMPOSITE_LIMIT):
            chunk = stale[start : start + COMPOSITE_LIMIT]
            bodies = self.composite([("GET", f"sobjects/{o}/describe", None) for o in chunk])
            for obj, describe in zip(chunk, bodies, strict=True):
                self._describes[obj] = (now, dict(describe))

    def field_names(self, object_name: str) -> set[str]:
        return {f["name"] for f in self.describe(object_name)["fields"]}

    # -- reads -------------------------------------------------------------------------------

    def query_pages(
        self, soql: str, *, include_deleted: bool = False, batch_size: int | None = None
    ) -> Iterator[dict[str, Any]]:  # noqa: E501
        headers = {"Sforce-Query-Options": f"batchSize={batch_size}"} if batch_size else None
        page = self.request(
            "GET", "queryAll" if include_deleted else "query", params={"q": soql}, headers=headers
        )
        while True:
            yield page
            if page.get("done", True) or not page.get("nextRecordsUrl"):
                return
            page = self.request("GET", page["nextRecordsUrl"])

    def query(self, soql: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        return [
            r for page in self.query_pages(soql, include_deleted=include_deleted) for r in page["records"]
        ]

    def get(self, object_name: str, record_id: str, fields: Sequence[str] | None = None) -> dict[str, Any]:
        params = {"fields": ",".join(fields)} if fields else None
        return dict(self.request("GET", f"sobjects/{object_name}/{quote(record_id)}", params=params))

    def changes_since(
        self,
        object_name: str,
        fields: Sequence[str],
        after: tuple[dt.datetime, str] | None,
        *,
        limit: int = 2000,
    ) -> tuple[list[dict[str, Any]], bool]:
        """Records (deleted ones included) changed after ``after`` = (SystemModstamp, Id), oldest first.

        The API gives SystemModstamp to the millisecond, and many records can share one (a batch
        of 200 is written in a few milliseconds). A batch therefore never ends inside a
        millisecond: past ``limit`` it runs on to the end of the last record's millisecond, and
        the next call skips everything up to and including the cursor's millisecond. SOQL
        datetimes have whole seconds, so the query starts at the cursor's second and the rest
        is filtered here. Returns (records, done)."""
        soql = changes_soql(object_name, fields, after)
        return _changed_records(self.query_pages(soql, include_deleted=True), after, limit)

    def changes_many(
        self, wanted: Mapping[str, tuple[Sequence[str], tuple[dt.datetime, str] | None]], *, limit: int = 2000
    ) -> dict[str, tuple[list[dict[str, Any]], bool]]:
        """``changes_since`` for several objects, their first pages read in one Composite call
        (five queries a call, Salesforce's limit); later pages follow ``nextRecordsUrl``."""
        out: dict[str, tuple[list[dict[str, Any]], bool]] = {}
        names = list(wanted)
        for start in range(0, len(names), COMPOSITE_QUERIES):
            chunk = names[start : start + COMPOSITE_QUERIES]
            first_pages = self.composite(
                [("GET", f"queryAll?q={quote(changes_soql(obj, *wanted[obj]))}", None) for obj in chunk]
            )
            for obj, page in zip(chunk, first_pages, strict=True):
                out[obj] = _changed_records(self.pages_from(page), wanted[obj][1], limit)
        return out

    def pages_from(self, page: dict[str, Any]) -> Iterator[dict[str, Any]]:
        while True:
            yield page
            if page.get("done", True) or not page.get("nextRecordsUrl"):
                return
            page = self.request("GET", page["nextRecordsUrl"])

    def composite(self, subrequests: Sequence[tuple[str, str, Any]]) -> list[Any]:
        """Up to 25 subrequests (method, path under the version root, body) in ONE API call; the
        bodies in order. A failed subrequest raises as the same request alone would."""
        if len(subrequests) > COMPOSITE_LIMIT:
            raise ValueError(f"at most {COMPOSITE_LIMIT} subrequests per composite call")
        body = {
            "allOrNone": False,
            "compositeRequest": [
                {"method": m, "url": f"{self.config.base_path}/{path}", "referenceId": f"r{i}"}
                | ({"body": b} if b is not None else {})
                for i, (m, path, b) in enumerate(subrequests)
            ],
        }
        answer = self.request("POST", "composite", json=body)
        bodies: list[Any] = []
        for (method, path, _), sub in zip(subrequests, answer["compositeResponse"], strict=True):
            status = int(sub["httpStatusCode"])
            if status >= 300:
                errors = [
                    FieldError(str(e.get("errorCode") or e.get("statusCode")), str(e.get("message", "")), tuple(e.get("fields") or ()))
                    for e in (sub.get("body") or [])
                    if isinstance(e, Mapping)
                ]  # fmt: skip
                if _retriable(status, errors):
                    code = errors[0].code if errors else "SERVER_UNAVAILABLE"
                    raise RetriableError(f"{method} {path}: {code}", code=code)
                _raise_for(status, errors, path)
            bodies.append(sub.get("body"))
        return bodies

    def updated(self, object_name: str, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
        return dict(
            self.request(
                "GET",
                f"sobjects/{object_name}/updated/",
                params={"start": _window(start), "end": _window(end)},
            )
        )  # noqa: E501

    def deleted(self, object_name: str, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
        return dict(
            self.request(
                "GET",
                f"sobjects/{object_name}/deleted/",
                params={"start": _window(start), "end": _window(end)},
            )
        )  # noqa: E501

    # -- writes (sObject Collections, 200 a call) ----------------------------------------------

    def create_many(self, object_name: str, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        records = [{"attributes": {"type": object_name}, **r} for r in rows]
        return self._collections("POST", records)

    def update_many(self, object_name: str, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Each row carries its ``Id``."""
        records = [{"attributes": {"type": object_name}, **r} for r in rows]
        return self._collections("PATCH", records)

    def delete_many(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        for start in range(0, len(ids), BATCH):
            chunk = list(ids[start : start + BATCH])
            results += self._with_lock_retries(
                chunk, lambda part: self.request("DELETE", "composite/sobjects", params={"ids": ",".join(part), "allOrNone": "false"})
            )  # fmt: skip
        return results

    def _collections(self, method: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        for start in range(0, len(records), BATCH):
            chunk = records[start : start + BATCH]
            results += self._with_lock_retries(
                chunk, lambda part: self.request(method, "composite/sobjects", json={"allOrNone": False, "records": part})
            )  # fmt: skip
        return results

    # -- Bulk API 2.0 (large writes) ----------------------------------------------------------

    def bulk_ingest(
        self, object_name: str, operation: str, rows: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """Write ``rows`` in one Bulk API 2.0 ingest job (CSV), wait for it with backoff, and return
        collection-shaped results (``{"id","success","errors"}``) in input order. Rows an aborted
        job never reached come back as SERVER_UNAVAILABLE (retriable)."""
        columns = list(dict.fromkeys(k for r in rows for k in r))
        cells = [[_csv_cell(r.get(c), c in r) for c in columns] for r in rows]
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows([columns, *cells])
        job = self.request("POST", "jobs/ingest", json={
            "object": object_name, "operation": operation, "contentType": "CSV", "lineEnding": "LF",
            "columnDelimiter": "COMMA",
        })  # fmt: skip
        path = f"jobs/ingest/{job['id']}"
        self.request(
            "PUT", f"{path}/batches", content=out.getvalue().encode(), headers={"Content-Type": "text/csv"}
        )
        self.request("PATCH", path, json={"state": "UploadComplete"})
        info = self._wait_for_job(path)
        # rows are matched back by their cells: the result files echo each row as uploaded
        slots: dict[tuple[str, ...], list[int]] = {}
        for i, row in enumerate(cells):
            slots.setdefault(tuple(row), []).append(i)
        results: list[dict[str, Any] | None] = [None] * len(rows)

        def place(row: list[str], result: dict[str, Any]) -> None:
            free = slots.get(tuple(row[: len(columns)]))
            if free:
                results[free.pop(0)] = result

        for rec in _csv_records(self.request("GET", f"{path}/successfulResults/", text=True)):
            place(rec[2:], {"id": rec[0] or None, "success": True, "errors": []})
        for rec in _csv_records(self.request("GET", f"{path}/failedResults/", text=True)):
            place(rec[2:], {"id": rec[0] or None, "success": False, "errors": [_bulk_error(rec[1])]})
        missing: dict[str, Any] = {
            "statusCode": "SERVER_UNAVAILABLE" if info["state"] != "Failed" else "BULK_JOB_FAILED",
            "message": f"not processed: Bulk job {job['id']} ended {info['state']}"
            + (f" ({info['errorMessage']})" if info.get("errorMessage") else ""),
            "fields": [],
        }
        return [r if r is not None else {"id": None, "success": False, "errors": [missing]} for r in results]

    def _wait_for_job(self, path: str) -> dict[str, Any]:
        """Poll with backoff until the job is finished; abort it and raise when it takes too long."""
        waited, delay = 0.0, self.config.bulk_poll_seconds
        while True:
            info = dict(self.request("GET", path))
            if info["state"] in ("JobComplete", "Failed", "Aborted"):
                return info
            if waited >= self.config.bulk_timeout_seconds:
                self.request("PATCH", path, json={"state": "Aborted"})
                raise RetriableError(f"Bulk job {path} still {info['state']} after {waited:.0f} s; aborted",
                                     code="BULK_JOB_TIMEOUT")  # fmt: skip
            self.sleep(delay)
            waited += delay
            delay = min(delay * 1.5, 30.0)

    def _with_lock_retries(self, items: list[Any], send: Callable[[list[Any]], Any]) -> list[dict[str, Any]]:
        """Send ``items``; resend only the records that failed with a lock error, with backoff."""
        results: list[dict[str, Any] | None] = [None] * len(items)
        pending = list(range(len(items)))
        for attempt in range(1, self.config.max_attempts + 1):
            answer = send([items[i] for i in pending])
            retry = []
            for i, res in zip(pending, answer, strict=True):
                results[i] = res
                codes = {e.get("statusCode") for e in res.get("errors", [])}
                if not res.get("success") and codes & RETRY_CODES:
                    retry.append(i)
            if not retry or attempt == self.config.max_attempts:
                break
            pending = retry
            self._backoff(attempt)
        return [r for r in results if r is not None]


def _csv_cell(value: Any, present: bool) -> str:
    """A Bulk CSV cell: an absent field is empty (left unchanged), an explicit None is ``#N/A``."""
    if not present:
        return ""
    if value is None:
        return "#N/A"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _csv_records(text: str) -> list[list[str]]:
    return [r for r in csv.reader(io.StringIO(text, newline=""))][1:]


def _bulk_error(text: str) -> dict[str, Any]:
    """``sf__Error`` (``STATUS_CODE:message:fields``; the first of several) as a collection error."""
    first = text.split(";")[0]
    code, _, rest = first.partition(":")
    message, _, fields = rest.rpartition(":") if rest.count(":") else (rest, "", "")
    return {"statusCode": code, "message": message, "fields": [f for f in fields.split(",") if f]}


@dataclass(frozen=True, slots=True)
class Check:
    """One line of ``renkei connector test``."""

    name: str
    ok: bool
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "message": self.message}


def check_connection(client: SalesforceClient, fields_by_object: Mapping[str, Sequence[str]]) -> list[Check]:
    """Credentials, API version, object and field access, and the remaining daily budget."""
    checks: list[Check] = []
    cfg = client.config
    try:
        limits = client.limits()
    except RenkeiError as exc:
        return [Check("credentials", False, f"cannot call {cfg.instance_url}: {exc}")]
    checks.append(Check("credentials", True, f"logged in to {cfg.instance_url} ({cfg.flow})"))
    versions = client.versions()
    checks.append(
        Check("api_version", True, f"API v{cfg.api_version} is served")
        if cfg.api_version in versions
        else Check(
            "api_version",
            False,
            f"API v{cfg.api_version} is not served; the org offers {', '.join(versions[-3:])}",
        )
    )
    for obj, fields in fields_by_object.items():
        try:
            describe = client.describe(obj, refresh=True)
        except RenkeiError as exc:
            checks.append(Check(f"object:{obj}", False, f"{obj} is not accessible: {exc}"))
            continue
        known = {f["name"].lower() for f in describe["fields"]}
        missing = [f for f in fields if f.lower() not in known]
        flags = [k for k in ("queryable", "createable", "updateable") if not describe.get(k, False)]
        if missing or flags:
            parts = ([f"missing fields {', '.join(missing)}"] if missing else []) + (
                [f"not {', '.join(flags)}"] if flags else []
            )  # noqa: E501
            checks.append(Check(f"object:{obj}", False, f"{obj}: {'; '.join(parts)}"))
        else:
            checks.append(Check(f"object:{obj}", True, f"{obj}: {len(fields)} mapped fields accessible"))
    daily = limits.get("DailyApiRequests", {})
    remaining, maximum = int(daily.get("Remaining", 0)), int(daily.get("Max", 0))
    enough = remaining > cfg.budget_reserve
    checks.append(
        Check(
            "api_budget",
            enough,
            f"{remaining} of {maximum} daily API requests remain (reserve {cfg.budget_reserve})",
        )
    )  # noqa: E501
    return checks


# ---------------------------------------------------------------------------------------------
# The connector's CRM adapter (renkei.core.sync.ports.CrmAdapter) over the client

#: Ids per ``WHERE Id IN (…)`` read (keeps the query URL well under limits).
READ_CHUNK = 200


def _python_value(kind: str, value: Any) -> Any:
    """A JSON value from the API as the Python value the built-in CRM's rows carry."""
    if value is None:
        return None
    if kind == "datetime":
        return parse_sf_datetime(value)
    if kind == "date":
        return dt.date.fromisoformat(value)
    return value


def _write_result(raw: Mapping[str, Any]) -> WriteResult:
    errors = tuple(
        (
            str(e.get("statusCode") or e.get("errorCode")),
            str(e.get("message", "")),
            tuple(e.get("fields") or ()),
        )
        for e in raw.get("errors", [])
    )
    return WriteResult(raw.get("id"), bool(raw.get("success")), errors)


class SalesforceAdapter:
    """The sync engine's view of a Salesforce org (or ``renkei serve``), one client underneath.

    Reads return records shaped like the built-in adapter's (API names → Python values, no
    ``attributes``), so the engine cannot tell the two apart."""

    def __init__(self, client: SalesforceClient) -> None:
        self.client = client

    def _fields(self, object_name: str) -> dict[str, str]:
        return {f["name"]: f["type"] for f in self.client.describe(object_name)["fields"]}

    def _rows(self, object_name: str, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        kinds = self._fields(object_name)
        return [
            {k: _python_value(kinds.get(k, ""), v) for k, v in r.items() if k != "attributes"}
            for r in records
        ]

    def changes(self, object_name: str, cursor: Cursor | None, limit: int = 2000) -> ChangeBatch:
        after = (cursor.modstamp, cursor.id) if cursor else None
        raw, done = self.client.changes_since(
            object_name, list(self._fields(object_name)), after, limit=limit
        )
        rows = self._rows(object_name, raw)
        out = Cursor(rows[-1]["SystemModstamp"], rows[-1]["Id"]) if rows else cursor
        return ChangeBatch(tuple(rows), out, done)

    def changes_many(self, cursors: Mapping[str, Cursor | None], limit: int = 2000) -> dict[str, ChangeBatch]:
        """One batch of changes per object, the objects' first pages read in one Composite call."""
        self.client.describe_many(list(cursors))
        wanted = {
            obj: (list(self._fields(obj)), (c.modstamp, c.id) if c else None) for obj, c in cursors.items()
        }
        out: dict[str, ChangeBatch] = {}
        for obj, (raw, done) in self.client.changes_many(wanted, limit=limit).items():
            rows = self._rows(obj, raw)
            cursor = Cursor(rows[-1]["SystemModstamp"], rows[-1]["Id"]) if rows else cursors[obj]
            out[obj] = ChangeBatch(tuple(rows), cursor, done)
        return out

    def read(self, object_name: str, ids: Sequence[str]) -> list[Mapping[str, Any]]:
        fields = ", ".join(self._fields(object_name))
        out: list[Mapping[str, Any]] = []
        for start in range(0, len(ids), READ_CHUNK):
            quoted = ", ".join(
                f"'{i}'" for i in ids[start : start + READ_CHUNK] if re.fullmatch(r"[0-9A-Za-z]{15,18}", i)
            )
            if quoted:
                soql = f"SELECT {fields} FROM {object_name} WHERE Id IN ({quoted})"
                out += self._rows(object_name, self.client.query(soql, include_deleted=True))
        return out

    def read_many(self, wanted: Mapping[str, Sequence[str]]) -> dict[str, list[Mapping[str, Any]]]:
        """``read`` for several objects: their queries (200 ids each) five to a Composite call."""
        queries: list[tuple[str, str]] = []
        for obj, record_ids in wanted.items():
            fields = ", ".join(self._fields(obj))
            valid = [i for i in record_ids if re.fullmatch(r"[0-9A-Za-z]{15,18}", i)]
            for start in range(0, len(valid), READ_CHUNK):
                quoted = ", ".join(f"'{i}'" for i in valid[start : start + READ_CHUNK])
                queries.append((obj, f"SELECT {fields} FROM {obj} WHERE Id IN ({quoted})"))
        out: dict[str, list[Mapping[str, Any]]] = {obj: [] for obj in wanted}
        for start in range(0, len(queries), COMPOSITE_QUERIES):
            chunk = queries[start : start + COMPOSITE_QUERIES]
            pages = self.client.composite([("GET", f"queryAll?q={quote(soql)}", None) for _, soql in chunk])
            for (obj, _), page in zip(chunk, pages, strict=True):
                records = [r for p in self.client.pages_from(page) for r in p["records"]]
                out[obj] += self._rows(obj, records)
        return out

    def query_many(self, soqls: Sequence[str]) -> list[list[Mapping[str, Any]]]:
        """``query`` for several queries, five to a Composite call (one API call each)."""
        out: list[list[Mapping[str, Any]]] = []
        for start in range(0, len(soqls), COMPOSITE_QUERIES):
            chunk = soqls[start : start + COMPOSITE_QUERIES]
            pages = self.client.composite([("GET", f"query?q={quote(soql)}", None) for soql in chunk])
            out += [[r for p in self.client.pages_from(page) for r in p["records"]] for page in pages]
        return out

    def create(self, object_name: str, records: Sequence[Mapping[str, Any]]) -> list[WriteResult]:
        rows = [_json_values(r) for r in records]
        if len(rows) > self.client.config.bulk_threshold:
            return [_write_result(r) for r in self.client.bulk_ingest(object_name, "insert", rows)]
        return [_write_result(r) for r in self.client.create_many(object_name, rows)]

    def update(self, object_name: str, records: Sequence[Mapping[str, Any]]) -> list[WriteResult]:
        rows = [_json_values(r) for r in records]
        if len(rows) > self.client.config.bulk_threshold:
            return [_write_result(r) for r in self.client.bulk_ingest(object_name, "update", rows)]
        return [_write_result(r) for r in self.client.update_many(object_name, rows)]

    def describe(self, object_name: str) -> Mapping[str, Any]:
        return self.client.describe(object_name)

    def count(self, object_name: str, where: str | None) -> int:
        soql = f"SELECT COUNT() FROM {object_name}" + (f" WHERE {where}" if where else "")
        page = next(self.client.query_pages(soql))
        return int(page["totalSize"])

    def query(self, soql: str) -> list[Mapping[str, Any]]:
        return list(self.client.query(soql))


def _json_values(record: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in record.items():
        if isinstance(v, dt.datetime):
            out[k] = v.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond // 1000:03d}Z"
        elif isinstance(v, dt.date):
            out[k] = v.isoformat()
        else:
            out[k] = v
    return out


def load_salesforce_config(path: Path) -> SalesforceConfig:
    """``salesforce.yaml``: a ``SalesforceConfig`` (secrets as ``{env: …}`` or ``{file: …}``)."""
    import yaml
    from pydantic import ValidationError

    if not path.exists():
        raise ConfigError(f"{path}: no such file (it holds the org's instance_url and credentials)")
    try:
        return SalesforceConfig.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    except (ValidationError, yaml.YAMLError) as exc:
        raise ConfigError(
            f"{path}: {exc}".splitlines()[0] + f" ({str(exc).splitlines()[-1].strip()})"
        ) from None


def run_connection_test(path: Path, mapped: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """``renkei connector test``: every check, and ``ok`` when all passed."""
    client = SalesforceClient(load_salesforce_config(path))
    try:
        checks = check_connection(client, mapped)
    finally:
        client.close()
    return {"ok": all(ch.ok for ch in checks), "checks": [ch.to_dict() for ch in checks]}
