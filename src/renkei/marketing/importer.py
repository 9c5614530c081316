"""CSV import and export of prospects (and export of activities), Excel-in-Japan friendly.

Import: the bytes are decoded as UTF-8 (with or without BOM) or, failing that, as what
charset-normalizer detects — in practice Shift_JIS / CP932, which Excel in Japan writes (CP932 is
used for both, being its superset). Headers map to prospect fields by an explicit mapping, by
v5 field name, or by the usual Japanese labels. Every row is cleaned (widths, phone format,
postcode) and validated in full before anything is written; a bad row is reported with its
errors and skipped whole, the good rows are written in one transaction. A dry run reports the
same without writing. Imports are not activities: they never move ``lastActivityAt``.

Export: prospects or activities as CSV, optionally with a UTF-8 BOM so Excel opens it right.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from charset_normalizer import from_bytes
from sqlalchemy.engine import Engine

from renkei.clock import Clock, SystemClock
from renkei.core.hygiene import lookup_postcode, normalize_width, parse_phone
from renkei.core.identity import email_key
from renkei.errors import InputError, ValidationError
from renkei.marketing.activity_service import REFERENCE_COLUMNS
from renkei.marketing.automation_service import run_rules
from renkei.marketing.forms import account_for_company
from renkei.marketing.schema import PROSPECT_WRITABLE
from renkei.marketing.scoring_service import regrade
from renkei.marketing.service import ProspectService, coerce_record, to_json
from renkei.store import dynamic
from renkei.store import tables as t

#: Japanese column labels commonly found in exported lists → v5 field names.
JAPANESE_HEADERS: dict[str, str] = {
    "メールアドレス": "email", "メール": "email", "eメール": "email", "姓": "lastName", "名": "firstName",
    "会社名": "company", "企業名": "company", "部署": "department", "部署名": "department", "役職": "jobTitle",
    "電話番号": "phone", "電話": "phone", "fax": "fax", "郵便番号": "zip", "都道府県": "state", "市区町村": "city",
    "市区郡": "city", "住所": "addressOne", "住所1": "addressOne", "住所2": "addressTwo", "国": "country",
    "業種": "industry", "従業員数": "employees", "年間売上": "annualRevenue", "webサイト": "website",
    "ウェブサイト": "website", "url": "website", "備考": "notes", "コメント": "comments", "お問い合わせ内容": "comments",
}  # fmt: skip
# Scoring and assignment are not set by import; system fields never are.
_NOT_IMPORTED = frozenset({"score", "grade", "assignedToId", "profileId"})


def decode(data: bytes, encoding: str | None = None) -> tuple[str, str]:
    """The text and the encoding used (``utf-8-sig``, ``utf-8``, ``cp932`` or the detected one)."""
    if encoding:
        try:
            return data.decode(encoding), encoding
        except (LookupError, UnicodeDecodeError) as exc:
            raise InputError(
                f"cannot decode the file as {encoding}: {exc}", code="INVALID_ENCODING"
            ) from None
    if data.startswith(b"\xef\xbb\xbf"):
        return data.decode("utf-8-sig"), "utf-8-sig"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    best = from_bytes(data).best()
    name = (best.encoding if best is not None else "cp932").lower()
    if name in ("shift_jis", "cp932", "sjis", "shift-jis", "ms932"):
        name = "cp932"
    try:
        return data.decode(name), name
    except (LookupError, UnicodeDecodeError):
        raise InputError(
            "cannot tell the file's encoding (UTF-8 or Shift_JIS/CP932 expected)", code="INVALID_ENCODING"
        ) from None


def map_headers(headers: Sequence[str], explicit: Mapping[str, str], fields: Iterable[str]) -> dict[str, str]:
    """CSV header → prospect field for every header that maps; others are ignored."""
    names = {f.lower(): f for f in fields}
    mapping: dict[str, str] = {}
    for header in headers:
        key = normalize_width(header).lower()
        target = explicit.get(header) or explicit.get(key) or names.get(key) or JAPANESE_HEADERS.get(key)
        if target is not None:
            if target not in names.values():
                raise InputError(
                    f"column {header!r} maps to unknown prospect field {target!r}", code="INVALID_FIELD"
                )
            mapping[header] = target
    if "email" not in mapping.values():
        raise InputError("no column maps to email (use --map 'Header=email')", code="REQUIRED_FIELD_MISSING")
    return mapping


@dataclass(frozen=True, slots=True)
class RowError:
    row: int  # 1-based data row number (the header is row 0)
    email: str | None
    errors: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "email": self.email, "errors": list(self.errors)}


@dataclass(slots=True)
class ImportReport:
    encoding: str
    mapping: dict[str, str]
    ignored: list[str]
    rows: int = 0
    created: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    would_create: int = 0
    would_update: int = 0
    errors: list[RowError] = field(default_factory=list)
    preview: list[dict[str, Any]] = field(default_factory=list)
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "dryRun": self.dry_run, "encoding": self.encoding, "mapping": self.mapping, "ignoredColumns": self.ignored,
            "rows": self.rows, "created": len(self.created) if not self.dry_run else self.would_create,
            "updated": len(self.updated) if not self.dry_run else self.would_update,
            "errors": [e.to_dict() for e in self.errors], "preview": self.preview,
        }  # fmt: skip


def clean_row(values: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """Hygiene for one row: widths, phone national format, postcode checked against the prefecture."""
    out: dict[str, Any] = {}
    problems: list[str] = []
    for name, raw in values.items():
        text = normalize_width(raw or "")
        if not text:
            continue
        if name in ("phone", "fax"):
            phone = parse_phone(text)
            if phone is None:
                problems.append(f"{name}: not a valid phone number: {text!r}")
                continue
            text = phone.national
        elif name == "zip":
            postcode = lookup_postcode(text)
            if postcode is None:
                problems.append(f"zip: unknown postcode: {text!r}")
                continue
            text = postcode.code
            state = normalize_width(values.get("state") or "")
            if state and state != postcode.prefecture:
                problems.append(f"zip: {text} is in {postcode.prefecture}, not {state}")
        out[name] = text
    return out, problems


class ProspectImporter:
    def __init__(self, engine: Engine, *, clock: Clock | None = None) -> None:
        self.engine = engine
        self.clock = clock or SystemClock()

    def run(
        self,
        data: bytes,
        *,
        mapping: Mapping[str, str] | None = None,
        encoding: str | None = None,
        dry_run: bool = False,
        keep_existing: bool = False,
    ) -> ImportReport:
        text, used = decode(data, encoding)
        reader = csv.DictReader(io.StringIO(text))
        headers = list(reader.fieldnames or [])
        now = self.clock.now()
        with self.engine.begin() as conn:
            schema = dynamic.load_prospect_schema(conn)
            writable = [f.name for f in PROSPECT_WRITABLE if f.name not in _NOT_IMPORTED] + [
                f.name for f in schema.custom_fields
            ]
            columns = map_headers(headers, mapping or {}, writable)
            report = ImportReport(used, columns, [h for h in headers if h not in columns], dry_run=dry_run)
            p = schema.table
            seen: dict[str, int | None] = {}  # email key → prospect id (None: created in a dry run)
            service = ProspectService(self.engine, clock=self.clock, actor="import")
            for number, raw in enumerate(reader, start=1):
                report.rows += 1
                values, problems = clean_row({columns[h]: raw.get(h) or "" for h in columns})
                try:
                    row = coerce_record(schema.fields, values, writable=writable)
                except ValidationError as exc:
                    problems += [e.message for e in exc.errors]
                    row = {}
                key = email_key(values.get("email"))
                if key is None:
                    problems.append("email: required field missing")
                if problems:
                    report.errors.append(RowError(number, values.get("email"), tuple(problems)))
                    continue
                assert key is not None
                if len(report.preview) < 5:
                    report.preview.append(to_json(row))
                if key not in seen:
                    found = conn.execute(
                        sa.select(p.c.id)
                        .where(p.c.emailKey == key, p.c.isDeleted.is_(False))
                        .order_by(p.c.updatedAt.desc())
                        .limit(1)
                    ).scalar_one_or_none()
                    if found is not None:
                        seen[key] = int(found)
                target = seen.get(key)
                if target is None and key not in seen:
                    report.would_create += 1
                    if dry_run:
                        seen[key] = None
                        continue
                    account = account_for_company(conn, row.get("company"))
                    created = service._insert(
                        conn,
                        schema,
                        {**row, "source": row.get("source") or "Import", "prospectAccountId": account},
                    )
                    seen[key] = int(created["id"])
                    report.created.append(int(created["id"]))
                    continue
                report.would_update += 1
                if dry_run or target is None:
                    continue
                if keep_existing:
                    current = conn.execute(sa.select(p).where(p.c.id == target)).mappings().one()
                    row = {k: v for k, v in row.items() if current[k] in (None, "")}
                row.pop("email", None)
                if row:
                    conn.execute(p.update().where(p.c.id == target).values(**row, updatedAt=now))
                if target not in report.updated and target not in report.created:
                    report.updated.append(target)
            touched = report.created + report.updated
            if touched and not dry_run:
                for start in range(0, len(touched), 500):
                    chunk = touched[start : start + 500]
                    regrade(conn, chunk, now)
                    run_rules(conn, chunk, now)
        return report


# ---------------------------------------------------------------------------------------------
# Export


def _csv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str], bom: bool) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
    return (b"\xef\xbb\xbf" if bom else b"") + out.getvalue().encode("utf-8")


def export_prospects(
    engine: Engine, *, bom: bool = False, fields: Sequence[str] | None = None
) -> tuple[bytes, int]:
    """Live prospects as CSV (v5 field names as headers); returns the bytes and the row count."""
    with engine.connect() as conn:
        table = dynamic.load_prospect_schema(conn).table
        columns = list(fields) if fields else [c.name for c in table.columns if c.name != "emailKey"]
        unknown = [c for c in columns if c not in table.c or c == "emailKey"]
        if unknown:
            raise InputError(f"unknown prospect fields: {', '.join(unknown)}", code="INVALID_FIELD")
        rows = [
            to_json(dict(r))
            for r in conn.execute(
                sa.select(table).where(table.c.isDeleted.is_(False)).order_by(table.c.id)
            ).mappings()
        ]
    return _csv(rows, columns, bom), len(rows)


ACTIVITY_COLUMNS = [
    "id",
    "type",
    "typeName",
    "details",
    "prospectId",
    "visitorId",
    *REFERENCE_COLUMNS,
    "createdAt",
]


def export_activities(
    engine: Engine, *, bom: bool = False, prospect_id: int | None = None
) -> tuple[bytes, int]:
    va = t.visitor_activity
    query = sa.select(va).order_by(va.c.id)
    if prospect_id is not None:
        query = query.where(va.c.prospectId == prospect_id)
    with engine.connect() as conn:
        rows = [to_json(dict(r)) for r in conn.execute(query).mappings()]
    return _csv(rows, ACTIVITY_COLUMNS, bom), len(rows)
