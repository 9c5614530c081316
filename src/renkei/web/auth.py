"""Who is signed in, and what they may do: passwords, sessions, CSRF, API tokens, the audit log.

``AuthService`` is the library API (the CLI's ``renkei user`` commands and the web routes both
call it); the FastAPI dependencies at the bottom are the web's thin glue.

- Passwords: argon2id (argon2-cffi), in ``web_credential`` keyed to ``ma_user.id``.
- Sessions: server-side rows in ``web_session``; the cookie holds a random id, the table its
  SHA-256. Each session has its own CSRF token, which every unsafe request must echo (form field
  ``csrf_token`` or header ``X-CSRF-Token``). The cookie is ``Secure; HttpOnly; SameSite=Lax``.
- Login rate limit: 5 failures per email or 30 per client address in 15 minutes → refused (429)
  until the window has passed. Every attempt is recorded in ``web_login_attempt``.
- API tokens: ``rk_…`` random strings shown once, kept as SHA-256, with scopes (``read``,
  ``write``, ``connector``), an optional expiry and revocation.
- Settings changes (users, roles, tokens, settings) are recorded in ``web_audit``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from fastapi import Depends, Header, Request
from sqlalchemy.engine import Connection, Engine

from renkei.clock import Clock, SystemClock, ensure_utc
from renkei.core.identity import email_key
from renkei.errors import InputError, NotFoundError, RenkeiError, RetriableError
from renkei.marketing.service import UserService
from renkei.store import tables as t
from renkei.store import tables_web as w
from renkei.web.permissions import ROLE_NAMES, Level, Role, validate_permissions

SESSION_COOKIE = "renkei_session"
LOGIN_CSRF_COOKIE = "renkei_login_csrf"
SESSION_IDLE = dt.timedelta(hours=8)
SESSION_MAX = dt.timedelta(days=7)
LOGIN_WINDOW = dt.timedelta(minutes=15)
MAX_FAILURES_PER_EMAIL = 5
MAX_FAILURES_PER_IP = 30
MIN_PASSWORD_LENGTH = 10
SCOPES: tuple[str, ...] = ("read", "write", "connector")
DEMO_ADMIN_EMAIL = "admin@renkei.example"
DEMO_LOGIN_FILE = ".renkei-demo-login"

_hasher = PasswordHasher()


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class LoginRefused(InputError):
    code = "INVALID_LOGIN"
    http_status = 401


class TooManyAttempts(RetriableError):
    code = "TOO_MANY_ATTEMPTS"
    http_status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Forbidden(RenkeiError):
    code = "FORBIDDEN"
    http_status = 403


class NotSignedIn(RenkeiError):
    code = "NOT_SIGNED_IN"
    http_status = 401


@dataclass(frozen=True, slots=True)
class Principal:
    """A signed-in user (web session) or the owner of an API token."""

    user_id: int
    email: str
    name: str
    role: Role
    language: str
    csrf_token: str = ""
    scopes: tuple[str, ...] = ()
    timezone: str = "Asia/Tokyo"

    def can(self, section: str, level: Level = Level.VIEW) -> bool:
        return self.role.can(section, level)

    def require(self, section: str, level: Level = Level.VIEW) -> None:
        if not self.can(section, level):
            raise Forbidden(f"the {self.role.name} role may not {level.label} {section}")


@dataclass(frozen=True, slots=True)
class NewToken:
    id: int
    token: str  # shown once
    name: str
    scopes: tuple[str, ...]
    expires_at: dt.datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "token": self.token,
            "name": self.name,
            "scopes": list(self.scopes),
            "expiresAt": self.expires_at,
        }


def _name(user: Mapping[str, Any] | sa.RowMapping) -> str:
    parts = [user.get("firstName"), user.get("lastName")]
    return " ".join(p for p in parts if p) or str(user["email"])


class AuthService:
    def __init__(self, engine: Engine, *, clock: Clock | None = None) -> None:
        self.engine = engine
        self.clock = clock or SystemClock()

    # -- roles ---------------------------------------------------------------------------------
    def roles(self) -> list[Role]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(w.web_role)).mappings().all()
        by_name = {r["name"]: Role(r["name"], r["label"], dict(r["permissions"])) for r in rows}
        return [by_name[n] for n in ROLE_NAMES if n in by_name] + [
            r for n, r in sorted(by_name.items()) if n not in ROLE_NAMES
        ]

    def role(self, name: str) -> Role:
        for r in self.roles():
            if r.name == name:
                return r
        raise InputError(f"unknown role {name!r} (one of: {', '.join(ROLE_NAMES)})", code="INVALID_ROLE")

    def set_role_permissions(
        self, name: str, permissions: Mapping[str, str], *, actor: Principal | None
    ) -> Role:
        before = self.role(name)
        try:
            perms = validate_permissions(permissions)
        except ValueError as exc:
            raise InputError(str(exc), code="INVALID_PERMISSION") from None
        with self.engine.begin() as conn:
            conn.execute(
                w.web_role.update()
                .where(w.web_role.c.name == name)
                .values(permissions=perms, updated_at=self.clock.now())
            )
            self._audit(conn, actor, "role.permissions", name, dict(before.permissions), perms)
        return self.role(name)

    # -- users ---------------------------------------------------------------------------------
    def create_user(
        self,
        email: str,
        *,
        role: str,
        password: str,
        first_name: str | None = None,
        last_name: str | None = None,
        language: str = "ja",
        actor: Principal | None = None,
    ) -> dict[str, Any]:
        self.role(role)
        _check_password(password)
        users = UserService(self.engine, clock=self.clock)
        try:
            users.find_by_email(email)
        except NotFoundError:
            pass
        else:
            raise InputError(f"a user with email {email!r} already exists", code="DUPLICATE_VALUE")
        user = users.create(
            {
                "email": email,
                "role": role,
                "firstName": first_name,
                "lastName": last_name,
                "language": language,
            }
        )
        with self.engine.begin() as conn:
            conn.execute(
                w.web_credential.insert().values(
                    user_id=user["id"], password_hash=_hasher.hash(password), updated_at=self.clock.now()
                )
            )
            self._audit(conn, actor, "user.create", email, None, {"role": role})
        return _public_user(user)

    def users(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            query = sa.select(
                t.ma_user, w.web_credential.c.user_id.is_not(None).label("canSignIn")
            ).outerjoin(w.web_credential, w.web_credential.c.user_id == t.ma_user.c.id)
            return [_public_user(r) for r in conn.execute(query.order_by(t.ma_user.c.id)).mappings()]

    def user(self, user_id: int) -> dict[str, Any]:
        return _public_user(UserService(self.engine, clock=self.clock).get(user_id))

    def set_password(self, user_id: int, password: str, *, actor: Principal | None = None) -> None:
        _check_password(password)
        user = self.user(user_id)
        row = {"password_hash": _hasher.hash(password), "updated_at": self.clock.now()}
        with self.engine.begin() as conn:
            done = conn.execute(
                w.web_credential.update().where(w.web_credential.c.user_id == user_id).values(row)
            ).rowcount
            if not done:
                conn.execute(w.web_credential.insert().values(user_id=user_id, **row))
            # a new password ends every other session of that user
            conn.execute(w.web_session.delete().where(w.web_session.c.user_id == user_id))
            self._audit(conn, actor, "user.password", user["email"], None, None)

    def set_user(self, user_id: int, values: Mapping[str, Any], *, actor: Principal | None) -> dict[str, Any]:
        """Change a user's role, language or active flag (audited)."""
        allowed = {"role", "language", "isActive"}
        unknown = sorted(set(values) - allowed)
        if unknown:
            raise InputError(f"cannot change {', '.join(unknown)} here", code="INVALID_FIELD")
        if "role" in values:
            self.role(str(values["role"]))
        if "language" in values and values["language"] not in ("ja", "en"):
            raise InputError("language must be ja or en", code="INVALID_FIELD")
        before = self.user(user_id)
        after = UserService(self.engine, clock=self.clock).update(user_id, dict(values))
        with self.engine.begin() as conn:
            self._audit(
                conn,
                actor,
                "user.update",
                before["email"],
                {k: before.get(k) for k in values},
                {k: after.get(k) for k in values},
            )
            if values.get("isActive") is False:
                conn.execute(w.web_session.delete().where(w.web_session.c.user_id == user_id))
        return _public_user(after)

    def set_language(self, user_id: int, language: str) -> None:
        """A user's own choice of language (not a settings change, so not audited)."""
        if language not in ("ja", "en"):
            raise InputError("language must be ja or en", code="INVALID_FIELD")
        UserService(self.engine, clock=self.clock).update(user_id, {"language": language})

    # -- sign-in -------------------------------------------------------------------------------
    def _check_rate(self, conn: Connection, key: str, ip: str | None) -> None:
        since = self.clock.now() - LOGIN_WINDOW
        a = w.web_login_attempt.c
        failed = sa.and_(a.success.is_(False), a.at > since)

        limits: list[tuple[sa.ColumnElement[bool], int]] = [(a.email_key == key, MAX_FAILURES_PER_EMAIL)]
        if ip:
            limits.append((a.ip == ip, MAX_FAILURES_PER_IP))
        for cond, limit in limits:
            row = conn.execute(sa.select(sa.func.count(), sa.func.min(a.at)).where(failed, cond)).one()
            if int(row[0]) >= limit and row[1] is not None:
                wait = ensure_utc(row[1]) + LOGIN_WINDOW - self.clock.now()
                seconds = max(1, int(wait.total_seconds()) + 1)
                raise TooManyAttempts(
                    f"too many failed sign-ins; try again in {(seconds + 59) // 60} minutes", seconds
                )

    def authenticate(self, email: str, password: str, *, ip: str | None = None) -> dict[str, Any]:
        key = email_key(email) or ""
        with self.engine.begin() as conn:
            self._check_rate(conn, key, ip)
            row = (
                conn.execute(
                    sa.select(t.ma_user, w.web_credential.c.password_hash)
                    .join(w.web_credential, w.web_credential.c.user_id == t.ma_user.c.id)
                    .where(sa.func.lower(t.ma_user.c.email) == key)
                )
                .mappings()
                .first()
            )
            ok = row is not None and bool(row["isActive"]) and _verify(row["password_hash"], password)
            conn.execute(
                w.web_login_attempt.insert().values(at=self.clock.now(), email_key=key, ip=ip, success=ok)
            )
            if ok and row is not None and _hasher.check_needs_rehash(row["password_hash"]):
                conn.execute(
                    w.web_credential.update()
                    .where(w.web_credential.c.user_id == row["id"])
                    .values(password_hash=_hasher.hash(password))
                )
        if not ok or row is None:  # raised after the commit, so the failure stays recorded
            raise LoginRefused("wrong email or password")
        return _public_user(row)

    def start_session(self, user_id: int, *, ip: str | None = None, user_agent: str | None = None) -> str:
        """A new session for the user; returns the raw id for the cookie (kept hashed)."""
        raw = secrets.token_urlsafe(32)
        now = self.clock.now()
        with self.engine.begin() as conn:
            conn.execute(
                w.web_session.insert().values(
                    id_hash=_digest(raw),
                    user_id=user_id,
                    csrf_token=secrets.token_urlsafe(32),
                    created_at=now,
                    last_seen_at=now,
                    expires_at=now + SESSION_IDLE,
                    ip=ip,
                    user_agent=(user_agent or "")[:255] or None,
                )
            )
        return raw

    def session(self, raw: str) -> Principal | None:
        """The principal of a live session (sliding idle expiry, absolute maximum age)."""
        if not raw:
            return None
        now = self.clock.now()
        with self.engine.begin() as conn:
            row = _with_user(conn, w.web_session, w.web_session.c.id_hash == _digest(raw))
            if row is None:
                return None
            if (
                ensure_utc(row["expires_at"]) <= now
                or ensure_utc(row["created_at"]) + SESSION_MAX <= now
                or not row["isActive"]
            ):
                conn.execute(w.web_session.delete().where(w.web_session.c.id_hash == row["id_hash"]))
                return None
            if now - ensure_utc(row["last_seen_at"]) > dt.timedelta(minutes=1):
                conn.execute(
                    w.web_session.update()
                    .where(w.web_session.c.id_hash == row["id_hash"])
                    .values(last_seen_at=now, expires_at=now + SESSION_IDLE)
                )
        return self._principal(row, csrf_token=row["csrf_token"])

    def _principal(self, row: sa.RowMapping, **extra: Any) -> Principal:
        return Principal(
            user_id=row["user_id"],
            email=row["email"],
            name=_name(row),
            role=self._role_or_none(row["role"]),
            language=row["language"] or "ja",
            timezone=row["timezone"] or "Asia/Tokyo",
            **extra,
        )

    def _role_or_none(self, name: str) -> Role:
        try:
            return self.role(name)
        except InputError:
            return Role(name, name, {})

    def end_session(self, raw: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(w.web_session.delete().where(w.web_session.c.id_hash == _digest(raw)))

    # -- API tokens ----------------------------------------------------------------------------
    def create_token(
        self,
        user_id: int,
        name: str,
        scopes: Iterable[str] = ("read",),
        *,
        expires_days: int | None = None,
        actor: Principal | None = None,
    ) -> NewToken:
        chosen = tuple(dict.fromkeys(s.strip() for s in scopes if s.strip()))
        bad = [s for s in chosen if s not in SCOPES]
        if bad or not chosen:
            raise InputError(f"scopes must be some of {', '.join(SCOPES)}", code="INVALID_SCOPE")
        if not name.strip():
            raise InputError("a token needs a name", code="REQUIRED_FIELD_MISSING")
        user = self.user(user_id)
        raw = "rk_" + secrets.token_urlsafe(32)
        now = self.clock.now()
        expires = now + dt.timedelta(days=expires_days) if expires_days else None
        with self.engine.begin() as conn:
            result = conn.execute(
                w.web_api_token.insert().values(
                    user_id=user_id,
                    name=name.strip(),
                    token_hash=_digest(raw),
                    prefix=raw[:10],
                    scopes=list(chosen),
                    created_at=now,
                    expires_at=expires,
                )
            )
            token_id = int(result.inserted_primary_key[0])  # type: ignore[index]
            self._audit(
                conn, actor, "token.create", f"{user['email']}:{name}", None, {"scopes": list(chosen)}
            )
        return NewToken(token_id, raw, name.strip(), chosen, expires)

    def tokens(self, user_id: int | None = None) -> list[dict[str, Any]]:
        c = w.web_api_token.c
        query = sa.select(
            c.id,
            c.user_id,
            c.name,
            c.prefix,
            c.scopes,
            c.created_at,
            c.expires_at,
            c.last_used_at,
            c.revoked_at,
        ).order_by(c.id)
        if user_id is not None:
            query = query.where(c.user_id == user_id)
        with self.engine.connect() as conn:
            return [
                {
                    "id": r["id"],
                    "userId": r["user_id"],
                    "name": r["name"],
                    "prefix": r["prefix"],
                    "scopes": list(r["scopes"]),
                    "createdAt": r["created_at"],
                    "expiresAt": r["expires_at"],
                    "lastUsedAt": r["last_used_at"],
                    "revokedAt": r["revoked_at"],
                }
                for r in conn.execute(query).mappings()
            ]

    def revoke_token(self, token_id: int, *, actor: Principal | None = None) -> None:
        with self.engine.begin() as conn:
            row = (
                conn.execute(sa.select(w.web_api_token).where(w.web_api_token.c.id == token_id))
                .mappings()
                .first()
            )
            if row is None:
                raise NotFoundError(f"API token {token_id} not found")
            if (
                actor is not None
                and actor.user_id != row["user_id"]
                and not actor.can("settings", Level.EDIT)
            ):
                raise Forbidden("only an administrator may revoke another user's token")
            if row["revoked_at"] is None:
                conn.execute(
                    w.web_api_token.update()
                    .where(w.web_api_token.c.id == token_id)
                    .values(revoked_at=self.clock.now())
                )
                self._audit(conn, actor, "token.revoke", f"{row['name']} ({row['prefix']}…)", None, None)

    def token_principal(self, raw: str) -> Principal:
        """The owner of a live token; raises ``NotSignedIn`` for an unknown, revoked or expired one."""
        now = self.clock.now()
        with self.engine.begin() as conn:
            row = _with_user(conn, w.web_api_token, w.web_api_token.c.token_hash == _digest(raw))
            if (
                row is None
                or row["revoked_at"] is not None
                or (row["expires_at"] is not None and ensure_utc(row["expires_at"]) <= now)
                or not row["isActive"]
            ):
                raise NotSignedIn("invalid, expired or revoked API token")
            conn.execute(
                w.web_api_token.update().where(w.web_api_token.c.id == row["id"]).values(last_used_at=now)
            )
        return self._principal(row, scopes=tuple(row["scopes"]))

    # -- audit log and secrets ------------------------------------------------------------------
    def _audit(
        self, conn: Connection, actor: Principal | None, action: str, target: str, before: Any, after: Any
    ) -> None:
        conn.execute(
            w.web_audit.insert().values(
                at=self.clock.now(),
                user_id=actor.user_id if actor else None,
                actor=actor.email if actor else "cli",
                action=action,
                target=target,
                before=before,
                after=after,
            )
        )

    def audit(self, action: str, target: str, before: Any, after: Any, *, actor: Principal | None) -> None:
        """Record a settings change made elsewhere (custom fields, scoring, connector …)."""
        with self.engine.begin() as conn:
            self._audit(conn, actor, action, target, before, after)

    def audit_log(self, limit: int = 100) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            query = sa.select(w.web_audit).order_by(w.web_audit.c.id.desc()).limit(limit)
            return [dict(r) for r in conn.execute(query).mappings()]

    def secret(self, name: str) -> str:
        """A named random secret of this installation, made on first use."""
        with self.engine.begin() as conn:
            value = conn.execute(sa.select(w.web_secret.c.value).where(w.web_secret.c.name == name)).scalar()
            if value is None:
                value = secrets.token_urlsafe(48)
                try:
                    with conn.begin_nested():
                        conn.execute(
                            w.web_secret.insert().values(name=name, value=value, created_at=self.clock.now())
                        )
                except sa.exc.IntegrityError:  # another worker made it first
                    value = conn.execute(
                        sa.select(w.web_secret.c.value).where(w.web_secret.c.name == name)
                    ).scalar_one()
            return str(value)

    # -- the demo admin (make run) -------------------------------------------------------------
    def ensure_demo_admin(self, login_file: Path) -> tuple[str, str]:
        """Make sure ``admin@renkei.example`` can sign in with the password kept in
        ``login_file`` (mode 0600); a missing or stale file gets a fresh random password."""
        password = _read_demo_password(login_file)
        try:
            user = UserService(self.engine, clock=self.clock).find_by_email(DEMO_ADMIN_EMAIL)
        except NotFoundError:
            password = password or _new_password()
            self.create_user(
                DEMO_ADMIN_EMAIL, role="admin", password=password, first_name="Demo", last_name="Admin"
            )
        else:
            if password is None or not self._password_matches(user["id"], password):
                password = _new_password()
                self.set_password(user["id"], password)
            if user["role"] != "admin" or not user["isActive"]:
                self.set_user(user["id"], {"role": "admin", "isActive": True}, actor=None)
        login_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(login_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{DEMO_ADMIN_EMAIL}\n{password}\n")
        return DEMO_ADMIN_EMAIL, password

    def _password_matches(self, user_id: int, password: str) -> bool:
        with self.engine.connect() as conn:
            stored = conn.execute(
                sa.select(w.web_credential.c.password_hash).where(w.web_credential.c.user_id == user_id)
            ).scalar()
        return stored is not None and _verify(stored, password)


def _with_user(conn: Connection, table: sa.Table, where: sa.ColumnElement[bool]) -> sa.RowMapping | None:
    """A session or token row with its user's columns."""
    query = sa.select(table, t.ma_user).join(t.ma_user, t.ma_user.c.id == table.c.user_id).where(where)
    return conn.execute(query).mappings().first()


def demo_login_file(database_url: str) -> Path:
    """Where ``--print-demo-login`` keeps the demo password: next to a SQLite database file,
    else in the current directory."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).resolve().parent / DEMO_LOGIN_FILE
    return Path.cwd() / DEMO_LOGIN_FILE


def _read_demo_password(path: Path) -> str | None:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    return (
        lines[1].strip()
        if len(lines) >= 2 and lines[0].strip() == DEMO_ADMIN_EMAIL and lines[1].strip()
        else None
    )


def _new_password() -> str:
    return secrets.token_urlsafe(12)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InputError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters", code="WEAK_PASSWORD")


def _verify(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _public_user(row: Mapping[str, Any] | sa.RowMapping) -> dict[str, Any]:
    keys = ("id", "email", "firstName", "lastName", "role", "isActive", "language", "timezone", "createdAt")
    out = {k: row.get(k) for k in keys}
    if "canSignIn" in row:
        out["canSignIn"] = bool(row["canSignIn"])
    return out


# ---------------------------------------------------------------------------------------------
# FastAPI glue


def auth_service(request: Request) -> AuthService:
    return AuthService(request.app.state.engine, clock=request.app.state.clock)


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def optional_principal(request: Request) -> Principal | None:
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    principal = auth_service(request).session(request.cookies.get(SESSION_COOKIE, ""))
    request.state.principal = principal
    return principal


def current_principal(request: Request) -> Principal:
    principal = optional_principal(request)
    if principal is None:
        raise NotSignedIn("sign in first")
    return principal


async def check_csrf(request: Request) -> None:
    """Refuse an unsafe request whose CSRF token does not match the session's (403)."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    principal = optional_principal(request)
    sent = request.headers.get("x-csrf-token")
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get("csrf_token")
        sent = value if isinstance(value, str) else None
    if principal is None:
        # before sign-in: double-submit — the form echoes the login cookie's random value
        expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    else:
        expected = principal.csrf_token
    if not expected or not sent or not hmac.compare_digest(expected, sent):
        raise Forbidden("missing or wrong CSRF token; reload the page and try again")


def bearer_principal(request: Request, authorization: Annotated[str | None, Header()] = None) -> Principal:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotSignedIn("send an API token: Authorization: Bearer rk_…")
    principal = auth_service(request).token_principal(token.strip())
    request.state.principal = principal
    return principal


SignedIn = Annotated[Principal, Depends(current_principal)]


def print_demo_login() -> None:
    """``renkei serve --print-demo-login``: ensure the demo admin and print how to sign in."""
    import sys

    from renkei.store.db import database_url, get_engine

    path = demo_login_file(database_url())
    email, password = AuthService(get_engine()).ensure_demo_admin(path)
    sys.stdout.write(
        f"\n  Demo sign-in:  {email}  /  {password}\n  (kept in {path}; delete it for a new password)\n\n"
    )
    sys.stdout.flush()
