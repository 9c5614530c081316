"""Bulk API 2.0 (``jobs/ingest``, ``jobs/query``) over ``CrmService``, with jobs kept in the database.

Ingest: create a job (Open) → upload CSV (``PUT …/batches``) → ``PATCH {"state":"UploadComplete"}``
→ processing claims it (InProgress), saves the rows 200 at a time through the same CrmService
validation as every other write (per-record results; a record is saved whole or not at all) and
ends JobComplete (or Failed when the upload itself is unusable, e.g. an unknown column). Results:
``successfulResults/`` (``sf__Id, sf__Created`` + the row), ``failedResults/`` (``sf__Id,
sf__Error`` + the row), ``unprocessedrecords/`` (rows an Aborted or Failed job never reached).

Query: create a job with SOQL (UploadComplete) → processing runs it (InProgress → JobComplete) →
``GET …/results?maxRecords=&locator=`` pages the CSV, the next locator in ``Sforce-Locator``
(``null`` at the end).

Processing runs after the response that completed the upload (a background task) and on any later
read of a job still waiting, so a restart loses no job: a job whose claim is older than
``CLAIM_TIMEOUT`` is taken over and resumes after the last saved chunk. A chunk is saved by
An insert chunk's records and its results are saved in one transaction (exactly once: a crash
leaves neither, and the resumed job saves the chunk then). Update, upsert and delete chunks are
saved by CrmService and their results recorded in two transactions; a crash between the two
repeats that chunk on resume, which those operations tolerate (the same values again; an already
deleted record is reported as ENTITY_IS_DELETED).
"""

from __future__ import annotations

import csv
import datetime as dt
import enum
import functools
import io
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from renkei import ids
from renkei.clock import Clock, SystemClock, sf_datetime
from renkei.crm.service import CrmService, SaveResult
from renkei.errors import FieldError, InputError, NotFoundError, RenkeiError
from renkei.store.tables_sfapi import sfapi_bulk_job, sfapi_bulk_part

#: Records per CrmService call while processing (one transaction each).
CHUNK = 200
#: A job claimed longer ago than this without progress is taken over (the server restarted).
CLAIM_TIMEOUT = dt.timedelta(minutes=5)
#: Salesforce accepts 150 MB of base64-encoded data per upload; renkei takes 100 MB of CSV.
MAX_UPLOAD_BYTES = 100 * 1024 * 1024
INGEST_OPERATIONS = ("insert", "update", "upsert", "delete")
QUERY_OPERATIONS = ("query", "queryAll")
DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^", "BACKQUOTE": "`"}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
#: A cell that sets the field to null (an empty cell leaves it unchanged).
NULL = "#N/A"


class JobState(enum.Enum):
    OPEN = "Open"
    UPLOAD_COMPLETE = "UploadComplete"
    IN_PROGRESS = "InProgress"
    JOB_COMPLETE = "JobComplete"
    FAILED = "Failed"
    ABORTED = "Aborted"


class JobType(enum.Enum):
    INGEST = "V2Ingest"
    QUERY = "V2Query"


FINISHED = (JobState.JOB_COMPLETE, JobState.FAILED, JobState.ABORTED)


class InvalidJobState(InputError):
    code = "INVALIDJOBSTATE"


@dataclass(frozen=True, slots=True)
class QueryPage:
    csv: str
    records: int
    locator: str | None


def _job_id() -> str:
    return ids.make_id("750", secrets.randbelow(62**9))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return sf_datetime(value) or ""
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _error_text(errors: Sequence[FieldError]) -> str:
    """``sf__Error``: ``STATUS_CODE:message:fields`` (Salesforce's format), several joined by ``;``."""
    return ";".join(f"{e.code}:{e.message}:{','.join(e.fields)}" for e in errors)


class BulkJobs:
    def __init__(self, engine: Engine, *, clock: Clock | None = None, api_version: str = "60.0") -> None:
        self.engine = engine
        self.clock = clock or SystemClock()
        self.api_version = api_version

    # -- jobs ---------------------------------------------------------------------------------

    def create_ingest(self, user_id: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, Mapping):
            raise InputError("The request body must be a JSON object", code="JSON_PARSER_ERROR")
        operation = body.get("operation")
        if operation not in INGEST_OPERATIONS:
            raise InputError(
                f"InvalidJob : operation must be one of {', '.join(INGEST_OPERATIONS)}: {operation}",
                code="INVALIDJOB",
            )
        obj = body.get("object")
        crm = CrmService(self.engine, clock=self.clock, user_id=user_id)
        if not isinstance(obj, str):
            raise InputError("InvalidJob : object is required", code="INVALIDJOB")
        try:
            described = crm.describe(obj)
        except NotFoundError:
            raise InputError(f"InvalidJob : Unable to find object: {obj}", code="INVALIDJOB") from None
        external = body.get("externalIdFieldName")
        if operation == "upsert":
            names = {f["name"].lower(): f["name"] for f in described["fields"]}
            if not isinstance(external, str) or external.lower() not in names:
                raise InputError(
                    f"InvalidJob : upsert needs an existing externalIdFieldName: {external}",
                    code="INVALIDJOB",
                )
            external = names[external.lower()]
        if body.get("contentType", "CSV") != "CSV":
            raise InputError("InvalidJob : contentType must be CSV", code="INVALIDJOB")
        return self._insert_job(user_id, JobType.INGEST, str(operation), body, obj=str(described["name"]),
                                external=external if operation == "upsert" else None)  # fmt: skip

    def create_query(self, user_id: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, Mapping):
            raise InputError("The request body must be a JSON object", code="JSON_PARSER_ERROR")
        operation = body.get("operation", "query")
        if operation not in QUERY_OPERATIONS:
            raise InputError(
                f"InvalidJob : operation must be query or queryAll: {operation}", code="INVALIDJOB"
            )
        soql = body.get("query")
        if not isinstance(soql, str) or not soql.strip():
            raise InputError("InvalidJob : query is required", code="INVALIDJOB")
        return self._insert_job(user_id, JobType.QUERY, str(operation), body, query=soql)

    def _insert_job(
        self, user_id: str, job_type: JobType, operation: str, body: Mapping[str, Any], *,
        obj: str | None = None, external: str | None = None, query: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        line_ending = body.get("lineEnding", "LF")
        delimiter = body.get("columnDelimiter", "COMMA")
        if line_ending not in LINE_ENDINGS or delimiter not in DELIMITERS:
            raise InputError("InvalidJob : unknown lineEnding or columnDelimiter", code="INVALIDJOB")
        now = self.clock.now()
        job_id = _job_id()
        state = JobState.OPEN if job_type is JobType.INGEST else JobState.UPLOAD_COMPLETE
        with self.engine.begin() as conn:
            conn.execute(sfapi_bulk_job.insert().values(
                id=job_id, job_type=job_type.value, operation=operation, object=obj, external_id_field=external,
                query=query, line_ending=line_ending, column_delimiter=delimiter, state=state.value,
                api_version=self.api_version, created_by=user_id, created_at=now, modstamp=now,
                rows_done=0, records_processed=0, records_failed=0,
            ))  # fmt: skip
        return self.info(job_id, job_type, full=False)

    def _row(self, job_id: str, job_type: JobType) -> Any:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(sfapi_bulk_job).where(
                    sfapi_bulk_job.c.id == job_id, sfapi_bulk_job.c.job_type == job_type.value
                )
            ).first()
        if row is None:
            raise NotFoundError("The requested resource does not exist", code="NOT_FOUND")
        return row

    def info(self, job_id: str, job_type: JobType, *, full: bool = True) -> dict[str, Any]:
        return self._info(self._row(job_id, job_type), full=full)

    def _info(self, row: Any, *, full: bool = True) -> dict[str, Any]:
        kind = "ingest" if row.job_type == JobType.INGEST.value else "query"
        out: dict[str, Any] = {
            "id": row.id,
            "operation": row.operation,
            "object": row.object if row.object is not None else _object_of(row.query or ""),
            "createdById": row.created_by,
            "createdDate": sf_datetime(row.created_at),
            "systemModstamp": sf_datetime(row.modstamp),
            "state": row.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(row.api_version),
            "jobType": row.job_type,
            "lineEnding": row.line_ending,
            "columnDelimiter": row.column_delimiter,
        }
        if row.external_id_field:
            out["externalIdFieldName"] = row.external_id_field
        if kind == "ingest":
            out["contentUrl"] = f"services/data/v{row.api_version}/jobs/ingest/{row.id}/batches"
        if full:
            out |= {"numberRecordsProcessed": row.records_processed, "retries": 0, "totalProcessingTime": 0}
            if kind == "ingest":
                out |= {"numberRecordsFailed": row.records_failed, "apiActiveProcessingTime": 0,
                        "apexProcessingTime": 0}  # fmt: skip
            if row.error_message:
                out["errorMessage"] = row.error_message
        return out

    def list_jobs(self, job_type: JobType) -> dict[str, Any]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(sfapi_bulk_job)
                .where(sfapi_bulk_job.c.job_type == job_type.value)
                .order_by(sfapi_bulk_job.c.created_at, sfapi_bulk_job.c.id)
            ).all()
        return {"done": True, "records": [self._info(r, full=False) for r in rows], "nextRecordsUrl": None}

    def upload(self, job_id: str, content: bytes) -> int:
        """``PUT …/batches``: the job's CSV (one upload per job, as Salesforce); returns its rows."""
        row = self._row(job_id, JobType.INGEST)
        if row.state != JobState.OPEN.value:
            raise InvalidJobState(f"Job {job_id} is not open for uploads (state {row.state})")
        if len(content) > MAX_UPLOAD_BYTES:
            raise InputError("The upload exceeds 100 MB", code="INVALIDBATCH")
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InputError("The CSV must be UTF-8", code="INVALIDBATCH") from None
        with self.engine.begin() as conn:
            if conn.execute(sa.select(sa.func.count()).select_from(sfapi_bulk_part).where(
                    sfapi_bulk_part.c.job_id == job_id, sfapi_bulk_part.c.kind == "upload")).scalar_one():  # fmt: skip
                raise InvalidJobState(f"Job {job_id} already has its data; create another job for more")
            rows = max(len(_csv_rows(text, row.column_delimiter)) - 1, 0)
            conn.execute(
                sfapi_bulk_part.insert().values(job_id=job_id, kind="upload", seq=0, rows=rows, content=text)
            )
            conn.execute(
                sfapi_bulk_job.update().where(sfapi_bulk_job.c.id == job_id).values(modstamp=self.clock.now())
            )
        return rows

    def set_state(self, job_id: str, job_type: JobType, body: Any) -> dict[str, Any]:
        """``PATCH``: ``UploadComplete`` (ingest, from Open) or ``Aborted`` (any unfinished job)."""
        wanted = body.get("state") if isinstance(body, Mapping) else None
        row = self._row(job_id, job_type)
        state = JobState(row.state)
        if wanted == JobState.UPLOAD_COMPLETE.value and job_type is JobType.INGEST:
            allowed = state is JobState.OPEN
        elif wanted == JobState.ABORTED.value:
            allowed = state not in FINISHED
        else:
            raise InputError(f"InvalidJob : cannot set the state to {wanted}", code="INVALIDJOB")
        if not allowed:
            raise InvalidJobState(f"Job {job_id} is {state.value}: cannot change it to {wanted}")
        with self.engine.begin() as conn:
            done = conn.execute(
                sfapi_bulk_job.update()
                .where(sfapi_bulk_job.c.id == job_id, sfapi_bulk_job.c.state == state.value)
                .values(state=wanted, modstamp=self.clock.now())
            ).rowcount
        if not done:  # processing moved the job meanwhile
            raise InvalidJobState(f"Job {job_id} changed state meanwhile; read it again")
        return self.info(job_id, job_type, full=False)

    def delete(self, job_id: str, job_type: JobType) -> None:
        row = self._row(job_id, job_type)
        if row.state in (JobState.OPEN.value, JobState.IN_PROGRESS.value):
            raise InvalidJobState(f"Job {job_id} is {row.state}: abort it or let it finish first")
        with self.engine.begin() as conn:
            conn.execute(sfapi_bulk_part.delete().where(sfapi_bulk_part.c.job_id == job_id))
            conn.execute(sfapi_bulk_job.delete().where(sfapi_bulk_job.c.id == job_id))

    def needs_processing(self, job_id: str, job_type: JobType) -> bool:
        row = self._row(job_id, job_type)
        return row.state == JobState.UPLOAD_COMPLETE.value or self._stale(row)

    def _stale(self, row: Any) -> bool:
        return bool(
            row.state == JobState.IN_PROGRESS.value
            and row.claimed_at is not None
            and row.claimed_at < self.clock.now() - CLAIM_TIMEOUT
        )

    # -- results ------------------------------------------------------------------------------

    def results(self, job_id: str, kind: str) -> tuple[str, int]:
        """An ingest job's ``successfulResults`` / ``failedResults`` / ``unprocessedrecords`` CSV."""
        row = self._row(job_id, JobType.INGEST)
        columns = list(row.columns or [])
        delimiter, line_ending = DELIMITERS[row.column_delimiter], LINE_ENDINGS[row.line_ending]
        if kind == "unprocessedrecords":
            data = self._parts(job_id, "upload")
            body = _csv_rows(data, row.column_delimiter)
            pending = body[1 + row.rows_done :] if row.state in (JobState.ABORTED.value, JobState.FAILED.value) or (
                row.state == JobState.OPEN.value) else []  # fmt: skip
            return _write_csv([body[0] if body else columns, *pending], delimiter, line_ending), len(pending)
        part_kind, extra = {"successfulResults": ("success", ["sf__Id", "sf__Created"]),
                            "failedResults": ("failure", ["sf__Id", "sf__Error"])}[kind]  # fmt: skip
        header = _write_csv([[*extra, *columns]], delimiter, line_ending)
        with self.engine.connect() as conn:
            parts = conn.execute(
                sa.select(sfapi_bulk_part.c.content, sfapi_bulk_part.c.rows)
                .where(sfapi_bulk_part.c.job_id == job_id, sfapi_bulk_part.c.kind == part_kind)
                .order_by(sfapi_bulk_part.c.seq)
            ).all()
        return header + "".join(p.content for p in parts), sum(p.rows for p in parts)

    def query_results(self, job_id: str, locator: str | None, max_records: int | None) -> QueryPage:
        row = self._row(job_id, JobType.QUERY)
        if row.state != JobState.JOB_COMPLETE.value:
            raise InvalidJobState(
                f"Job {job_id} is {row.state}: results are available once it is JobComplete"
            )
        start = 0
        if locator and locator != "null":
            if not locator.isdigit():
                raise InputError(f"Invalid locator: {locator}", code="INVALIDLOCATOR")
            start = int(locator)
        rows = _csv_rows(self._parts(job_id, "result"), row.column_delimiter)
        size = max_records if max_records and max_records > 0 else len(rows)
        page = rows[start : start + size]
        end = start + len(page)
        delimiter, line_ending = DELIMITERS[row.column_delimiter], LINE_ENDINGS[row.line_ending]
        text = _write_csv([list(row.columns or []), *page], delimiter, line_ending)
        return QueryPage(text, len(page), str(end) if end < len(rows) else None)

    def _parts(self, job_id: str, kind: str) -> str:
        with self.engine.connect() as conn:
            return "".join(
                conn.execute(
                    sa.select(sfapi_bulk_part.c.content)
                    .where(sfapi_bulk_part.c.job_id == job_id, sfapi_bulk_part.c.kind == kind)
                    .order_by(sfapi_bulk_part.c.seq)
                ).scalars()
            )

    # -- processing ---------------------------------------------------------------------------

    def _claim(self, job_id: str) -> Any | None:
        now = self.clock.now()
        j = sfapi_bulk_job.c
        with self.engine.begin() as conn:
            claimed = conn.execute(
                sfapi_bulk_job.update()
                .where(j.id == job_id, sa.or_(
                    j.state == JobState.UPLOAD_COMPLETE.value,
                    sa.and_(j.state == JobState.IN_PROGRESS.value, j.claimed_at < now - CLAIM_TIMEOUT)))
                .values(state=JobState.IN_PROGRESS.value, claimed_at=now, modstamp=now)
            ).rowcount  # fmt: skip
            if not claimed:
                return None
            return conn.execute(sa.select(sfapi_bulk_job).where(j.id == job_id)).first()

    def process(self, job_id: str) -> None:
        """Run a job that waits for processing (no-op when another worker has it or it is done)."""
        row = self._claim(job_id)
        if row is None:
            return
        try:
            if row.job_type == JobType.QUERY.value:
                self._run_query(row)
            else:
                self._run_ingest(row)
        except RenkeiError as exc:
            self._finish(job_id, JobState.FAILED, f"{exc.code} : {exc.message}")

    def _finish(self, job_id: str, state: JobState, error: str | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sfapi_bulk_job.update()
                .where(sfapi_bulk_job.c.id == job_id, sfapi_bulk_job.c.state == JobState.IN_PROGRESS.value)
                .values(state=state.value, error_message=error, modstamp=self.clock.now())
            )

    def _run_query(self, row: Any) -> None:
        crm = CrmService(self.engine, clock=self.clock, user_id=row.created_by)
        result = crm.query(row.query, include_deleted=row.operation == "queryAll")
        columns = _select_columns(row.query) or _record_columns(result["records"])
        lines = [[_cell(_path(rec, c)) for c in columns] for rec in result["records"]]
        delimiter, line_ending = DELIMITERS[row.column_delimiter], LINE_ENDINGS[row.line_ending]
        with self.engine.begin() as conn:
            conn.execute(sfapi_bulk_part.insert().values(
                job_id=row.id, kind="result", seq=0, rows=len(lines),
                content=_write_csv(lines, delimiter, line_ending) if lines else "",
            ))  # fmt: skip
            conn.execute(sfapi_bulk_job.update().where(sfapi_bulk_job.c.id == row.id).values(
                columns=columns, records_processed=len(lines)))  # fmt: skip
        self._finish(row.id, JobState.JOB_COMPLETE)

    def _run_ingest(self, row: Any) -> None:
        crm = CrmService(self.engine, clock=self.clock, user_id=row.created_by)
        table = _csv_rows(self._parts(row.id, "upload"), row.column_delimiter)
        if not table or not table[0]:
            raise InputError("InvalidBatch : no data uploaded", code="INVALIDBATCH")
        header, records = table[0], table[1:]
        fields = {f["name"].lower(): f for f in crm.describe(row.object)["fields"]}
        unknown = [c for c in header if c.lower() not in fields and "." not in c]
        if unknown:
            raise InputError(f"InvalidBatch : Field name not found : {unknown[0]}", code="INVALIDBATCH")
        names = [fields[c.lower()]["name"] if c.lower() in fields else c for c in header]
        id_column = next((i for i, n in enumerate(names) if n == "Id"), None)
        if row.operation == "delete" and names != ["Id"]:
            raise InputError("InvalidBatch : a delete job's CSV holds only an Id column", code="INVALIDBATCH")
        if row.operation == "update" and id_column is None:
            raise InputError("InvalidBatch : an update job's CSV needs an Id column", code="INVALIDBATCH")
        if row.operation == "upsert" and row.external_id_field not in names:
            raise InputError(
                f"InvalidBatch : the CSV needs the column {row.external_id_field}", code="INVALIDBATCH"
            )
        with self.engine.begin() as conn:
            conn.execute(sfapi_bulk_job.update().where(sfapi_bulk_job.c.id == row.id).values(columns=header))
        delimiter, line_ending = DELIMITERS[row.column_delimiter], LINE_ENDINGS[row.line_ending]
        done = int(row.rows_done)
        fmt = (delimiter, line_ending)
        while done < len(records):
            if self._row(row.id, JobType.INGEST).state != JobState.IN_PROGRESS.value:
                return  # aborted meanwhile: the rest stays unprocessed
            chunk = records[done : done + CHUNK]
            values = [_values(names, fields, r) for r in chunk]

            if row.operation == "insert":  # the records and the chunk's results in one transaction
                saved = functools.partial(self._record_saved, job_id=row.id, chunk=chunk, at=done, fmt=fmt)
                crm.create_many(row.object, values, on_saved=saved)
            else:  # update, upsert and delete are safe to repeat if a crash falls in between
                outcomes = self._save(crm, row, values)
                with self.engine.begin() as conn:
                    self._record(conn, row.id, chunk, done, outcomes, fmt)
            done += len(chunk)
        self._finish(row.id, JobState.JOB_COMPLETE)

    def _record_saved(
        self, conn: Any, results: list[SaveResult], *, job_id: str, chunk: list[list[str]], at: int,
        fmt: tuple[str, str],
    ) -> None:  # fmt: skip
        self._record(conn, job_id, chunk, at, [(r.id, r.success, r.errors) for r in results], fmt)

    def _record(
        self, conn: Any, job_id: str, chunk: list[list[str]], at: int,
        outcomes: list[tuple[str | None, bool, tuple[FieldError, ...]]], fmt: tuple[str, str],
    ) -> None:  # fmt: skip
        """A chunk's success and failure CSV parts and the job's progress, in ``conn``'s transaction."""
        delimiter, line_ending = fmt
        ok = [[rid or "", "true" if created else "false", *r] for (rid, created, errs), r in
              zip(outcomes, chunk, strict=True) if not errs]  # fmt: skip
        failed = [[rid or "", _error_text(errs), *r] for (rid, _, errs), r in
                  zip(outcomes, chunk, strict=True) if errs]  # fmt: skip
        now = self.clock.now()
        for kind, lines in (("success", ok), ("failure", failed)):
            if lines:
                conn.execute(sfapi_bulk_part.insert().values(
                    job_id=job_id, kind=kind, seq=at, rows=len(lines),
                    content=_write_csv(lines, delimiter, line_ending)))  # fmt: skip
        conn.execute(sfapi_bulk_job.update().where(sfapi_bulk_job.c.id == job_id).values(
            rows_done=at + len(chunk), claimed_at=now, modstamp=now,
            records_processed=sfapi_bulk_job.c.records_processed + len(chunk),
            records_failed=sfapi_bulk_job.c.records_failed + len(failed)))  # fmt: skip

    def _save(
        self, crm: CrmService, row: Any, values: list[dict[str, Any]]
    ) -> list[tuple[str | None, bool, tuple[FieldError, ...]]]:
        """(record id, created, errors) per row, in order."""
        obj = row.object
        if row.operation == "insert":
            return [(r.id, r.success, r.errors) for r in crm.create_many(obj, values)]
        if row.operation == "delete":
            return self._by_id(values, lambda ok: crm.delete_many(obj, [v["Id"] for v in ok]), created=False)
        if row.operation == "update":
            return self._by_id(values, lambda ok: crm.update_many(obj, ok), created=False)
        return self._upsert(crm, obj, row.external_id_field, values)

    @staticmethod
    def _by_id(
        values: list[dict[str, Any]], run: Any, *, created: bool
    ) -> list[tuple[str | None, bool, tuple[FieldError, ...]]]:
        out: list[tuple[str | None, bool, tuple[FieldError, ...]] | None] = [None] * len(values)
        good: list[int] = []
        for i, v in enumerate(values):
            rid = v.get("Id")
            if not isinstance(rid, str) or not ids.is_valid(rid):
                out[i] = (
                    None,
                    False,
                    (FieldError("MALFORMED_ID", f"Id is missing or malformed: {rid}", ("Id",)),),
                )
            else:
                v["Id"] = ids.normalize(rid)
                good.append(i)
        saved: list[SaveResult] = run([values[i] for i in good]) if good else []
        for i, res in zip(good, saved, strict=True):
            out[i] = (res.id or values[i]["Id"], created, res.errors if not res.success else ())
        return [o for o in out if o is not None]

    def _upsert(
        self, crm: CrmService, obj: str, external: str, values: list[dict[str, Any]]
    ) -> list[tuple[str | None, bool, tuple[FieldError, ...]]]:
        if external == "Id":
            matches: dict[str, list[str]] = {}
        else:
            keys = sorted({str(v[external]) for v in values if v.get(external) not in (None, "")})
            matches = {}
            for start in range(0, len(keys), CHUNK):
                quoted = ", ".join(
                    "'" + k.replace("\\", "\\\\").replace("'", "\\'") + "'"
                    for k in keys[start : start + CHUNK]
                )
                for rec in crm.query(f"SELECT Id, {external} FROM {obj} WHERE {external} IN ({quoted})")[
                    "records"
                ]:
                    matches.setdefault(str(rec[external]), []).append(str(rec["Id"]))
        out: list[tuple[str | None, bool, tuple[FieldError, ...]] | None] = [None] * len(values)
        creates: list[int] = []
        updates: list[int] = []
        for i, v in enumerate(values):
            key = v.get(external)
            if external == "Id":
                (updates if key else creates).append(i)
                if not key:
                    v.pop("Id", None)
                continue
            if key in (None, ""):
                out[i] = (
                    None,
                    False,
                    (
                        FieldError(
                            "REQUIRED_FIELD_MISSING", f"{external} is required for upsert", (external,)
                        ),
                    ),
                )
                continue
            found = matches.get(str(key), [])
            if len(found) > 1:
                out[i] = (
                    None,
                    False,
                    (
                        FieldError(
                            "DUPLICATE_EXTERNAL_ID",
                            f"{external} {key} matches {len(found)} records",
                            (external,),
                        ),
                    ),
                )
            elif found:
                v["Id"] = found[0]
                updates.append(i)
            else:
                creates.append(i)
        for i, res in zip(
            creates, crm.create_many(obj, [values[i] for i in creates]) if creates else [], strict=True
        ):
            out[i] = (res.id, res.success, res.errors if not res.success else ())
        if updates:
            for i, saved in zip(updates, self._by_id([values[i] for i in updates],
                                                    lambda ok: crm.update_many(obj, ok), created=False), strict=True):  # fmt: skip
                out[i] = saved
        return [o for o in out if o is not None]


def _csv_rows(text: str, delimiter_name: str) -> list[list[str]]:
    return [r for r in csv.reader(io.StringIO(text, newline=""), delimiter=DELIMITERS[delimiter_name]) if r]


def _write_csv(rows: Sequence[Sequence[str]], delimiter: str, line_ending: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator=line_ending, quoting=csv.QUOTE_MINIMAL)
    writer.writerows(rows)
    return out.getvalue()


_NUMBER_TYPES = ("int", "double", "currency", "percent")


def _values(
    names: Sequence[str], fields: Mapping[str, Mapping[str, Any]], row: Sequence[str]
) -> dict[str, Any]:
    """One CSV row as record values: empty cells are left out, ``#N/A`` is null, and booleans and
    numbers become JSON values (anything unparseable goes to CrmService as text, which reports it)."""
    out: dict[str, Any] = {}
    for name, cell in zip(names, row, strict=False):
        if cell == "" or "." in name:
            continue
        if cell == NULL:
            out[name] = None
            continue
        kind = fields.get(name.lower(), {}).get("type")
        value: Any = cell
        if kind == "boolean" and cell.lower() in ("true", "false", "1", "0", "yes", "no"):
            value = cell.lower() in ("true", "1", "yes")
        elif kind in _NUMBER_TYPES:
            try:
                value = int(cell) if kind == "int" else float(cell)
            except ValueError:
                value = cell
        out[name] = value
    return out


def _object_of(soql: str) -> str | None:
    match = re.search(r"\bFROM\s+([A-Za-z0-9_]+)", soql, re.IGNORECASE)
    return match.group(1) if match else None


def _select_columns(soql: str) -> list[str]:
    """The SELECT list's field paths (``Id``, ``Account.Name``); empty for anything fancier."""
    match = re.match(r"\s*SELECT\s+(.*?)\s+FROM\s", soql, re.IGNORECASE | re.DOTALL)
    if not match or "(" in match.group(1):
        return []
    return [c.strip() for c in match.group(1).split(",") if c.strip()]


def _record_columns(records: Sequence[Mapping[str, Any]]) -> list[str]:
    return [k for k in (records[0] if records else {}) if k != "attributes"]


def _path(record: Mapping[str, Any], column: str) -> Any:
    current: Any = record
    for step in column.split("."):
        if not isinstance(current, Mapping):
            return None
        match = next((k for k in current if k.lower() == step.lower()), None)
        current = current.get(match) if match is not None else None
    return current
