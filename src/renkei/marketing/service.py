"""Services over the marketing model: prospects (with their recycle bin and custom fields),
marketing users, campaigns, static lists and tags.

Records come back as dicts keyed by Account Engagement API v5 names with Python values (aware
UTC datetimes); ``to_json`` turns one into the v5 wire shape (ISO-8601 datetimes with offset).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping

from renkei.clock import Clock, SystemClock, ensure_utc
from renkei.core.identity import email_key
from renkei.crm.schema import FieldDef, FieldType
from renkei.crm.service import make_custom_field
from renkei.errors import FieldError, InputError, NotFoundError, ValidationError
from renkei.marketing.schema import GRADES, PROSPECT_FIELDS, PROSPECT_WRITABLE
from renkei.store import dynamic
from renkei.store import tables as t
from renkei.store.dynamic import ProspectSchema

#: Setting key: may several live prospects share one email (by ``email_key``)? Default: no.
ALLOW_DUPLICATE_EMAILS = "allow_duplicate_emails"

#: Columns kept for matching only, not part of the v5 record.
_INTERNAL_COLUMNS = frozenset({"emailKey"})
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_TRUE = frozenset({"true", "1", "yes", "y", "on"})
_FALSE = frozenset({"false", "0", "no", "n", "off"})

#: Boolean/counter columns that start at a value rather than null.
_CREATE_DEFAULTS: dict[str, Any] = {
    "score": 0,
    "optedOut": False,
    "isDoNotEmail": False,
    "isDoNotCall": False,
    "doNotSell": False,
    "isReviewed": False,
    "isStarred": False,
    "isEmailHardBounced": False,
    "softBounceCount": 0,
    "isDeleted": False,
}


# ---------------------------------------------------------------------------------------------
# Values


def coerce_value(f: FieldDef, value: Any) -> Any:
    """A field's value from Python or from a string (the CLI's), or a ``FieldError`` raised
    naming the field. ``None`` and blank strings clear the field (a checkbox becomes false)."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return False if f.type is FieldType.BOOLEAN else None
    try:
        convert: Callable[[FieldDef, Any], Any] = _COERCE.get(f.type, _text)
        return convert(f, value)
    except (TypeError, ValueError, ArithmeticError):
        raise _FieldProblem(
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
            f"{f.name}: value not of required type {f.type.value}: {value!r}",
            f,
        ) from None


class _FieldProblem(Exception):
    def __init__(self, code: str, message: str, f: FieldDef) -> None:
        super().__init__(message)
        self.error = FieldError(code, message, (f.name,))


def _text(f: FieldDef, value: Any) -> str:
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise TypeError(value)
    text = str(value).strip()
    if f.length and len(text) > f.length:
        raise _FieldProblem(
            "STRING_TOO_LONG", f"{f.name}: data value too large: {len(text)} characters (max {f.length})", f
        )
    return text


def _email(f: FieldDef, value: Any) -> str:
    text = _text(f, value)
    if not _EMAIL.match(email_key(text) or ""):
        raise _FieldProblem("INVALID_EMAIL_ADDRESS", f"{f.name}: invalid email address: {text!r}", f)
    return text


def _boolean(f: FieldDef, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(value)


def _integer(f: FieldDef, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(value)
    return int(value)


def _number(f: FieldDef, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(value)
    number = float(value)
    if f.precision and abs(number) >= 10 ** (f.precision - f.scale):
        raise _FieldProblem(
            "NUMBER_OUTSIDE_VALID_RANGE",
            f"{f.name}: {value!r} has more than {f.precision - f.scale} digits",
            f,
        )
    return round(number, f.scale) if f.precision else number


def _date(f: FieldDef, value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return ensure_utc(value).date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value).strip())


def _datetime(f: FieldDef, value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return ensure_utc(value)
    return ensure_utc(dt.datetime.fromisoformat(str(value).strip()))


def _picklist(f: FieldDef, value: Any) -> str:
    text = _text(f, value)
    _check_picklist(f, [text])
    return text


def _multipicklist(f: FieldDef, value: Any) -> str:
    items = list(value) if isinstance(value, (list, tuple)) else str(value).split(";")
    chosen = [str(v).strip() for v in items if str(v).strip()]
    _check_picklist(f, chosen)
    return ";".join(chosen)


def _check_picklist(f: FieldDef, chosen: Iterable[str]) -> None:
    if not f.restricted_picklist:
        return
    allowed = {v.value for v in f.picklist_values}
    for item in chosen:
        if item not in allowed:
            raise _FieldProblem(
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                f"{f.name}: bad value for restricted picklist: {item!r}",
                f,
            )


_COERCE: dict[FieldType, Callable[[FieldDef, Any], Any]] = {
    FieldType.EMAIL: _email,
    FieldType.BOOLEAN: _boolean,
    FieldType.INT: _integer,
    FieldType.DOUBLE: _number,
    FieldType.CURRENCY: _number,
    FieldType.PERCENT: _number,
    FieldType.DATE: _date,
    FieldType.DATETIME: _datetime,
    FieldType.PICKLIST: _picklist,
    FieldType.MULTIPICKLIST: _multipicklist,
}


def coerce_record(
    fields: Mapping[str, FieldDef], values: Mapping[str, Any], *, writable: Iterable[str]
) -> dict[str, Any]:
    """Every value coerced, or one ``ValidationError`` listing every bad field (nothing written)."""
    allowed = set(writable)
    out: dict[str, Any] = {}
    errors: list[FieldError] = []
    for name, value in values.items():
        f = fields.get(name)
        if f is None or name == "id":
            errors.append(FieldError("INVALID_FIELD", f"No such column '{name}' on prospect", (name,)))
        elif name not in allowed:
            errors.append(
                FieldError("INVALID_FIELD_FOR_INSERT_UPDATE", f"{name}: field is read-only", (name,))
            )
        else:
            try:
                out[name] = coerce_value(f, value)
            except _FieldProblem as problem:
                errors.append(problem.error)
    if "grade" in out and out["grade"] is not None and out["grade"] not in GRADES:
        errors.append(FieldError("INVALID_FIELD", f"grade: not a grade letter: {out['grade']!r}", ("grade",)))
    if errors:
        raise ValidationError(errors)
    return out


def to_json(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record in the v5 wire shape: datetimes ISO-8601 with offset, dates ``YYYY-MM-DD``."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dt.datetime):
            out[key] = ensure_utc(value).isoformat()
        elif isinstance(value, dt.date):
            out[key] = value.isoformat()
        else:
            out[key] = value
    return out


# ---------------------------------------------------------------------------------------------
# Settings


class SettingService:
    """Account-level marketing settings (``setting`` table: key → JSON value)."""

    DEFAULTS: dict[str, Any] = {ALLOW_DUPLICATE_EMAILS: False}

    def __init__(self, engine: Engine, *, clock: Clock | None = None, actor: str | None = None) -> None:
        self.engine = engine
        self.clock = clock or SystemClock()
        self.actor = actor

    def get(self, key: str) -> Any:
        with self.engine.connect() as conn:
            return read_setting(conn, key)

    def set(self, key: str, value: Any) -> None:
        if key not in self.DEFAULTS:
            raise InputError(
                f"unknown setting {key!r} (one of: {', '.join(self.DEFAULTS)})", code="INVALID_FIELD"
            )
        row = {"key": key, "value": value, "updatedAt": self.clock.now(), "updatedBy": self.actor}
        with self.engine.begin() as conn:
            done = conn.execute(t.setting.update().where(t.setting.c.key == key).values(row)).rowcount
            if not done:
                conn.execute(t.setting.insert().values(row))


def read_setting(conn: Connection, key: str) -> Any:
    value = conn.execute(sa.select(t.setting.c.value).where(t.setting.c.key == key)).scalar_one_or_none()
    return SettingService.DEFAULTS.get(key) if value is None else value


# ---------------------------------------------------------------------------------------------
# Prospects


class ProspectService:
    """Prospects: validated create/update, lookup by id or email, recycle bin, custom fields."""

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Clock | None = None,
        actor: str | None = None,
        user_id: int | None = None,
    ) -> None:
        self.engine = engine
        self.clock = clock or SystemClock()
        self.actor = actor
        #: The acting marketing user (``createdById``/``updatedById``), when there is one.
        self.user_id = user_id

    def schema(self) -> ProspectSchema:
        with self.engine.connect() as conn:
            return dynamic.load_prospect_schema(conn)

    def _writable(self, schema: ProspectSchema) -> list[str]:
        return [f.name for f in PROSPECT_WRITABLE] + [f.name for f in schema.custom_fields]

    def create(self, values: Mapping[str, Any]) -> dict[str, Any]:
        with self.engine.begin() as conn:
            schema = dynamic.load_prospect_schema(conn)
            row = coerce_record(schema.fields, values, writable=self._writable(schema))
            return self._insert(conn, schema, row)

    def create_system(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Create with any column set (the connector creating a prospect from a lead or contact)."""
        with self.engine.begin() as conn:
            schema = dynamic.load_prospect_schema(conn)
            row = coerce_record(schema.fields, values, writable=set(schema.fields) - {"id"})
            return self._insert(conn, schema, row)

    def _insert(self, conn: Connection, schema: ProspectSchema, row: dict[str, Any]) -> dict[str, Any]:
        if not row.get("email"):
            raise ValidationError(
                [FieldError("REQUIRED_FIELD_MISSING", "email: required field missing", ("email",))]
            )
        now = self.clock.now()
        full = {**_CREATE_DEFAULTS, "createdAt": now, "updatedAt": now, "createdById": self.user_id,
                "updatedById": self.user_id}  # fmt: skip
        full.update({f.name: f.default_value for f in schema.custom_fields if f.default_value is not None})
        full.update({k: v for k, v in row.items() if v is not None or k not in full})
        full["emailKey"] = email_key(full["email"])
        self._check_duplicate(conn, schema, full["emailKey"], None)
        new_id = _inserted_id(conn.execute(schema.table.insert().values(full)))
        return self._fetch(conn, schema, new_id, include_deleted=True)

    def _check_duplicate(
        self, conn: Connection, schema: ProspectSchema, key: str | None, own_id: int | None
    ) -> None:
        if key is None or read_setting(conn, ALLOW_DUPLICATE_EMAILS):
            return
        c = schema.table.c
        query = sa.select(c.id).where(c.emailKey == key, c.isDeleted.is_(False))
        if own_id is not None:
            query = query.where(c.id != own_id)
        other = conn.execute(query.limit(1)).scalar_one_or_none()
        if other is not None:
            raise InputError(
                f"email: another prospect (id {other}) already has the email {key!r}"
                f" (setting {ALLOW_DUPLICATE_EMAILS} is off)",
                code="DUPLICATE_VALUE",
            )

    def _fetch(
        self, conn: Connection, schema: ProspectSchema, prospect_id: int, *, include_deleted: bool
    ) -> dict[str, Any]:
        row = conn.execute(sa.select(schema.table).where(schema.table.c.id == prospect_id)).mappings().first()
        if row is None or (row["isDeleted"] and not include_deleted):
            raise NotFoundError(
                f"prospect {prospect_id} not found" + ("" if row is None else " (it is in the recycle bin)")
            )
        return _record(row)

    def get(self, prospect_id: int, *, include_deleted: bool = False) -> dict[str, Any]:
        with self.engine.connect() as conn:
            return self._fetch(
                conn,
                dynamic.load_prospect_schema(conn),
                parse_prospect_id(prospect_id),
                include_deleted=include_deleted,
            )

    def find(self, id_or_email: str) -> dict[str, Any]:
        """By id ("123") or by email; among live prospects sharing an email, the latest updated."""
        text = id_or_email.strip()
        if text.isdigit():
            return self.get(int(text))
        matches = self.find_by_email(text)
        if not matches:
            raise NotFoundError(f"no prospect with email {text!r}")
        return max(matches, key=lambda p: (p["updatedAt"], p["id"]))

    def find_by_email(self, email: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        key = email_key(email)
        if key is None:
            return []
        with self.engine.connect() as conn:
            table = dynamic.load_prospect_schema(conn).table
            query = sa.select(table).where(table.c.emailKey == key).order_by(table.c.id)
            if not include_deleted:
                query = query.where(table.c.isDeleted.is_(False))
            return [_record(r) for r in conn.execute(query).mappings()]

    def update(self, prospect_id: int, values: Mapping[str, Any]) -> dict[str, Any]:
        """Change user-writable fields (system fields are rejected as read-only)."""
        return self._update(prospect_id, values, system=False)

    def update_system(self, prospect_id: int, values: Mapping[str, Any]) -> dict[str, Any]:
        """Change any column (the connector, scoring, grading, activity tracking)."""
        return self._update(prospect_id, values, system=True)

    def _update(self, prospect_id: int, values: Mapping[str, Any], *, system: bool) -> dict[str, Any]:
        pid = parse_prospect_id(prospect_id)
        with self.engine.begin() as conn:
            schema = dynamic.load_prospect_schema(conn)
            writable = set(schema.fields) - {"id"} if system else set(self._writable(schema))
            row = coerce_record(schema.fields, values, writable=writable)
            current = self._fetch(conn, schema, pid, include_deleted=system)
            if "email" in row:
                if row["email"] is None:
                    raise ValidationError(
                        [FieldError("REQUIRED_FIELD_MISSING", "email: required field missing", ("email",))]
                    )
                row["emailKey"] = email_key(row["email"])
                if row["emailKey"] != email_key(current["email"]) and not current["isDeleted"]:
                    self._check_duplicate(conn, schema, row["emailKey"], pid)
            row.setdefault("updatedAt", self.clock.now())
            if self.user_id is not None:
                row.setdefault("updatedById", self.user_id)
            conn.execute(schema.table.update().where(schema.table.c.id == pid).values(row))
            return self._fetch(conn, schema, pid, include_deleted=True)

    def delete(self, prospect_id: int) -> None:
        """Move to the recycle bin (``isDeleted``, ``deletedAt``); ``undelete`` restores."""
        pid = parse_prospect_id(prospect_id)
        with self.engine.begin() as conn:
            schema = dynamic.load_prospect_schema(conn)
            self._fetch(conn, schema, pid, include_deleted=False)
            now = self.clock.now()
            conn.execute(
                schema.table.update()
                .where(schema.table.c.id == pid)
                .values(isDeleted=True, deletedAt=now, updatedAt=now)
            )

    def undelete(self, prospect_id: int) -> dict[str, Any]:
        pid = parse_prospect_id(prospect_id)
        with self.engine.begin() as conn:
            schema = dynamic.load_prospect_schema(conn)
            current = self._fetch(conn, schema, pid, include_deleted=True)
            if not current["isDeleted"]:
                raise InputError(f"prospect {pid} is not in the recycle bin", code="UNDELETE_FAILED")
            self._check_duplicate(conn, schema, email_key(current["email"]), pid)
            conn.execute(
                schema.table.update()
                .where(schema.table.c.id == pid)
                .values(isDeleted=False, deletedAt=None, updatedAt=self.clock.now())
            )
            return self._fetch(conn, schema, pid, include_deleted=True)

    def list(
        self, *, limit: int = 200, offset: int = 0, include_deleted: bool = False, order_by: str = "id"
    ) -> list[dict[str, Any]]:
        """A page of prospects; ``order_by`` is a field name, ``-name`` for descending.
        ``include_deleted`` lists the recycle bin (deleted prospects only)."""
        if limit < 0 or offset < 0:
            raise InputError("limit and offset must not be negative", code="INVALID_ARGUMENT")
        with self.engine.connect() as conn:
            table = dynamic.load_prospect_schema(conn).table
            name = order_by.removeprefix("-")
            if name not in table.c or name in _INTERNAL_COLUMNS:
                raise InputError(f"cannot order by unknown field {name!r}", code="INVALID_FIELD")
            column = table.c[name]
            order = [column.desc() if order_by.startswith("-") else column.asc(), table.c.id.asc()]
            query = (
                sa.select(table)
                .where(table.c.isDeleted.is_(include_deleted))
                .order_by(*order)
                .limit(limit)
                .offset(offset)
            )
            return [_record(r) for r in conn.execute(query).mappings()]

    def count(self, *, include_deleted: bool = False) -> int:
        with self.engine.connect() as conn:
            c = t.prospect.c
            query = sa.select(sa.func.count()).select_from(t.prospect).where(c.isDeleted.is_(include_deleted))
            return int(conn.execute(query).scalar_one())

    def add_field(self, name: str, type: str, **options: Any) -> FieldDef:
        """A prospect custom field (``__c`` appended when missing): a definition row and a column.
        ``options`` are the CRM's (``make_custom_field``): length, precision, scale, values, restricted, label."""
        api_name = name.strip() if name.strip().endswith("__c") else name.strip() + "__c"
        f = make_custom_field(api_name, type, **options)
        with self.engine.begin() as conn:
            schema = dynamic.load_prospect_schema(conn)
            existing = {n.lower() for n in schema.fields} | {c.name.lower() for c in schema.table.columns}
            if api_name.lower() in existing:
                raise InputError(f"prospect field {api_name} already exists", code="DUPLICATE_DEVELOPER_NAME")
            conn.execute(
                t.prospect_custom_field.insert().values(
                    api_name=api_name,
                    definition=dynamic.field_to_json(f),
                    created_at=self.clock.now(),
                    created_by=self.actor,
                )
            )
            dynamic.add_column(conn, t.prospect.name, f)
        with self.engine.connect() as conn:
            dynamic.invalidate(conn)
        return f


def parse_prospect_id(value: int | str) -> int:
    """A prospect id from an int or a string of digits (``MALFORMED_ID`` otherwise)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise InputError(f"not a prospect id: {value!r}", code="MALFORMED_ID")


def _inserted_id(result: sa.CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None, "an insert returns its primary key"
    return int(key[0])


def _record(row: RowMapping) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in _INTERNAL_COLUMNS}


# ---------------------------------------------------------------------------------------------
# Simple marketing records: users, campaigns, lists, tags


class _TableService:
    """CRUD over one marketing table whose columns are v5 names (createdAt/updatedAt kept here)."""

    table: sa.Table
    label: str
    required: tuple[str, ...] = ()
    read_only: frozenset[str] = frozenset({"id", "createdAt", "updatedAt"})

    def __init__(self, engine: Engine, *, clock: Clock | None = None, actor: str | None = None) -> None:
        self.engine = engine
        self.clock = clock or SystemClock()
        self.actor = actor

    def _clean(self, values: Mapping[str, Any], *, creating: bool) -> dict[str, Any]:
        errors = [
            FieldError("INVALID_FIELD", f"No such column '{k}' on {self.label}", (k,))
            for k in values
            if k not in self.table.c or k in self.read_only
        ]
        if creating:
            errors += [
                FieldError("REQUIRED_FIELD_MISSING", f"{k}: required field missing", (k,))
                for k in self.required
                if values.get(k) in (None, "")
            ]
        if errors:
            raise ValidationError(errors)
        return dict(values)

    def create(self, values: Mapping[str, Any]) -> dict[str, Any]:
        row = self._clean(values, creating=True)
        now = self.clock.now()
        row.update({c: now for c in ("createdAt", "updatedAt") if c in self.table.c})
        with self.engine.begin() as conn:
            try:
                new_id = _inserted_id(conn.execute(self.table.insert().values(row)))
            except sa.exc.IntegrityError as exc:
                raise InputError(
                    f"{self.label} conflicts with an existing one: {exc.orig}", code="DUPLICATE_VALUE"
                ) from None
            return self._get(conn, new_id)

    def _get(self, conn: Connection, record_id: int) -> dict[str, Any]:
        row = conn.execute(sa.select(self.table).where(self.table.c.id == record_id)).mappings().first()
        if row is None:
            raise NotFoundError(f"{self.label} {record_id} not found")
        return dict(row)

    def get(self, record_id: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            return self._get(conn, record_id)

    def update(self, record_id: int, values: Mapping[str, Any]) -> dict[str, Any]:
        row = self._clean(values, creating=False)
        if "updatedAt" in self.table.c:
            row["updatedAt"] = self.clock.now()
        with self.engine.begin() as conn:
            self._get(conn, record_id)
            try:
                conn.execute(self.table.update().where(self.table.c.id == record_id).values(row))
            except sa.exc.IntegrityError as exc:
                raise InputError(
                    f"{self.label} conflicts with an existing one: {exc.orig}", code="DUPLICATE_VALUE"
                ) from None
            return self._get(conn, record_id)

    def list(self, *, limit: int = 200, offset: int = 0) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            query = sa.select(self.table).order_by(self.table.c.id).limit(limit).offset(offset)
            return [dict(r) for r in conn.execute(query).mappings()]

    def delete(self, record_id: int) -> None:
        with self.engine.begin() as conn:
            self._get(conn, record_id)
            conn.execute(self.table.delete().where(self.table.c.id == record_id))


class UserService(_TableService):
    """Marketing users (``ma_user``), each optionally linked to a CRM User by ``salesforceId``."""

    table = t.ma_user
    label = "user"
    required = ("email",)

    def create(self, values: Mapping[str, Any]) -> dict[str, Any]:
        email = values.get("email")
        if email is not None and not _EMAIL.match(email_key(str(email)) or ""):
            raise ValidationError(
                [FieldError("INVALID_EMAIL_ADDRESS", f"email: invalid email address: {email!r}", ("email",))]
            )
        return super().create({"role": "marketing", "isActive": True, **values})

    def find_by_email(self, email: str) -> dict[str, Any]:
        key = email_key(email)
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(self.table).where(sa.func.lower(self.table.c.email) == key))
                .mappings()
                .first()
            )
        if row is None:
            raise NotFoundError(f"no user with email {email!r}")
        return dict(row)

    def for_crm_user(self, salesforce_id: str) -> dict[str, Any] | None:
        """The marketing user linked to a CRM User Id, if any."""
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(self.table).where(self.table.c.salesforceId == salesforce_id))
                .mappings()
                .first()
            )
        return None if row is None else dict(row)


class CampaignService(_TableService):
    """Marketing campaigns (a prospect's first touch), optionally linked to a CRM Campaign."""

    table = t.campaign
    label = "campaign"
    required = ("name",)


class ListService(_TableService):
    """Lists and static list membership (dynamic lists are maintained by segmentation)."""

    table = t.list_
    label = "list"
    required = ("name",)

    def _static(self, conn: Connection, list_id: int) -> None:
        if self._get(conn, list_id)["isDynamic"]:
            raise InputError(
                f"list {list_id} is dynamic: its members follow its criteria", code="INVALID_OPERATION"
            )

    def add_prospects(self, list_id: int, prospect_ids: Iterable[int]) -> int:
        """Add prospects to a static list; returns how many were not members yet."""
        wanted = sorted(set(prospect_ids))
        m = t.list_membership
        with self.engine.begin() as conn:
            self._static(conn, list_id)
            live = set(
                conn.execute(
                    sa.select(t.prospect.c.id).where(
                        t.prospect.c.id.in_(wanted), t.prospect.c.isDeleted.is_(False)
                    )
                ).scalars()
            )
            missing = [p for p in wanted if p not in live]
            if missing:
                raise NotFoundError(f"prospects not found: {', '.join(map(str, missing))}")
            present = set(
                conn.execute(
                    sa.select(m.c.prospectId).where(m.c.listId == list_id, m.c.prospectId.in_(wanted))
                ).scalars()
            )
            now = self.clock.now()
            rows = [
                {"listId": list_id, "prospectId": p, "optedOut": False, "createdAt": now, "updatedAt": now}
                for p in wanted
                if p not in present
            ]
            if rows:
                conn.execute(m.insert(), rows)
            return len(rows)

    def remove_prospects(self, list_id: int, prospect_ids: Iterable[int]) -> int:
        m = t.list_membership
        with self.engine.begin() as conn:
            self._static(conn, list_id)
            query = m.delete().where(m.c.listId == list_id, m.c.prospectId.in_(sorted(set(prospect_ids))))
            return int(conn.execute(query).rowcount)

    def members(self, list_id: int) -> list[dict[str, Any]]:
        """List memberships (v5 ``ListMembership``: id, listId, prospectId, optedOut, createdAt, updatedAt)."""
        m = t.list_membership
        with self.engine.connect() as conn:
            self._get(conn, list_id)
            query = sa.select(m).where(m.c.listId == list_id).order_by(m.c.prospectId)
            return [dict(r) for r in conn.execute(query).mappings()]

    def lists_of(self, prospect_id: int) -> list[int]:
        m = t.list_membership
        with self.engine.connect() as conn:
            query = sa.select(m.c.listId).where(m.c.prospectId == prospect_id).order_by(m.c.listId)
            return list(conn.execute(query).scalars())


class TagService(_TableService):
    """Tags and the objects they are put on (``tag_object``: objectType + objectId)."""

    table = t.tag
    label = "tag"
    required = ("name",)

    def ensure(self, name: str) -> dict[str, Any]:
        """The tag with this name, created if missing."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(self.table).where(self.table.c.name == name)).mappings().first()
        return dict(row) if row is not None else self.create({"name": name})

    def add(self, name: str, object_type: str, object_id: int) -> dict[str, Any]:
        tag = self.ensure(name)
        key = {"tagId": tag["id"], "objectType": object_type, "objectId": object_id}
        with self.engine.begin() as conn:
            o = t.tag_object.c
            exists = conn.execute(
                sa.select(o.tagId).where(
                    o.tagId == tag["id"], o.objectType == object_type, o.objectId == object_id
                )
            ).first()
            if exists is None:
                conn.execute(t.tag_object.insert().values(key))
        return tag

    def remove(self, name: str, object_type: str, object_id: int) -> bool:
        o = t.tag_object.c
        with self.engine.begin() as conn:
            tag_id = conn.execute(
                sa.select(self.table.c.id).where(self.table.c.name == name)
            ).scalar_one_or_none()
            if tag_id is None:
                return False
            query = t.tag_object.delete().where(
                o.tagId == tag_id, o.objectType == object_type, o.objectId == object_id
            )
            return bool(conn.execute(query).rowcount)

    def tags_of(self, object_type: str, object_id: int) -> list[str]:
        o = t.tag_object.c
        with self.engine.connect() as conn:
            query = (
                sa.select(self.table.c.name)
                .join(t.tag_object, o.tagId == self.table.c.id)
                .where(o.objectType == object_type, o.objectId == object_id)
                .order_by(self.table.c.name)
            )
            return list(conn.execute(query).scalars())


__all__ = [
    "ALLOW_DUPLICATE_EMAILS",
    "PROSPECT_FIELDS",
    "CampaignService",
    "ListService",
    "ProspectService",
    "SettingService",
    "TagService",
    "UserService",
    "coerce_record",
    "coerce_value",
    "parse_prospect_id",
    "read_setting",
    "to_json",
]
